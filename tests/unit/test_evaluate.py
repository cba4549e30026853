"""Tests for imgsieve.model.evaluate: metrics on known predictions, the threshold rule, the plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsieve.model.evaluate import (
    best_f1_threshold,
    evaluate,
    plot_confusion,
    plot_history,
    positive_class_index,
)


def test_two_class_metrics_on_known_predictions() -> None:
    # class 0 scores: three true 0s and three true 1s; the argmax gets 4 of 6 right.
    labels = np.array([0, 0, 0, 1, 1, 1])
    positive = np.array([0.9, 0.8, 0.4, 0.6, 0.3, 0.1])
    scores = np.stack([positive, 1 - positive], axis=1)

    metrics = evaluate(labels, scores, ["cats", "dogs"])

    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[2, 1], [1, 2]]
    assert metrics["per_class"]["cats"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }
    # 8 of the 9 (positive, negative) pairs are ordered correctly: only 0.4 < 0.6 is not.
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    assert metrics["positive_class"] == "cats"
    # Threshold 0.4 catches all three cats with one false positive: F1 = 6/7, the best there is.
    assert metrics["decision_threshold"] == pytest.approx(0.4)
    assert metrics["threshold_f1"] == pytest.approx(6 / 7)


def test_many_classes_use_argmax_and_no_auc() -> None:
    labels = np.array([0, 1, 2, 2])
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    metrics = evaluate(labels, scores, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["decision_threshold"] == "argmax"
    assert metrics["roc_auc"] is None
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert metrics["per_class"]["c"]["recall"] == pytest.approx(0.5)
    assert metrics["per_class"]["a"]["precision"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("class_names", "expected"),
    [
        (["drugs", "other"], 0),
        (["clean", "drugs"], 1),
        (["negative", "Positive"], 1),
        (["apples", "pears"], 0),
        (["drugs", "positive"], 0),  # both conventions present: ambiguous, fall back to the first
    ],
)
def test_positive_class_rule(class_names: list[str], expected: int) -> None:
    assert positive_class_index(class_names) == expected


def test_threshold_is_measured_on_the_named_positive_class() -> None:
    labels = np.array([0, 0, 1, 1])  # clean, clean, drugs, drugs
    drugs = np.array([0.1, 0.35, 0.3, 0.9])
    metrics = evaluate(labels, np.stack([1 - drugs, drugs], axis=1), ["clean", "drugs"])
    assert metrics["positive_class"] == "drugs"
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["decision_threshold"] == pytest.approx(0.3)
    assert metrics["threshold_f1"] == pytest.approx(0.8)


def test_best_f1_threshold_separates_perfectly_separable_scores() -> None:
    threshold, f1 = best_f1_threshold(np.array([True, True, False, False]), np.array([0.7, 0.6, 0.5, 0.2]))
    assert threshold == pytest.approx(0.6)
    assert f1 == pytest.approx(1.0)


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    head = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    tune = {"loss": [0.4], "val_loss": [0.6], "accuracy": [0.9], "val_accuracy": [0.75]}
    curves = plot_history([("head", head), ("fine-tune", tune)], tmp_path / "curves.png")
    matrix = plot_confusion([[5, 1], [2, 7]], ["cats", "dogs"], tmp_path / "cm.png")
    for path in (curves, matrix):
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width > 300
            assert image.height > 300
            # a real drawing, not a blank canvas
            assert len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 10
