"""The deployed hosts as Fabric connections: read from the Ansible inventory as Ansible renders it (an ad-hoc
`debug`, which connects to nothing): ansible_host/port/user/ssh_private_key_file over the OpenSSH config that
`-F` in ansible_ssh_common_args names (HostName, Port, User, IdentityFile, HostKeyAlias, UserKnownHostsFile).
Host keys must match known_hosts. IMGSIEVE_INVENTORY (sources separated by ':') and IMGSIEVE_EXTRA_VARS (JSON)
become ansible's -i and -e.
"""

from __future__ import annotations

import json
import os
import shlex
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

REPO = Path(__file__).resolve().parents[2]
INVENTORY_ENV = "IMGSIEVE_INVENTORY"
EXTRA_VARS_ENV = "IMGSIEVE_EXTRA_VARS"
PATTERN = "imgsieve"
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
