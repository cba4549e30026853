"""The deployed stream link under CURVE: key files only where they belong, the producer listing exactly the
consumers' public keys, and consumers without a listed key getting nothing from a real job.

The job here holds the real consumers back until two rogue consumers on a consumer host (one with a key pair
the producer does not list, one without CURVE) have tried and been refused; then the real consumers take the
whole job.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.conftest import PLAYBOOK_TIMEOUT_S, REPO, LocalCopy, hosts_of
from tests.infra.test_producer import run_job_command
from tests.mariadb_checks import sql

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PRODUCER = hosts_of("producers")[0]
CONSUMER_HOSTS = hosts_of("consumers")
DB_HOST = hosts_of("db")[0]
CONSUMERS = "imgsieve-consumer@1 imgsieve-consumer@2"
KEYS = "/etc/imgsieve/curve"
IMGSIEVE = "/opt/imgsieve/venv/bin/imgsieve"
JOB = "infra-curve"
PORT = 5557
ROGUE_DIR = "/var/lib/imgsieve/rogue"
REFUSAL_TIMEOUT_S = 60.0
HELLO_RETRY_S = 6.0  # a consumer not welcomed says HELLO again on a fresh socket every 5 s
# (group, path, owner, group, mode) of the CURVE files: secrets are the service user's alone.
KEY_FILES_BY_GROUP = [
    (group, path, owner, file_group, mode)
    for group in ("consumers", "producers")
    for path, owner, file_group, mode in [
        (KEYS, "imgsieve", "imgsieve", 0o750),
        (f"{KEYS}/{{host}}.key_secret", "imgsieve", "imgsieve", 0o600),
        (f"{KEYS}/{{host}}.key", "imgsieve", "imgsieve", 0o644),
    ]
] + [
    ("consumers", f"{KEYS}/producer.key", "root", "imgsieve", 0o644),
    ("producers", f"{KEYS}/authorized", "root", "imgsieve", 0o750),
]
KEY_FILES = [
    (name, path.format(host=name), owner, group, mode)
    for group_name, path, owner, group, mode in KEY_FILES_BY_GROUP
    for name in hosts_of(group_name)
]


@dataclass(frozen=True)
class GuardedJob:
    """What happened to a job while only rogue consumers were connected, and after."""

    rows_while_rogues_only: int
    journal: str
    rogue_public_key: str
    hosts: dict[str, int]  # rows by consumer host
    images: int


def rogue_unit(name: str, config: str, environment: dict[str, str]) -> str:
    """A transient unit running `imgsieve consume` as the service user, named by name in its rows."""
    settings = " ".join(f"-E {key}={shlex.quote(value)}" for key, value in environment.items())
    return (
        f"systemd-run --unit={name} --uid=imgsieve --gid=imgsieve -E IMGSIEVE_CONSUMER_HOST={name} {settings}"
        f" {IMGSIEVE} consume --config {config}"
    )


@pytest.fixture(scope="module")
def guarded_job(local_copy: LocalCopy, sample_unlabelled: Path) -> GuardedJob:
    """A job whose real consumers wait until the rogues were refused; the rogues stay connected throughout."""
    producer = local_copy.host(PRODUCER)
    rogue_host = local_copy.host(CONSUMER_HOSTS[0])
    rogue_host.check_output(
        f"install -d -o imgsieve -g imgsieve -m 0700 {ROGUE_DIR} && "
        f"runuser -u imgsieve -- {IMGSIEVE} keys {ROGUE_DIR} --name unlisted && "
        # The same config without the CURVE keys: a consumer that speaks plain ZeroMQ.
        f"grep -v '^curve_' /etc/imgsieve/consumer.toml > {ROGUE_DIR}/plain.toml && "
        f"chown imgsieve {ROGUE_DIR}/plain.toml"
    )
    rogue_public = rogue_host.check_output(
        f"sed -n 's/^ *public-key = \"\\(.*\\)\"$/\\1/p' {ROGUE_DIR}/unlisted.key"
    )
    for name in CONSUMER_HOSTS:
        local_copy.host(name).check_output(f"systemctl stop {CONSUMERS}")
    command = run_job_command(local_copy, JOB, f"/var/lib/imgsieve/sources/{JOB}", sample_unlabelled)
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    playbook = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, text=True)
    journal_command = f"journalctl -u imgsieve-job@{JOB} --no-pager -o cat"
    try:
        deadline = time.monotonic() + REFUSAL_TIMEOUT_S
        while not producer.socket(f"tcp://0.0.0.0:{PORT}").is_listening:
            assert playbook.poll() is None and time.monotonic() < deadline, (
                "the job's producer never listened"
            )
            time.sleep(0.5)
        secret = {"IMGSIEVE_CONSUMER_CURVE_SECRET_KEY": f"{ROGUE_DIR}/unlisted.key_secret"}
        rogue_host.check_output(rogue_unit("rogue-unlisted", "/etc/imgsieve/consumer.toml", secret))
        rogue_host.check_output(rogue_unit("rogue-plain", f"{ROGUE_DIR}/plain.toml", {}))
        while f"CURVE public key {rogue_public}" not in producer.check_output(journal_command):
            assert time.monotonic() < deadline, "the producer never refused the unlisted key"
            time.sleep(0.5)
        time.sleep(HELLO_RETRY_S)  # both rogues keep saying HELLO meanwhile
        rows_while_rogues_only = int(
            sql(local_copy.host(DB_HOST), f"SELECT COUNT(*) FROM imgsieve.predictions WHERE job = '{JOB}'")[0]
        )
    finally:
        for name in CONSUMER_HOSTS:
            local_copy.host(name).check_output(f"systemctl start {CONSUMERS}")
    output, _ = playbook.communicate(timeout=PLAYBOOK_TIMEOUT_S)
    rogue_host.run("systemctl stop rogue-unlisted rogue-plain")
    rogue_host.run(f"rm -rf {ROGUE_DIR}")
    if playbook.returncode != 0:
        pytest.fail(f"{shlex.join(command)} failed ({playbook.returncode}):\n{output[-6000:]}")
    counts = sql(
        local_copy.host(DB_HOST),
        "SELECT SUBSTRING_INDEX(consumer_host, '/', 1), COUNT(*) FROM imgsieve.predictions"
        f" WHERE job = '{JOB}' GROUP BY 1",
    )
    hosts = {host: int(count) for host, count in (line.split("\t") for line in counts)}
    journal = producer.check_output(journal_command)
    images = len(list(sample_unlabelled.glob("*.jpg")))
    return GuardedJob(rows_while_rogues_only, journal, rogue_public, hosts, images)


@pytest.mark.parametrize(
    ("name", "expected"),
    [(name, tuple(entry)) for name, *entry in KEY_FILES],
    ids=[f"{name}:{path}" for name, path, *_ in KEY_FILES],
)
def test_key_file_owner_and_mode(
    local_copy: LocalCopy, name: str, expected: tuple[str, str, str, int]
) -> None:
    """Each CURVE file has its owner, group and mode; secret keys are 0600 and the service user's."""
    path, owner, group, mode = expected
    found = local_copy.host(name).file(path)
    assert found.exists, f"{path} is missing on {name}"
    assert (found.user, found.group, oct(found.mode)) == (owner, group, oct(mode))


