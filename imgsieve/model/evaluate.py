"""Judge a trained classifier on its validation images: metrics (scikit-learn), the decision
threshold, and PNG plots of the training curves and the confusion matrix (matplotlib, Agg).

Decision threshold: with N > 2 classes a prediction is the argmax of the scores (recorded as
"argmax"). With two classes it is a threshold on the positive class's score, chosen to maximise
F1 on the validation set; an image is positive when its score is >= the threshold. The positive
class is the one named in POSITIVE_CLASS_NAMES (case-insensitive) when exactly one class is,
otherwise the first class in sorted order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

POSITIVE_CLASS_NAMES = ("drugs", "positive")
ARGMAX = "argmax"
PLOT_DPI = 100
CURVES = (("loss", "loss"), ("accuracy", "accuracy"))  # (history key, axis title)


def evaluate(labels: np.ndarray, scores: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Return accuracy, per-class precision/recall/F1, ROC AUC (two classes), confusion matrix, threshold."""
    classes = list(range(len(class_names)))
    predicted = np.argmax(scores, axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    metrics: dict[str, Any] = {
        "class_names": list(class_names),
        "accuracy": float(accuracy_score(labels, predicted)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        # rows are the true classes, columns the predicted ones, both in class_names order
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
        "roc_auc": None,
        "positive_class": None,
        "decision_threshold": ARGMAX,
        "threshold_f1": None,
    }
    if len(class_names) == 2:
        positive = positive_class_index(class_names)
        is_positive = labels == positive
        metrics["positive_class"] = class_names[positive]
        if is_positive.all() or not is_positive.any():
            return metrics  # AUC and a threshold need both classes among the labels
        metrics["roc_auc"] = float(roc_auc_score(is_positive, scores[:, positive]))
        threshold, best_f1 = best_f1_threshold(is_positive, scores[:, positive])
        metrics["decision_threshold"] = threshold
        metrics["threshold_f1"] = best_f1
    return metrics


def positive_class_index(class_names: list[str]) -> int:
    """Index of the positive class of a two-class problem (see the module docstring for the rule)."""
    named = [i for i, name in enumerate(class_names) if name.lower() in POSITIVE_CLASS_NAMES]
    return named[0] if len(named) == 1 else 0


def best_f1_threshold(is_positive: np.ndarray, positive_scores: np.ndarray) -> tuple[float, float]:
    """Return the score threshold (predict positive when score >= it) with the highest F1, and that F1."""
    precision, recall, thresholds = precision_recall_curve(is_positive, positive_scores)
    # The curve's last point (precision 1, recall 0) has no threshold of its own.
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def plot_history(phases: list[tuple[str, dict[str, list[float]]]], path: Path) -> Path:
    """Plot loss and accuracy per epoch, train vs validation, phases one after another; save a PNG."""
    figure = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(CURVES))
    for ax, (key, title) in zip(axes, CURVES, strict=True):
        start = 0
        for phase_number, (phase, history) in enumerate(phases):
            epochs = len(history.get(key, []))
            if not epochs:
                continue
            x = np.arange(start + 1, start + epochs + 1)
            color = f"C{phase_number}"
            ax.plot(x, history[key], color=color, marker=".", label=f"{phase} train")
            if f"val_{key}" in history:
                ax.plot(
                    x,
                    history[f"val_{key}"],
                    color=color,
                    linestyle="--",
                    marker="x",
                    label=f"{phase} validation",
                )
            if start:
                ax.axvline(start + 0.5, color="grey", linewidth=0.8, linestyle=":")
            start += epochs
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=PLOT_DPI)
    return path


def plot_confusion(matrix: list[list[int]], class_names: list[str], path: Path) -> Path:
    """Draw the confusion matrix (rows true, columns predicted) with counts in the cells; save a PNG."""
    counts = np.asarray(matrix)
    side = max(4.0, 1.0 + 0.6 * len(class_names))
    figure = Figure(figsize=(side + 1, side))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    image = ax.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("validation confusion matrix")
    middle = counts.max() / 2 if counts.size else 0
    for (row, col), count in np.ndenumerate(counts):
        color = "white" if count > middle else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color)
    figure.tight_layout()
    figure.savefig(path, dpi=PLOT_DPI)
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write data as indented JSON and return the path."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
