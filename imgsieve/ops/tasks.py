"""The day-2 operations fabfile.py offers: the commands each runs on the fleet's hosts, and the reports
it prints."""

from __future__ import annotations

import asyncio
import re
import shlex
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fabric import Connection  # type: ignore[import-untyped]

from imgsieve.errors import UserError
from imgsieve.ops.fleet import REPO, Fleet, ansible_command, connect

# What each group runs, as the roles name it (roles/*/defaults/main.yml).
GROUP_UNITS = {
    "db": "mariadb.service",
    "model_servers": "imgsieve-model-server.service",
    "consumers": "imgsieve-consumer@*.service",
    "producers": "imgsieve-job@*.service",
}
IMGSIEVE_BIN = "/opt/imgsieve/venv/bin/imgsieve"
PRODUCER_ENV_FILE = "/etc/imgsieve/producer.env"
JOB_PREFIX = "imgsieve-job@"
JOB_UNIT = JOB_PREFIX + "{}.service"
SERVICE_USER = "imgsieve"
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


def status(fleet: Fleet) -> str:
    """A table of every host's imgsieve services, then the progress of each running job."""
    units = " ".join(shlex.quote(unit) for unit in GROUP_UNITS.values())
    command = f"systemctl list-units --all --plain --no-legend --type=service {units}"
    results = fleet.run(fleet.specs, command, hide=True, warn=True)
    rows: list[tuple[str, str, str]] = []
    running_jobs: list[str] = []
    for spec in fleet.specs:
        found = [line.split(maxsplit=4) for line in results[spec.name].stdout.splitlines() if line.strip()]
        for unit, _load, active, sub, *_ in found:
            rows.append((spec.name, unit, f"{active} ({sub})"))
            if unit.startswith(JOB_PREFIX) and active in ("active", "activating"):
                running_jobs.append(unit.split("@", 1)[1].removesuffix(".service"))
        if not found:
            missing = [GROUP_UNITS[g] for g in spec.groups if g in GROUP_UNITS and g != "producers"]
            rows.append(
                (spec.name, ", ".join(missing) or "-", "MISSING: run site.yml" if missing else "no job")
            )
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{host:<{widths[0]}}  {unit:<{widths[1]}}  {state}" for host, unit, state in rows]
    lines += ["", *(progress(fleet, job) for job in running_jobs)] if running_jobs else []
    return "\n".join(lines)


def logs(fleet: Fleet, group: str, unit: str | None, lines: int, follow: bool) -> None:
    """Print (and with follow, keep printing) the journal of a group's service on all its hosts."""
    hosts = fleet.group(group)
    pattern = unit or GROUP_UNITS.get(group)
    if pattern is None:
        raise UserError(f"group {group!r} runs no imgsieve service; pass --unit UNIT")
    # The journal's short format starts each line with the host's name, so interleaved output stays readable.
    command = f"sudo -n journalctl --no-pager --output=short --lines={lines} --unit={shlex.quote(pattern)}"
    fleet.run(hosts, command + (" --follow" if follow else ""), hide=False, pty=False)


def restart_consumers(fleet: Fleet, timeout: float) -> list[str]:
    """Restart the running consumers one host at a time, each host's back to active before the next."""
    done: list[str] = []
    for spec in fleet.group("consumers"):
        with connect(spec) as connection:
            listed = connection.run(
                f"systemctl list-units --plain --no-legend --state=active {GROUP_UNITS['consumers']!r}",
                hide=True,
            ).stdout.splitlines()
            instances = [line.split()[0] for line in listed if line.strip()]
            if instances:
                connection.run("sudo -n systemctl restart " + " ".join(instances), hide=True)
                wait_active(connection, spec.name, instances, timeout)
        done.append(f"{spec.name}: restarted {len(instances)} consumer(s) {' '.join(instances)}".rstrip())
    return done


def wait_active(connection: Connection, name: str, units: Sequence[str], timeout: float) -> None:
    """Wait until every unit is active; raise with their journal when one is not after timeout seconds."""
    command = "systemctl is-active " + " ".join(units)
    states: list[str] = []
    for _ in range(max(1, int(timeout))):
        states = connection.run(command, hide=True, warn=True).stdout.split()
        if states and all(state == "active" for state in states):
            return
        connection.run("sleep 1", hide=True)  # systemd offers no way to wait for "active" itself
    units_args = " ".join(f"--unit={unit}" for unit in units)
    journal = connection.run(f"sudo -n journalctl --no-pager -n 20 -o cat {units_args}", hide=True, warn=True)
    raise UserError(
        f"{name}: {dict(zip(units, states, strict=False))} after {timeout:.0f} s:\n{journal.stdout}"
    )


def scale_consumers(workers: str) -> None:
    """Run role consumer with consumer_workers=workers on every consumer host, as site.yml would."""
    if not workers.isdigit():
        raise UserError(f"--workers must be a whole number, 0 or more; got {workers!r}")
    playbook = ["playbooks/consumers.yml", "--tags", "consumer", "-e", f"consumer_workers={workers}"]
    command = ansible_command("ansible-playbook", *playbook)
    if subprocess.run(command, cwd=REPO, check=False).returncode != 0:
        raise UserError(f"{shlex.join(command)} failed; its output is above")


def predict(fleet: Fleet, image: Path) -> str:
    """Classify one image with the first model server, through an SSH tunnel; return class and scores."""
    from imgsieve.stream.client import Prediction

    try:
        data = image.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the image {image}: {exc.strerror}") from None
    spec = fleet.group("model_servers")[0]
    name, local_port = spec.model_name, free_local_port()
    with connect(spec) as connection, connection.forward_local(local_port, spec.model_port, "127.0.0.1"):
        answer = asyncio.run(classify(f"http://127.0.0.1:{local_port}/v1/models/{name}", data))
    if not isinstance(answer, Prediction):
        raise UserError(f"{spec.name} rejected {image}: {answer.reason}")
    ranked = sorted(answer.scores.items(), key=lambda item: -item[1])
    head = f"{image}: {answer.top_class} {answer.top_score:.4f} (model {name} version {answer.model_version})"
    return "\n".join([head] + [f"  {cls:<20} {score:.4f}" for cls, score in ranked])


async def classify(url: str, data: bytes) -> Any:
    """The model server's Prediction (or PredictionError) for one encoded image."""
    from imgsieve.stream.client import ModelClient

    async with ModelClient(url, deadline_s=10) as client:
        return (await client.predict([data]))[0]


def progress(fleet: Fleet, job: str) -> str:
    """Whether job runs on the producer, and its figures from the store (`imgsieve db job`)."""
    if not JOB_NAME.match(job):
        raise UserError(f"bad job name {job!r}: use letters, digits, '.', '_' and '-'")
    spec = fleet.group("producers")[0]
    unit = JOB_UNIT.format(job)
    # `imgsieve db` reads the store's URL and password from the environment file the job unit uses.
    summary = (
        f"sudo -n systemd-run --quiet --wait --pipe --collect --uid={SERVICE_USER} --gid={SERVICE_USER}"
        f" -p EnvironmentFile={PRODUCER_ENV_FILE} {IMGSIEVE_BIN} db job {shlex.quote(job)} </dev/null"
    )
    results = fleet.run([spec], f"systemctl is-active {unit} || true; {summary}", hide=True)
    state, _, figures = results[spec.name].stdout.partition("\n")
    return f"{unit} on {spec.name}: {state.strip()}\n{figures.rstrip()}"


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for a tunnel's local end."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
