"""Fault injection on a deployed copy of the local hosts: jobs of thousands of images run with
playbooks/run_job.yml, faults injected into hosts and services while they run, and each run's figures
read from the store on the db host (rows, duplicates, lost images, time to recover).

Time to recover: the fault's heal moment H is when the test ended the fault (the service started again,
the network rule removed), or when it struck, for faults the fleet must heal by itself (a host killed, the
database restarted). Recovery is the first moment t >= H from which the rows committed in [t, t + 2 s)
reach half the fault-free job's rate (or hold every row still to come, when fewer are left than such a
window needs: a fault that ends near the job's end); the figure is t - H, read from the rows' created_at, which is
committed on the db host with the same kernel clock the controller reads (the hosts are containers).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.infra.conftest import PLAYBOOK_TIMEOUT_S, REPO, VENV_BIN, LocalCopy, hosts_of
from tests.mariadb_checks import sql

SOURCES = "/var/lib/imgsieve/sources"
JOB_IMAGES = 2000
DISTINCT_PHOTOS = 200
PHOTO_SIDE = 320  # longest side of the job's photos: enough to vet and classify, cheap to copy
POLL_S = 0.5
RATE_WINDOW_S = 2.0
RECOVERED_SHARE = 0.5
ROWS_TIMEOUT_S = 300.0
HEALTH_TIMEOUT_S = 180.0
CONSUMER_UNITS = ("imgsieve-consumer@1", "imgsieve-consumer@2")
MODEL_UNIT = "imgsieve-model-server"
DB_UNIT = "mariadb"
MODEL_PORT = 8501
MODEL_NAME = "demo"
# Run with a host's system Python: print the body of a GET of the URL given as its argument.
GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
TABLE_FILE = REPO / ".cache" / "imgsieve" / "fault_table.json"
TABLE_COLUMNS = ("fault", "images", "rows", "duplicates", "lost", "errors", "rewritten", "job_s", "recover_s")


def make_photos(samples: Path, out: Path, count: int = DISTINCT_PHOTOS) -> list[Path]:
    """Write count distinct photos, crops of the sample photos at PHOTO_SIDE, as out/photo-N.jpg."""
    out.mkdir(parents=True, exist_ok=True)
    originals = sorted(samples.glob("*.jpg"))
    written = []
    for i in range(count):
        with Image.open(originals[i % len(originals)]) as image:
            width, height = image.size
            step = i // len(originals) + 1  # each round crops a little more off the corner
            box = (step * width // 50, step * height // 50, width, height)
            crop = image.convert("RGB").crop(box)
        crop.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
        path = out / f"photo-{i:04d}.jpg"
        crop.save(path, format="JPEG", quality=85)
        written.append(path)
    return written


def fill_folder(folder: Path, photos: list[Path], count: int = JOB_IMAGES) -> list[str]:
    """Link count names in folder to the photos in turn; return the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"img-{i:05d}.jpg"
        os.link(photos[i % len(photos)], folder / name)
        names.append(name)
    return names


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    """image encoded in fmt."""
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


@dataclass(frozen=True)
class Outcome:
    """One fault run's figures, a row of the fault table."""

    fault: str
    images: int
    rows: int
    duplicates: int
    lost: int
    errors: int
    rewritten: int  # images whose row was written again after a redelivery (one row, upserted)
    job_s: float
    recover_s: float | None


@dataclass(frozen=True)
class Rows:
    """What the store holds for one job's folder."""

    uris: list[str]
    statuses: dict[str, int]
    by_host: dict[str, int]
    created: list[float]  # epoch seconds each row was first committed, ascending
    hosts: list[str]  # the consumer host of each row, in the same order
    rewritten: int

    def committed(self, start: float, end: float, host: str | None = None) -> int:
        """Rows first committed in [start, end), by host if given."""
        return sum(
            1
            for at, by in zip(self.created, self.hosts, strict=True)
            if start <= at < end and host in (None, by)
        )

    def outcome(self, fault: str, expected: Iterable[str], recover_s: float | None) -> Outcome:
        """The fault table's row for these rows against the URIs the job had to write."""
        wanted = set(expected)
        span = self.created[-1] - self.created[0] if self.created else 0.0
        return Outcome(
            fault=fault,
            images=len(wanted),
            rows=len(self.uris),
            duplicates=len(self.uris) - len(set(self.uris)),
            lost=len(wanted - set(self.uris)),
            errors=self.statuses.get("error", 0),
            rewritten=self.rewritten,
            job_s=round(span, 1),
            recover_s=None if recover_s is None else round(recover_s, 1),
        )


