"""What role model_server leaves on a host, checked inside the molecule container: `imgsieve serve` under
systemd as the service user, serving the tiny model that prepare.yml exported, on port 8501."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

SERVICE = "imgsieve-model-server"
URL = "http://127.0.0.1:8501/v1/models/tiny"
BASE = "/var/lib/imgsieve/models/tiny"
# Run with the system Python: print the body of a GET (or of a POST of the JSON body in argv[2]).
REQUEST = (
    "import sys, urllib.request; body = sys.argv[2].encode() if len(sys.argv) > 2 else None; "
    "print(urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=body)).read().decode())"
)
# A 1x1 white PNG, base64-encoded, as TF Serving's REST API takes images.
WHITE_PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
# (path, owner, group, mode): the model is root's and readable by the service's group only.
PATHS = [
    (f"/etc/systemd/system/{SERVICE}.service", "root", "root", 0o644),
    (BASE, "root", "imgsieve", 0o750),
    (f"{BASE}/1", "root", "imgsieve", 0o750),
    (f"{BASE}/1/saved_model.pb", "root", "imgsieve", 0o640),
]


def request(host: Host, url: str, body: str | None = None) -> Any:
    """GET url (or POST body to it) from inside the container; return the JSON answer."""
    args = ["python3", "-c", REQUEST, url] + ([body] if body is not None else [])
    return json.loads(host.check_output(shlex.join(args)))


def test_service_is_active_and_enabled(host: Host) -> None:
    """The server runs and starts at boot; otherwise the failure shows its journal."""
    service = host.service(SERVICE)
    if not (service.is_running and service.is_enabled):
        pytest.fail(
            f"{SERVICE} is not active and enabled:\n" + host.run(f"journalctl -u {SERVICE} -n 40").stdout
        )


def test_runs_as_the_service_user(host: Host) -> None:
    """The server's main process belongs to the service user."""
    pid = host.check_output(f"systemctl show --property=MainPID --value {SERVICE}")
    assert host.check_output(f"ps -o user= -p {pid}") == "imgsieve"


def test_listens_on_all_addresses(host: Host) -> None:
    """The REST API listens on port 8501 of every address."""
    assert host.socket("tcp://0.0.0.0:8501").is_listening


def test_exported_version_is_available(host: Host) -> None:
    """The model's status lists version 1, the one copied from the controller, as AVAILABLE."""
    status = request(host, URL)["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]


def test_predicts_an_image(host: Host) -> None:
    """A predict request with one image answers one prediction with a score per class."""
    answer = request(host, f"{URL}:predict", json.dumps({"instances": [{"b64": WHITE_PIXEL}]}))
    (prediction,) = answer["predictions"]
    assert set(prediction["classes"]) == {prediction["top_class"], *prediction["classes"]}
    assert len(prediction["scores"]) == len(prediction["classes"])


def test_no_staging_folder_left(host: Host) -> None:
    """The copy's hidden staging folder was renamed into place."""
    assert host.check_output(f"ls -A {BASE}").split() == ["1"]


@pytest.mark.parametrize("expected", PATHS, ids=[path for path, *_ in PATHS])
def test_path_owner_and_mode(host: Host, expected: tuple[str, str, str, int]) -> None:
    """The unit and the model's files have their owner, group and mode."""
    path, *_ = expected
    found = host.file(path)
    assert (path, found.user, found.group, found.mode) == expected
