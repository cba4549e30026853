"""Role model_server with model_server_model_source s3, checked inside the molecule container: the highest
version under s3://models/imgsieve/tiny/ (moto on 127.0.0.1) downloaded, in place and served."""

from __future__ import annotations

import json
import shlex

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

BASE = "/var/lib/imgsieve/models/tiny"
URL = "http://127.0.0.1:8501/v1/models/tiny"
GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"
# Files of the exported version, as `imgsieve train` wrote them and prepare.yml uploaded them.
FILES = ["saved_model.pb", "variables/variables.index", "assets/labels.txt", "metrics.json"]


def test_service_is_active(host: Host) -> None:
    """The server runs; otherwise the failure shows its journal."""
    service = host.service("imgsieve-model-server")
    if not service.is_running:
        pytest.fail("not running:\n" + host.run("journalctl -u imgsieve-model-server -n 40").stdout)


def test_downloaded_version_is_available(host: Host) -> None:
    """Version 1, downloaded from S3, is AVAILABLE."""
    status = json.loads(host.check_output(shlex.join(["python3", "-c", GET, URL])))["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]


@pytest.mark.parametrize("name", FILES)
def test_object_downloaded_readable_by_the_service_group(host: Host, name: str) -> None:
    """Each object is in the version's folder, owned by root and readable by the service's group only."""
    found = host.file(f"{BASE}/1/{name}")
    assert (found.is_file, found.user, found.group, found.mode) == (True, "root", "imgsieve", 0o640)


def test_no_staging_folder_left(host: Host) -> None:
    """The download's hidden staging folder was renamed into place."""
    assert host.check_output(f"ls -A {BASE}").split() == ["1"]
