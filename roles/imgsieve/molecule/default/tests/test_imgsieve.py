"""What role imgsieve leaves on a host, checked inside the molecule container: the base install (no extras)
of this checkout's package in /opt/imgsieve/venv, from a wheelhouse and with no package index."""

from __future__ import annotations

import json
import shlex

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

import imgsieve

VENV = "/opt/imgsieve/venv"
WHEELHOUSE = "/opt/imgsieve/wheelhouse"
PRINT_VERSION = "import importlib.metadata as m; print(m.version('imgsieve'))"
# (module, installed): the base install has the stream's dependencies and not TensorFlow.
MODULES = [("zmq", True), ("pymysql", True), ("PIL", True), ("tensorflow", False), ("keras", False)]
# (path, owner, group, mode): code and wheels are root's and readable by all.
PATHS = [
    (VENV, "root", "root", 0o755),
    (WHEELHOUSE, "root", "root", 0o755),
    (f"{VENV}/imgsieve-build.json", "root", "root", 0o644),
]


def python(code: str) -> str:
    """A shell command running code with the virtualenv's Python."""
    return shlex.join([f"{VENV}/bin/python", "-c", code])


def test_installed_version_is_this_checkouts(host: Host) -> None:
    """The virtualenv holds the version of imgsieve this checkout defines."""
    assert host.check_output(python(PRINT_VERSION)) == imgsieve.__version__


def test_command_runs(host: Host) -> None:
    """The imgsieve command starts and reports its version."""
    assert host.check_output(f"{VENV}/bin/imgsieve --version") == f"imgsieve {imgsieve.__version__}"


@pytest.mark.parametrize(("module", "installed"), MODULES)
def test_dependency_installed_only_for_the_extras(host: Host, module: str, installed: bool) -> None:
    """The stream's dependencies are importable; the model extra's are absent."""
    found = host.run(
        python(f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)")
    )
    assert (found.rc == 0) == installed


def test_requirements_are_consistent(host: Host) -> None:
    """pip finds every installed package's requirements met."""
    assert host.run(f"{VENV}/bin/pip check").rc == 0


def test_build_record_names_version_and_extras(host: Host) -> None:
    """The build record says which version, with which extras, was installed."""
    record = json.loads(host.file(f"{VENV}/imgsieve-build.json").content_string)
    assert (record["version"], record["extras"]) == (imgsieve.__version__, [])


def test_wheelhouse_holds_the_package_and_no_tensorflow(host: Host) -> None:
    """The host's wheelhouse has this version's wheel and no TensorFlow wheel."""
    wheels = host.check_output(f"ls {WHEELHOUSE}").split()
    assert f"imgsieve-{imgsieve.__version__}-py3-none-any.whl" in wheels
    assert not [wheel for wheel in wheels if wheel.startswith("tensorflow")]


@pytest.mark.parametrize("expected", PATHS, ids=[path for path, *_ in PATHS])
def test_path_owner_and_mode(host: Host, expected: tuple[str, str, str, int]) -> None:
    """The virtualenv, the wheelhouse and the build record have their owner, group and mode."""
    path, *_ = expected
    found = host.file(path)
    assert (path, found.user, found.group, found.mode) == expected
