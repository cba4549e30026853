"""The deployed local hosts: every host boots with systemd, role common's user and directories are in place,
and site.yml converges (a second run changes nothing)."""

from __future__ import annotations

import pytest

from tests.infra.conftest import LocalCopy, hosts_of

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ALL_HOSTS = hosts_of("imgsieve")
# (path, owner, group, mode): code is root's, config readable by the service group, state the service's.
DIRECTORIES = [
    ("/opt/imgsieve", "root", "root", 0o755),
    ("/etc/imgsieve", "root", "imgsieve", 0o750),
    ("/var/lib/imgsieve", "imgsieve", "imgsieve", 0o750),
]
SYSTEM_UID_MAX = 999


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_host_booted_systemd_to_running(local_copy: LocalCopy, name: str) -> None:
    """systemd on each host finished booting with no failed unit."""
    host = local_copy.host(name)
    state = host.run("systemctl is-system-running").stdout.strip()
    if state != "running":
        pytest.fail(f"{name} is {state}: " + host.run("systemctl --failed --no-legend --plain").stdout)


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_host_name_is_its_container_name(local_copy: LocalCopy, name: str) -> None:
    """Each host calls itself by its container name, the name the others reach it by."""
    assert local_copy.host(name).check_output("hostname") == local_copy.container(name)


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_service_user_is_a_system_account_without_login(local_copy: LocalCopy, name: str) -> None:
    """The service user is a system account with its own group, no login shell and its state dir as home."""
    user = local_copy.host(name).user("imgsieve")
    assert user.exists
    assert user.uid <= SYSTEM_UID_MAX
    assert (user.group, user.shell, user.home) == ("imgsieve", "/usr/sbin/nologin", "/var/lib/imgsieve")


@pytest.mark.parametrize("name", ALL_HOSTS)
@pytest.mark.parametrize("expected", DIRECTORIES, ids=[path for path, *_ in DIRECTORIES])
def test_directory_ownership_and_mode(
    local_copy: LocalCopy, name: str, expected: tuple[str, str, str, int]
) -> None:
    """Each directory exists with its owner, group and mode."""
    path, *_ = expected
    directory = local_copy.host(name).file(path)
    assert directory.is_directory
    assert (path, directory.user, directory.group, directory.mode) == expected


def test_site_second_run_changes_nothing(local_copy: LocalCopy) -> None:
    """Applying site.yml again to the deployed hosts reports no change on any host."""
    changed = local_copy.playbook("site.yml")
    assert changed, "no PLAY RECAP in the output of site.yml"
    assert {host: count for host, count in changed.items() if count} == {}