@pytest.mark.parametrize("name", [*CONSUMER_HOSTS, PRODUCER])
def test_no_other_hosts_secret_key(local_copy: LocalCopy, name: str) -> None:
    """A host holds its own secret key and no other host's."""
    secrets = local_copy.host(name).check_output(f"find {KEYS} -name '*.key_secret' -printf '%f\\n'")
    assert secrets.split() == [f"{name}.key_secret"]


def test_producer_lists_exactly_the_consumers_public_keys(local_copy: LocalCopy) -> None:
    """authorized/ on the producer holds each consumer's public key, as on the consumer, and nothing else."""
    producer = local_copy.host(PRODUCER)
    assert producer.check_output(f"ls {KEYS}/authorized").split() == [f"{n}.key" for n in CONSUMER_HOSTS]
    for name in CONSUMER_HOSTS:
        own = local_copy.host(name).file(f"{KEYS}/{name}.key").content_string
        assert producer.file(f"{KEYS}/authorized/{name}.key").content_string == own


@pytest.mark.parametrize("name", CONSUMER_HOSTS)
def test_consumers_trust_the_producers_public_key(local_copy: LocalCopy, name: str) -> None:
    """Each consumer's producer.key is the producer's own public key."""
    own = local_copy.host(PRODUCER).file(f"{KEYS}/{PRODUCER}.key").content_string
    assert local_copy.host(name).file(f"{KEYS}/producer.key").content_string == own


def test_consumers_without_a_listed_key_get_nothing(guarded_job: GuardedJob) -> None:
    """While only the rogues were connected the job wrote no row; then the real consumers wrote every one."""
    assert guarded_job.rows_while_rogues_only == 0
    assert not any(host.startswith("rogue") for host in guarded_job.hosts), guarded_job.hosts
    assert sum(guarded_job.hosts.values()) == guarded_job.images


def test_producer_names_the_refused_key(guarded_job: GuardedJob) -> None:
    """The job's journal says which key was refused, so an operator can tell a rogue from a missing listing."""
    assert f"refused a consumer whose CURVE public key {guarded_job.rogue_public_key}" in guarded_job.journal
    assert "CURVE: encrypted, authorized consumers only" in guarded_job.journal
