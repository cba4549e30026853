"""What the roles leave on each deployed host: files with their owners and modes (configs holding a password
are readable by the service group only), and the package of this checkout, with TensorFlow on model servers
only."""

from __future__ import annotations

import shlex

import pytest

import imgsieve
from tests.infra.conftest import LocalCopy, hosts_of

pytestmark = [pytest.mark.slow, pytest.mark.integration]

VENV_PYTHON = "/opt/imgsieve/venv/bin/python"
PRINT_VERSION = "import importlib.metadata as m; print(m.version('imgsieve'))"
HAS_TENSORFLOW = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"
MODEL = "demo"
# (group, path, owner, group, mode) of what each group's roles write.
FILES_BY_GROUP = [
    ("consumers", "/etc/imgsieve/consumer.toml", "root", "imgsieve", 0o640),
    ("consumers", "/etc/systemd/system/imgsieve-consumer@.service", "root", "root", 0o644),
    ("model_servers", "/etc/systemd/system/imgsieve-model-server.service", "root", "root", 0o644),
    ("model_servers", "/var/lib/imgsieve/models", "root", "imgsieve", 0o750),
    ("model_servers", f"/var/lib/imgsieve/models/{MODEL}", "root", "imgsieve", 0o750),
    ("producers", "/etc/imgsieve/producer.toml", "root", "imgsieve", 0o640),
    ("producers", "/etc/imgsieve/producer.env", "root", "imgsieve", 0o640),
    ("producers", "/etc/imgsieve/jobs", "root", "imgsieve", 0o750),
    ("producers", "/etc/systemd/system/imgsieve-job@.service", "root", "root", 0o644),
]
FILES = [(name, tuple(entry)) for group, *entry in FILES_BY_GROUP for name in hosts_of(group)]
ALL_HOSTS = hosts_of("imgsieve")
MODEL_HOSTS = hosts_of("model_servers")


@pytest.mark.parametrize(("name", "expected"), FILES, ids=[f"{name}:{path}" for name, (path, *_) in FILES])
def test_file_owner_and_mode(local_copy: LocalCopy, name: str, expected: tuple[str, str, str, int]) -> None:
    """Each file the roles write has its owner, group and mode."""
    path, owner, group, mode = expected
    found = local_copy.host(name).file(path)
    assert found.exists, f"{path} is missing on {name}"
    assert (found.user, found.group, oct(found.mode)) == (owner, group, oct(mode))


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_installed_version_is_this_checkouts(local_copy: LocalCopy, name: str) -> None:
    """The package in each host's virtualenv is the version of this checkout."""
    command = shlex.join([VENV_PYTHON, "-c", PRINT_VERSION])
    assert local_copy.host(name).check_output(command) == imgsieve.__version__


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_tensorflow_only_on_model_servers(local_copy: LocalCopy, name: str) -> None:
    """Model servers get the model extra (TensorFlow); every other host the base install without it."""
    has_tensorflow = local_copy.host(name).run(shlex.join([VENV_PYTHON, "-c", HAS_TENSORFLOW])).rc == 0
    assert has_tensorflow == (name in MODEL_HOSTS)
