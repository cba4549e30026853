"""What role common leaves on a host, checked inside the molecule container with the role's defaults."""

from __future__ import annotations

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

# (path, owner, group, mode): code is root's, config readable by the service group, state the service's.
DIRECTORIES = [
    ("/opt/imgsieve", "root", "root", 0o755),
    ("/etc/imgsieve", "root", "imgsieve", 0o750),
    ("/var/lib/imgsieve", "imgsieve", "imgsieve", 0o750),
]
PACKAGES = ["acl", "ca-certificates", "python3-venv"]
SYSTEM_UID_MAX = 999


def test_service_user_is_a_system_account(host: Host) -> None:
    """The service user exists with a system uid and its own group."""
    user = host.user("imgsieve")
    assert user.exists
    assert user.uid <= SYSTEM_UID_MAX
    assert user.group == "imgsieve"


def test_service_user_cannot_log_in(host: Host) -> None:
    """The service user has no login shell and a locked password."""
    user = host.user("imgsieve")
    assert user.shell == "/usr/sbin/nologin"
    assert user.password in ("!", "*", "!*")


def test_service_user_home_is_the_state_directory(host: Host) -> None:
    """The service user's home is its state directory."""
    assert host.user("imgsieve").home == "/var/lib/imgsieve"


@pytest.mark.parametrize(("path", "owner", "group", "mode"), DIRECTORIES)
def test_directory_ownership_and_mode(host: Host, path: str, owner: str, group: str, mode: int) -> None:
    """Each directory exists with its owner, group and mode."""
    directory = host.file(path)
    assert directory.is_directory
    assert (directory.user, directory.group, directory.mode) == (owner, group, mode)


@pytest.mark.parametrize("name", PACKAGES)
def test_base_package_installed(host: Host, name: str) -> None:
    """Each base package is installed."""
    assert host.package(name).is_installed


def test_no_time_sync_daemon_in_a_container(host: Host) -> None:
    """In a container the clock is the machine's, so chrony is not installed."""
    assert host.check_output("systemd-detect-virt --container") != "none"
    assert not host.package("chrony").is_installed
