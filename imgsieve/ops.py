"""Day-2 operations for fabfile.py (controller only, `ops` extra): inventory hosts as Fabric connections,
the commands each operation runs on them, the reports it prints.

Hosts come from the Ansible inventory as Ansible renders it (an ad-hoc `debug`, which connects to
nothing): ansible_host/port/user/ssh_private_key_file over the OpenSSH config that `-F` in
ansible_ssh_common_args names (HostName, Port, User, IdentityFile, HostKeyAlias, UserKnownHostsFile).
Host keys must match known_hosts. IMGSIEVE_INVENTORY (sources separated by ':') and IMGSIEVE_EXTRA_VARS
(JSON) become ansible's -i and -e.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko  # type: ignore[import-untyped]
from fabric import Config, Connection, ThreadingGroup  # type: ignore[import-untyped]
from fabric.exceptions import GroupException  # type: ignore[import-untyped]

from imgsieve.errors import UserError

REPO = Path(__file__).resolve().parent.parent
INVENTORY_ENV = "IMGSIEVE_INVENTORY"
EXTRA_VARS_ENV = "IMGSIEVE_EXTRA_VARS"
PATTERN = "imgsieve"
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
# Rendered per host by Ansible: how to reach it, and the model server's name and port.
HOST_TEMPLATE = (
    '{{ {"groups": group_names, "host": ansible_host | default(inventory_hostname),'
    ' "port": ansible_port | default(none), "user": ansible_user | default(none),'
    ' "key": ansible_ssh_private_key_file | default(none), "ssh_args": ansible_ssh_common_args | default(""),'
    ' "model_name": model_server_model_name | default("demo"), "model_port": model_server_port | default(8501)} }}'
)
# An ad-hoc `ansible` prints its results as one JSON document with these.
JSON_OUTPUT = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
ERROR_LINES = 3
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


@dataclass(frozen=True)
class HostSpec:
    """One inventory host: its groups and how to reach it over SSH."""

    name: str
    groups: tuple[str, ...]
    hostname: str
    port: int
    user: str | None
    key_files: tuple[str, ...]
    known_hosts: tuple[str, ...]
    host_key_alias: str | None
    model_name: str
    model_port: int


def ansible_command(tool: str, *args: str) -> list[str]:
    """An ansible* command line (tool from this Python's venv) with -i and -e from the environment."""
    command = [str(Path(sys.executable).parent / tool), *args]
    for source in filter(None, os.environ.get(INVENTORY_ENV, "").split(os.pathsep)):
        command += ["-i", source]
    if os.environ.get(EXTRA_VARS_ENV):
        command += ["-e", os.environ[EXTRA_VARS_ENV]]
    return command


def read_inventory(pattern: str = PATTERN) -> list[HostSpec]:
    """The hosts matching pattern, with their connection settings as Ansible renders them."""
    command = ansible_command("ansible", pattern, "-m", "ansible.builtin.debug", "-a", f"msg={HOST_TEMPLATE}")
    environment = {**os.environ, **JSON_OUTPUT}
    result = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, check=False)
    try:
        hosts = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, KeyError, IndexError):
        raise UserError(
            f"cannot read the hosts of {pattern!r} from the Ansible inventory ({shlex.join(command)} exited "
            f"{result.returncode}): {result.stderr.strip()[-500:]}; check the inventory and {INVENTORY_ENV}"
        ) from None
    return [host_spec(name, answer["msg"]) for name, answer in sorted(hosts.items())]


def host_spec(name: str, rendered: dict[str, Any]) -> HostSpec:
    """Merge a host's Ansible connection variables over the OpenSSH config its ssh args name."""
    args = shlex.split(rendered.get("ssh_args") or "")
    ssh: dict[str, Any] = {}
    if "-F" in args[:-1]:
        path = Path(args[args.index("-F") + 1])
        if not path.is_file():
            raise UserError(
                f"{name}: ansible_ssh_common_args names the SSH config {path}, which does not exist; for the "
                "local hosts, run playbooks/local_up.yml"
            )
        ssh = paramiko.SSHConfig.from_path(str(path)).lookup(rendered["host"])
    key = rendered.get("key")
    return HostSpec(
        name=name,
        groups=tuple(rendered["groups"]),
        hostname=ssh.get("hostname", rendered["host"]),
        port=int(rendered.get("port") or ssh.get("port", 22)),
        user=rendered.get("user") or ssh.get("user"),
        key_files=(key,) if key else tuple(ssh.get("identityfile", ())),
        known_hosts=tuple(shlex.split(ssh.get("userknownhostsfile", "~/.ssh/known_hosts"))),
        host_key_alias=ssh.get("hostkeyalias"),
        model_name=str(rendered["model_name"]),
        model_port=int(rendered["model_port"]),
    )


def connect(spec: HostSpec) -> Connection:
    """A Fabric connection to spec that accepts only the host key pinned for it in known_hosts."""
    connection = Connection(
        spec.hostname,
        user=spec.user,
        port=spec.port,
        connect_kwargs={"key_filename": list(spec.key_files)},
        config=Config(overrides={"load_ssh_configs": False}),  # this spec is the whole truth
    )
    pinned = paramiko.HostKeys()
    for path in spec.known_hosts:
        if Path(path).expanduser().is_file():
            pinned.load(str(Path(path).expanduser()))
    # Keys are pinned under the alias (the container's name), the client looks them up by address and port.
    entry = pinned.lookup(spec.host_key_alias or spec.hostname) or {}
    address = spec.hostname if spec.port == 22 else f"[{spec.hostname}]:{spec.port}"
    for key_type, key in entry.items():
        connection.client.get_host_keys().add(address, key_type, key)
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return connection


class Fleet:
    """The inventory's hosts, by group, and commands run on several of them at once."""

    def __init__(self, specs: Sequence[HostSpec]) -> None:
        self.specs = list(specs)

    @classmethod
    def from_inventory(cls) -> Fleet:
        """The fleet of the Ansible inventory."""
        return cls(read_inventory())

    def group(self, name: str) -> list[HostSpec]:
        """The hosts of an inventory group; an unknown or empty group is an error listing the others."""
        hosts = [spec for spec in self.specs if name in spec.groups]
        if not hosts:
            known = sorted({group for spec in self.specs for group in spec.groups})
            raise UserError(f"the inventory has no host in group {name!r}; groups: {', '.join(known)}")
        return hosts

    def run(self, hosts: Sequence[HostSpec], command: str, **kwargs: Any) -> dict[str, Any]:
        """Run command on every host at once; return each host's result, or raise naming the hosts that failed."""
        connections = {connect(spec): spec.name for spec in hosts}
        try:
            results = ThreadingGroup.from_connections(list(connections)).run(command, **kwargs)
        except GroupException as exc:
            failures = [
                f"{connections[conn]}: {describe(error)}"
                for conn, error in sorted(exc.result.failed.items(), key=lambda item: connections[item[0]])
            ]
            raise UserError(
                f"`{command}` failed on {len(failures)} of {len(hosts)} host(s):\n  " + "\n  ".join(failures)
            ) from None
        finally:
            for connection in connections:
                connection.close()
        return {connections[conn]: result for conn, result in results.items()}


def describe(error: BaseException) -> str:
    """One readable line for what went wrong on a host: the command's exit and last output, or the error."""
    result = getattr(error, "result", None)
    if result is not None and hasattr(result, "exited"):
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-ERROR_LINES:]
        return f"exit {result.exited}: " + " / ".join(tail)
    return f"{type(error).__name__}: {error}"


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
