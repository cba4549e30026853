"""Versions on disk and their lifecycle, on real exported SavedModels; and the servable's metadata."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsieve.serve.registry import ModelRegistry
from imgsieve.serve.servable import Servable
from imgsieve.serve.status import ServingError, from_exception
from tests.integration.serving import export_tiny_model

MODEL = "tiny"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base path with version 1 (classes a, b) exported by the real exporter."""
    base = tmp_path_factory.mktemp("registry") / "exported"
    export_tiny_model(base, ["a", "b"])
    return base


def copy_version(exported: Path, base: Path, version: int) -> None:
    """Place a copy of the exported version 1 as `version` under base."""
    shutil.copytree(exported / "1", base / str(version))


def png() -> bytes:
    """A small PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (250, 20, 20)).save(buffer, "PNG")
    return buffer.getvalue()


def not_found_message(call: object) -> str:
    """The message of the NOT_FOUND error a zero-argument call raises."""
    with pytest.raises(ServingError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code == "NOT_FOUND"
    return caught.value.message


def test_versions_on_disk_are_numeric_directories_only(tmp_path: Path) -> None:
    for name in ("1", "10", "2", ".export-x1", "notes", "3a"):
        (tmp_path / name).mkdir()
    (tmp_path / "4").write_text("a file, not a version")
    assert ModelRegistry(MODEL, tmp_path, 1.0).versions_on_disk() == [1, 2, 10]
    assert ModelRegistry(MODEL, tmp_path / "missing", 1.0).versions_on_disk() == []


def test_before_any_version_everything_is_not_found(tmp_path: Path) -> None:
    registry = ModelRegistry(MODEL, tmp_path, 1.0)
    registry.poll_once()
    assert registry.latest_version() is None
    assert (
        not_found_message(lambda: registry.status(MODEL, None)) == "Could not find any versions of model tiny"
    )
    assert (
        not_found_message(lambda: registry.servable(MODEL, None))
        == "Servable not found for request: Latest(tiny)"
    )


def test_highest_version_is_loaded_and_replaces_the_one_before(tmp_path: Path, exported: Path) -> None:
    copy_version(exported, tmp_path, 1)
    copy_version(exported, tmp_path, 3)
    registry = ModelRegistry(MODEL, tmp_path, 1.0)
    registry.poll_once()
    assert registry.latest_version() == 3
    assert [entry["version"] for entry in registry.status(MODEL, None)] == ["3"]
    copy_version(exported, tmp_path, 4)
    registry.poll_once()
    assert registry.servable(MODEL, None).version == 4
    assert [(entry["version"], entry["state"]) for entry in registry.status(MODEL, None)] == [
        ("4", "AVAILABLE"),
        ("3", "END"),
    ]
    assert registry.status(MODEL, 3)[0]["status"] == {"error_code": "OK", "error_message": ""}
    assert not_found_message(lambda: registry.status(MODEL, 1)) == "Could not find version 1 of model tiny"
    assert (
        not_found_message(lambda: registry.servable(MODEL, 3))
        == "Servable not found for request: Specific(tiny, 3)"
    )
    assert (
        not_found_message(lambda: registry.servable("other", None))
        == "Servable not found for request: Latest(other)"
    )


def test_failed_version_is_reported_and_not_retried(tmp_path: Path, exported: Path) -> None:
    copy_version(exported, tmp_path, 1)
    (tmp_path / "2").mkdir()  # no saved_model.pb
    registry = ModelRegistry(MODEL, tmp_path, 1.0)
    registry.poll_once()
    assert registry.latest_version() is None
    [failed] = registry.status(MODEL, 2)
    assert failed["state"] == "END"
    assert failed["status"]["error_code"] == "NOT_FOUND"
    assert "Could not find SavedModel .pb or .pbtxt" in failed["status"]["error_message"]
    registry.poll_once()
    assert registry.status(MODEL, 2) == [failed]
    assert not_found_message(lambda: registry.status(MODEL, 1)) == "Could not find version 1 of model tiny"


def test_removing_every_version_unloads(tmp_path: Path, exported: Path) -> None:
    copy_version(exported, tmp_path, 1)
    registry = ModelRegistry(MODEL, tmp_path, 1.0)
    registry.poll_once()
    shutil.rmtree(tmp_path / "1")
    registry.poll_once()
    assert registry.latest_version() is None
    assert registry.status(MODEL, 1)[0]["state"] == "END"


def test_servable_metadata_and_run(exported: Path) -> None:
    servable = Servable.load(MODEL, 1, exported / "1")
    metadata = servable.metadata()
    assert metadata["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "__saved_model_init_op"}
    assert signatures["serving_default"]["inputs"]["image_bytes"]["name"] == "serving_default_image_bytes:0"
    assert servable.input_dtypes("") == {"image_bytes": "DT_STRING"}
    images = np.empty(2, dtype=object)
    images[:] = [png(), png()]
    outputs = servable.run("serving_default", {"image_bytes": images})
    assert outputs["scores"].shape == (2, 2)
    assert outputs["top_class"].tolist()[0] in (b"a", b"b")
    with pytest.raises(ServingError) as bad:
        servable.run("", {"image_bytes": np.array([b"not an image"], dtype=object)})
    assert bad.value.code == "INVALID_ARGUMENT"
    assert bad.value.message.startswith("Unknown image file format")
    with pytest.raises(ServingError) as missing:
        servable.signature("nope")
    assert missing.value.message == 'Serving signature name: "nope" not found in signature def'


def test_from_exception_keeps_tensorflow_error_codes() -> None:
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        tf.io.decode_image(b"not an image")
    error = from_exception(caught.value)
    assert (error.code, error.http_status) == ("INVALID_ARGUMENT", 400)
    assert "[Op:" not in error.message
    assert from_exception(RuntimeError("boom")).code == "UNKNOWN"
