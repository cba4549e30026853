"""The deployed producer: its config files, the package without TensorFlow, and a job run with
playbooks/run_job.yml from start to summary, with port 5557 open only while the job runs."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.conftest import PLAYBOOK_TIMEOUT_S, REPO, VENV_BIN, LocalCopy, hosts_of

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PRODUCER = hosts_of("producers")[0]
CONSUMER_HOSTS = hosts_of("consumers")
CONSUMERS = "imgsieve-consumer@1 imgsieve-consumer@2"
PORT = 5557
JOB = "infra-producer"
LISTEN_TIMEOUT_S = 60


@dataclass(frozen=True)
class JobRun:
    """What run_job.yml printed and whether the producer listened while the job waited for consumers."""

    output: str
    listened_while_running: bool
    images: int


def run_job_command(copy: LocalCopy, job: str, source: str, upload: Path) -> list[str]:
    """ansible-playbook playbooks/run_job.yml for this copy of the hosts."""
    playbook = [str(VENV_BIN / "ansible-playbook"), "playbooks/run_job.yml", "-e", copy.extra_vars]
    return [*playbook, "-e", f"job={job}", "-e", f"source={source}", "-e", f"upload={upload}"]


@pytest.fixture(scope="module")
def job_run(local_copy: LocalCopy, sample_unlabelled: Path) -> JobRun:
    """A job on the sample images; the consumers are held back until the producer is seen listening."""
    producer = local_copy.host(PRODUCER)
    for name in CONSUMER_HOSTS:
        local_copy.host(name).check_output(f"systemctl stop {CONSUMERS}")
    command = run_job_command(local_copy, JOB, f"/var/lib/imgsieve/sources/{JOB}", sample_unlabelled)
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    playbook = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + LISTEN_TIMEOUT_S
        listened = False
        while not listened and playbook.poll() is None and time.monotonic() < deadline:
            listened = producer.socket(f"tcp://0.0.0.0:{PORT}").is_listening
    finally:
        for name in CONSUMER_HOSTS:
            local_copy.host(name).check_output(f"systemctl start {CONSUMERS}")
    output, _ = playbook.communicate(timeout=PLAYBOOK_TIMEOUT_S)
    if playbook.returncode != 0:
        pytest.fail(f"{shlex.join(command)} failed ({playbook.returncode}):\n{output[-6000:]}")
    return JobRun(output, listened, len(list(sample_unlabelled.glob("*.jpg"))))


def test_job_summary_counts_every_image(job_run: JobRun) -> None:
    """run_job.yml prints the produce command's summary: one classified row per sample image."""
    assert f"job {JOB}: {job_run.images} images in" in job_run.output
    assert f"images:      {job_run.images} rows" in job_run.output
    assert "errors:      0" in job_run.output


def test_producer_listens_while_the_job_runs(job_run: JobRun) -> None:
    """While the job waits for consumers, the producer listens on its port."""
    assert job_run.listened_while_running


def test_producer_port_closed_after_the_job(local_copy: LocalCopy, job_run: JobRun) -> None:
    """Once the job has ended nothing listens on the producer's port."""
    assert not local_copy.host(PRODUCER).socket(f"tcp://{PORT}").is_listening


def test_job_unit_ended_successfully(local_copy: LocalCopy, job_run: JobRun) -> None:
    """The job's unit is inactive with result success."""
    shown = local_copy.host(PRODUCER).check_output(
        f"systemctl show --property=ActiveState,Result imgsieve-job@{JOB}.service"
    )
    assert sorted(shown.splitlines()) == ["ActiveState=inactive", "Result=success"]
