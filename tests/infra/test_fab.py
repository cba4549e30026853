"""fab against the deployed local hosts, run as `fab` is run: a subprocess from the repository root, hosts
taken from the inventory. Each task is checked by what it shows or changes on the hosts."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import free_port
from tests.infra.conftest import PLAYBOOK_TIMEOUT_S, REPO, VENV_BIN, LocalCopy, hosts_of
from tests.infra.test_producer import run_job_command

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TASKS = ["logs", "predict", "progress", "restart", "scale", "status"]
CONSUMER_HOSTS = hosts_of("consumers")
WORKERS = 2
JOB = "infra-fab"
CLASSES = {"drugs", "other"}


def fab(copy: LocalCopy, *args: str, inventory: str = "") -> subprocess.CompletedProcess[str]:
    """Run fab with args against this copy of the hosts (and more inventory sources, if given)."""
    environment = {**os.environ, "IMGSIEVE_EXTRA_VARS": copy.extra_vars, "IMGSIEVE_INVENTORY": inventory}
    return subprocess.run(
        [str(VENV_BIN / "fab"), *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=PLAYBOOK_TIMEOUT_S,
        check=False,
    )


def main_pids(copy: LocalCopy) -> dict[tuple[str, str], str]:
    """The main PID of every wanted consumer instance, by (host, instance)."""
    return {
        (name, str(n)): copy.host(name).check_output(
            f"systemctl show --property=MainPID --value imgsieve-consumer@{n}"
        )
        for name in CONSUMER_HOSTS
        for n in range(1, WORKERS + 1)
    }


@pytest.fixture(scope="module")
def finished_job(local_copy: LocalCopy, sample_unlabelled: Path) -> int:
    """Run a job on the sample images to its end; return how many images it had."""
    command = run_job_command(local_copy, JOB, f"/var/lib/imgsieve/sources/{JOB}", sample_unlabelled)
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:]
    return len(list(sample_unlabelled.glob("*.jpg")))


def test_list_shows_every_task_with_its_docstring(local_copy: LocalCopy) -> None:
    """`fab --list` names each task with a one-line description."""
    listed = fab(local_copy, "--list").stdout
    assert re.findall(r"^  (\w+)\s+\S", listed, re.MULTILINE) == TASKS


def test_status_shows_every_host(local_copy: LocalCopy) -> None:
    """`fab status` has a line for every host of the inventory."""
    shown = fab(local_copy, "status").stdout
    assert {line.split()[0] for line in shown.splitlines() if line.strip()} >= set(hosts_of("imgsieve"))


@pytest.mark.parametrize(
    "unit",
    [
        "mariadb.service",
        "imgsieve-model-server.service",
        "imgsieve-consumer@1.service",
        "imgsieve-consumer@2.service",
    ],
)
def test_status_shows_services_running(local_copy: LocalCopy, unit: str) -> None:
    """`fab status` reports each deployed service active (running)."""
    shown = fab(local_copy, "status").stdout
    assert re.search(rf"\s{re.escape(unit)}\s+active \(running\)$", shown, re.MULTILINE), shown


def test_logs_show_every_consumer_host(local_copy: LocalCopy) -> None:
    """`fab logs --no-follow` prints the consumers' journal lines of each consumer host."""
    result = fab(local_copy, "logs", "--group", "consumers", "--lines", "5", "--no-follow")
    assert result.returncode == 0, result.stderr
    for name in CONSUMER_HOSTS:
        assert f" {local_copy.container(name)} imgsieve-consumer@" in result.stdout


def test_restart_gives_every_consumer_a_new_process(local_copy: LocalCopy) -> None:
    """`fab restart` restarts each consumer instance (new main PID) and leaves it active."""
    before = main_pids(local_copy)
    result = fab(local_copy, "restart")
    assert result.returncode == 0, result.stderr
    after = main_pids(local_copy)
    assert all(after[key] not in ("0", before[key]) for key in before), (before, after)


def test_scale_up_starts_more_instances(local_copy: LocalCopy) -> None:
    """`fab scale --workers 3` runs a third instance on each consumer host."""
    try:
        assert fab(local_copy, "scale", "--workers", "3").returncode == 0
        for name in CONSUMER_HOSTS:
            assert local_copy.host(name).service("imgsieve-consumer@3").is_running
    finally:
        fab(local_copy, "scale", "--workers", str(WORKERS))


def test_scale_down_stops_and_disables_extra_instances(local_copy: LocalCopy) -> None:
    """Scaling back to 2 stops and disables instance 3."""
    assert fab(local_copy, "scale", "--workers", "3").returncode == 0
    assert fab(local_copy, "scale", "--workers", str(WORKERS)).returncode == 0
    for name in CONSUMER_HOSTS:
        service = local_copy.host(name).service("imgsieve-consumer@3")
        assert not service.is_running and not service.is_enabled


def test_predict_prints_a_class_and_its_scores(local_copy: LocalCopy, sample_unlabelled: Path) -> None:
    """`fab predict IMAGE` prints the image's class and a score for every class."""
    image = sorted(sample_unlabelled.glob("*.jpg"))[0]
    result = fab(local_copy, "predict", str(image))
    assert result.returncode == 0, result.stderr
    head, *scores = result.stdout.splitlines()
    assert head.startswith(f"{image}: ") and head.split()[1] in CLASSES
    assert {line.split()[0] for line in scores} == CLASSES


def test_progress_shows_a_finished_jobs_rows(local_copy: LocalCopy, finished_job: int) -> None:
    """`fab progress JOB` shows the job's unit ended and one ok row per image."""
    result = fab(local_copy, "progress", JOB)
    assert result.returncode == 0, result.stderr
    assert f"imgsieve-job@{JOB}.service on {hosts_of('producers')[0]}: inactive" in result.stdout
    assert f"rows        {finished_job}: {finished_job} ok, 0 errors" in result.stdout


def test_unreachable_host_is_named_in_a_readable_error(local_copy: LocalCopy, tmp_path: Path) -> None:
    """With a consumer that cannot be reached, `fab status` fails with one line naming that host."""
    ghost = {"ansible_host": "127.0.0.1", "ansible_port": free_port(), "ansible_ssh_common_args": ""}
    extra = tmp_path / "ghost.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"consumers": {"hosts": {"ghost": ghost}}}}}))
    result = fab(local_copy, "status", inventory=f"{REPO / 'inventory' / 'local'}{os.pathsep}{extra}")
    assert result.returncode == 1
    assert re.search(r"failed on 1 of \d+ host\(s\):\n  ghost: .*Unable to connect", result.stderr), (
        result.stderr
    )
    assert "Traceback" not in result.stderr
