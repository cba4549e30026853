"""What role producer leaves on a host, checked inside the molecule container: its settings, the store's
URL and password for jobs and `imgsieve db`, the job template unit, and no job running."""

from __future__ import annotations

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

# `imgsieve db status` as a job would run it: the service user, the environment file the job unit reads.
DB_STATUS = (
    "systemd-run --quiet --wait --pipe --collect --uid=imgsieve --gid=imgsieve"
    " -p EnvironmentFile=/etc/imgsieve/producer.env /opt/imgsieve/venv/bin/imgsieve db status </dev/null"
)
KEYS = "/etc/imgsieve/curve"
SECRET_KEY = f"{KEYS}/imgsieve-molecule-producer.key_secret"
# (path, owner, group, mode): producer.env holds the store's password.
PATHS = [
    ("/etc/imgsieve/producer.toml", "root", "imgsieve", 0o640),
    ("/etc/imgsieve/producer.env", "root", "imgsieve", 0o640),
    ("/etc/imgsieve/jobs", "root", "imgsieve", 0o750),
    ("/var/lib/imgsieve/jobs", "root", "imgsieve", 0o750),
    ("/etc/systemd/system/imgsieve-job@.service", "root", "root", 0o644),
    # The CURVE secret key is the service user's alone.
    (KEYS, "imgsieve", "imgsieve", 0o750),
    (SECRET_KEY, "imgsieve", "imgsieve", 0o600),
    (f"{KEYS}/authorized", "root", "imgsieve", 0o750),
    (f"{KEYS}/authorized/imgsieve-molecule-producer.key", "root", "imgsieve", 0o644),
]
# (path, line): what converge.yml sets, as the files state it.
LINES = [
    ("/etc/imgsieve/producer.toml", 'bind = "tcp://*:5557"'),
    ("/etc/imgsieve/producer.toml", "prefetch = 16"),
    ("/etc/imgsieve/producer.toml", f'curve_secret_key = "{SECRET_KEY}"'),
    ("/etc/imgsieve/producer.toml", f'curve_authorized_keys = "{KEYS}/authorized"'),
    ("/etc/imgsieve/producer.env", "IMGSIEVE_DB_URL=mysql://molecule_producer@127.0.0.1:3306/imgsieve"),
    ("/etc/imgsieve/producer.env", 'IMGSIEVE_DB_PASSWORD="molecule-only-producer"'),
]


@pytest.mark.parametrize("expected", PATHS, ids=[path for path, *_ in PATHS])
def test_path_owner_and_mode(host: Host, expected: tuple[str, str, str, int]) -> None:
    """The config files, the jobs' directories and the unit have their owner, group and mode."""
    path, *_ = expected
    found = host.file(path)
    assert (path, found.user, found.group, found.mode) == expected


@pytest.mark.parametrize(("path", "line"), LINES)
def test_file_states_the_setting(host: Host, path: str, line: str) -> None:
    """Each file holds the settings converge.yml gave."""
    assert line in host.file(path).content_string.splitlines()


def test_job_unit_is_valid(host: Host) -> None:
    """systemd accepts the job template unit for an instance."""
    result = host.run("systemd-analyze verify imgsieve-job@check.service")
    assert "imgsieve-job@" not in result.stderr, result.stderr


def test_store_reachable_with_the_environment_file(host: Host) -> None:
    """`imgsieve db status` with the job's environment logs in to the store and reads the jobs table."""
    result = host.run(DB_STATUS)
    assert result.rc == 0, result.stderr
    assert result.stdout.startswith("database    127.0.0.1:3306/imgsieve ")
    assert "jobs        0 rows" in result.stdout.splitlines()


def test_no_job_and_no_listening_port(host: Host) -> None:
    """Without a job nothing listens on the producer's port."""
    assert not host.socket("tcp://5557").is_listening


def test_authorized_keys_are_the_listed_consumers_public_keys(host: Host) -> None:
    """authorized/ holds each listed consumer's public key as read from its host, and nothing else."""
    assert host.check_output(f"ls {KEYS}/authorized") == "imgsieve-molecule-producer.key"
    listed = host.file(f"{KEYS}/authorized/imgsieve-molecule-producer.key").content_string
    assert listed == host.file(f"{KEYS}/imgsieve-molecule-producer.key").content_string