def recovery_seconds(created: list[float], healed: float, rate: float) -> float | None:
    """Seconds from healed until rows flow again at RECOVERED_SHARE of rate (see the module docstring)."""
    wanted = RECOVERED_SHARE * rate * RATE_WINDOW_S
    after = [t for t in created if t >= healed]
    for i, start in enumerate(after):
        window = sum(1 for t in after[i:] if t < start + RATE_WINDOW_S)
        if window >= min(wanted, len(after) - i):
            return start - healed
    return None


class Fleet:
    """The deployed copy as a fault injector sees it: its hosts, containers, units and store."""

    def __init__(self, copy: LocalCopy):
        self.copy = copy
        self.db = copy.host(hosts_of("db")[0])
        self.model = copy.host(hosts_of("model_servers")[0])
        self.producer_name = hosts_of("producers")[0]
        self.consumer_names = hosts_of("consumers")
        self.running: list[subprocess.Popen[str]] = []  # job playbooks started and not yet waited for

    # --- The store ---------------------------------------------------------------------------------------

    def query(self, statement: str) -> list[list[str]]:
        """Rows of statement run as root on the db host, each a list of its columns as text."""
        return [line.split("\t") for line in sql(self.db, statement)]

    def row_count(self, job: str) -> int:
        """Rows written for job so far; 0 while the store cannot be read (it may be restarting)."""
        try:
            return int(self.query(f"SELECT COUNT(*) FROM imgsieve.predictions WHERE job = '{job}'")[0][0])
        except AssertionError:
            return 0

    def rows(self, folder: str) -> Rows:
        """Every row of the images under folder on the producer host."""
        # Every row under the folder, whatever its model or job: a second row for an image is a duplicate.
        found = self.query(
            "SELECT source_uri, status, consumer_host, UNIX_TIMESTAMP(created_at), updated_at > created_at"
            f" FROM imgsieve.predictions WHERE source_uri LIKE '{folder}/%' ORDER BY created_at"
        )
        statuses: dict[str, int] = {}
        by_host: dict[str, int] = {}
        hosts = [r[2].split("/")[0] for r in found]
        for (_, status, *_), host in zip(found, hosts, strict=True):
            statuses[status] = statuses.get(status, 0) + 1
            by_host[host] = by_host.get(host, 0) + 1
        created = [float(r[3]) for r in found]
        return Rows([r[0] for r in found], statuses, by_host, created, hosts, sum(int(r[4]) for r in found))

    def reasons(self, folder: str) -> dict[str, tuple[str, str]]:
        """(status, error reason) of every row under folder, by file name."""
        found = self.query(
            f"SELECT source_uri, status, COALESCE(error_reason, '') FROM imgsieve.predictions"
            f" WHERE source_uri LIKE '{folder}/%'"
        )
        return {uri.rsplit("/", 1)[1]: (status, reason) for uri, status, reason in found}

    def wait_rows(self, job: str, at_least: int, job_run: subprocess.Popen[str] | None = None) -> None:
        """Wait until job has at_least rows; fail early if its playbook ended first."""
        deadline = time.monotonic() + ROWS_TIMEOUT_S
        while self.row_count(job) < at_least:
            if job_run is not None and job_run.poll() is not None:
                pytest.fail(
                    f"job {job} ended before it had {at_least} rows:\n{job_run.communicate()[0][-4000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"job {job} has fewer than {at_least} rows after {ROWS_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)

    # --- Jobs --------------------------------------------------------------------------------------------

    def start_job(self, job: str, folder: str, upload: Path | None = None) -> subprocess.Popen[str]:
        """Start playbooks/run_job.yml for job over folder on the producer host (uploading upload first)."""
        command = [str(VENV_BIN / "ansible-playbook"), "playbooks/run_job.yml", "-e", self.copy.extra_vars]
        command += ["-e", f"job={job}", "-e", f"source={folder}"]
        if upload is not None:
            command += ["-e", f"upload={upload}"]
        environment = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
        job_run = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.running.append(job_run)
        return job_run

    def end_job(self, job_run: subprocess.Popen[str], *, check: bool = True) -> str:
        """Wait for a job's playbook; return its output, failing the test if it failed and check is set."""
        output, _ = job_run.communicate(timeout=PLAYBOOK_TIMEOUT_S)
        self.running.remove(job_run)
        if check and job_run.returncode != 0:
            pytest.fail(f"run_job.yml failed ({job_run.returncode}):\n{output[-6000:]}")
        return output

    def end_jobs(self) -> None:
        """Wait for the jobs a failed test left running: the producer's port is free for the next job."""
        for job_run in list(self.running):
            self.end_job(job_run, check=False)

    def run_job(self, job: str, folder: str, upload: Path | None = None) -> str:
        """Run a job to its end; return the playbook's output."""
        return self.end_job(self.start_job(job, folder, upload))

    def copy_source(self, base: str, folder: str) -> None:
        """Make folder on the producer host a copy of base (hard links: instant, same owner and mode)."""
        producer = self.copy.host(self.producer_name)
        producer.check_output(f"rm -rf {folder} && cp -al {base} {folder}")

    # --- Hosts and units ---------------------------------------------------------------------------------

    def container(self, host: str) -> str:
        """The container of an inventory host."""
        return self.copy.container(host)

    def podman(self, *args: str) -> str:
        """Run podman on this machine; return its output."""
        result = subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=120)
        assert result.returncode == 0, f"podman {shlex.join(args)} failed: {result.stderr}"
        return result.stdout.strip()

    def address(self, host: str) -> str:
        """The host's address on the copy's network."""
        return self.podman(
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            self.container(host),
        )

    def in_netns(self, host: str, *argv: str) -> None:
        """Run argv from this machine inside the host's network namespace (the host itself lacks NET_ADMIN)."""
        pid = self.podman("inspect", "--format", "{{.State.Pid}}", self.container(host))
        subprocess.run(
            ["nsenter", "--target", pid, "--net", *argv], check=True, capture_output=True, timeout=30
        )

    def units(self) -> dict[str, tuple[str, ...]]:
        """The long-running units of every host, by inventory host."""
        units: dict[str, tuple[str, ...]] = {name: CONSUMER_UNITS for name in self.consumer_names}
        units[hosts_of("db")[0]] = (DB_UNIT,)
        units[hosts_of("model_servers")[0]] = (MODEL_UNIT,)
        return units

    def restarts(self) -> dict[tuple[str, str], str]:
        """NRestarts and MainPID of every consumer unit, by (host, unit)."""
        return {
            (name, unit): self.copy.host(name).check_output(
                f"systemctl show --property=NRestarts,MainPID --value {unit}"
            )
            for name in self.consumer_names
            for unit in CONSUMER_UNITS
        }

    def wait_healthy(self) -> None:
        """Wait until every host runs and every unit is active, and the model server has its model loaded."""
        for name in [*self.units(), self.producer_name]:
            state = self.podman("inspect", "--format", "{{.State.Status}}", self.container(name))
            if state != "running":
                self.podman("start", self.container(name))
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        # The producer host runs no unit between jobs: systemd's own state says it is up.
        pending = {**self.units(), self.producer_name: ("multi-user.target",)}
        while pending:
            for name, units in list(pending.items()):
                # A host that was just started answers 255 (ssh) until its sshd is up.
                if self.copy.host(name).run(f"systemctl is-active {' '.join(units)}").rc == 0:
                    del pending[name]
            if pending and time.monotonic() > deadline:
                pytest.fail(f"units not active after {HEALTH_TIMEOUT_S:.0f} s: {pending}")
            time.sleep(1)
        self.wait_model()

    def wait_model(self) -> None:
        """Wait until the model server answers a consumer host with an AVAILABLE version of its model."""
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        url = f"http://{self.container(hosts_of('model_servers')[0])}:{MODEL_PORT}/v1/models/{MODEL_NAME}"
        consumer = self.copy.host(self.consumer_names[0])
        while True:
            status = consumer.run(shlex.join(["python3", "-c", GET, url]))
            if status.rc == 0 and "AVAILABLE" in status.stdout:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"model server not AVAILABLE after {HEALTH_TIMEOUT_S:.0f} s: {status.stderr}")
            time.sleep(1)


def write_table(outcomes: list[Outcome], path: Path = TABLE_FILE) -> str:
    """Write the fault table as JSON to path and return it as aligned text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n", encoding="utf-8")
    cells = [list(TABLE_COLUMNS)] + [
        ["-" if value is None else str(value) for value in asdict(o).values()] for o in outcomes
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
