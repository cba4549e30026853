"""Fixtures for tests of a deployed local inventory: a separate copy of the local hosts for the session,
created with playbooks/local_up.yml, deployed with site.yml, and removed at the end.

The copy ("imgsieve-infra-*" containers, own network and SSH ports) runs beside the developer's own
"imgsieve-*" hosts without touching them. IMGSIEVE_INFRA_KEEP=1 keeps it after the session for a look:
`ssh -F inventory/local/.ssh/imgsieve-infra.ssh_config imgsieve-db`. IMGSIEVE_INFRA_COPY=N (1-9) selects
another copy ("imgsieve-infraN-*", SSH ports 2320+10N+1.., subnet 10.123.(1+N).0/24), so that several test
sessions can run on one machine at once. Every test here is slow (minutes).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]
from testinfra.host import Host  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
# ansible-playbook and imgsieve are installed next to the Python that runs the tests.
VENV_BIN = Path(sys.executable).parent
INVENTORY = REPO / "inventory" / "local"
KEEP_ENV = "IMGSIEVE_INFRA_KEEP"
COPY_ENV = "IMGSIEVE_INFRA_COPY"
PLAYBOOK_TIMEOUT_S = 1200
# A test's time limit here, which includes the deployment for the first test of the session.
DEPLOY_TIMEOUT_S = 2400
HOSTS_FILE = INVENTORY / "hosts.yml"
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class LocalCopy:
    """One copy of the local hosts: its names, ports and subnet, and how to run playbooks against it."""

    prefix: str = "imgsieve-infra"
    ssh_port_base: int = 2320
    subnet: str = "10.123.1.0/24"
    model_dir: str = ""  # model base path deployed to the model server; empty: the inventory's default

    @property
    def extra_vars(self) -> str:
        """The -e value that selects this copy (see inventory/local/group_vars/imgsieve/local_hosts.yml)."""
        settings: dict[str, Any] = {
            "local_hosts_prefix": self.prefix,
            "local_hosts_ssh_port_base": self.ssh_port_base,
            "local_hosts_subnet": self.subnet,
        }
        if self.model_dir:
            settings["model_server_model_dir"] = self.model_dir
        return json.dumps(settings)

    @property
    def ssh_config(self) -> Path:
        """The OpenSSH client config local_up.yml writes for this copy."""
        return INVENTORY / ".ssh" / f"{self.prefix}.ssh_config"

    @property
    def client_host(self) -> str:
        """The subnet as a MariaDB account host (address/netmask), which the app accounts are limited to."""
        network = ipaddress.ip_network(self.subnet)
        return f"{network.network_address}/{network.netmask}"

    def variables(self, host: str) -> dict[str, Any]:
        """An inventory host's variables as written in the inventory (not templated)."""
        output = subprocess.run(
            [VENV_BIN / "ansible-inventory", "-i", INVENTORY, "--host", host],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return dict(json.loads(output))

    def container(self, host: str) -> str:
        """Container name of an inventory host in this copy."""
        return f"{self.prefix}-{self.variables(host)['local_hosts_suffix']}"

    def playbook(self, path: str) -> dict[str, int]:
        """Run a playbook against this copy; return the changed count per host, or fail with its output."""
        command = [str(VENV_BIN / "ansible-playbook"), path, "-e", self.extra_vars]
        environment = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "ANSIBLE_NOCOLOR": "1",
        }
        result = subprocess.run(
            command,
            check=False,
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT_S,
        )
        if result.returncode != 0:
            pytest.fail(
                f"ansible-playbook {path} failed ({result.returncode}):\n{result.stdout[-8000:]}{result.stderr}"
            )
        return {host: int(changed) for host, changed, _, _ in RECAP.findall(result.stdout)}

    def host(self, name: str) -> Host:
        """A testinfra host for an inventory host, over SSH with the copy's config, commands run with sudo."""
        return testinfra.get_host(f"ssh://{name}", ssh_config=str(self.ssh_config), sudo=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give these tests room: the first one waits for the session's deployment (local_up, site.yml)."""
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.timeout(DEPLOY_TIMEOUT_S))


def hosts_of(group: str) -> list[str]:
    """Hosts of an inventory group, child groups included, read from inventory/local/hosts.yml.

    Tests are parametrized with these at collection time, so this only reads a file and runs nothing.
    """

    def walk(entry: dict[str, Any], inside: bool) -> set[str]:
        hosts = set(entry.get("hosts") or {}) if inside else set()
        for name, child in (entry.get("children") or {}).items():
            hosts |= walk(child or {}, inside or name == group)
        return hosts

    return sorted(walk({"children": yaml.safe_load(HOSTS_FILE.read_text(encoding="utf-8"))}, group == "all"))


@pytest.fixture(scope="session")
def local_copy(tiny_model: Path) -> Iterator[LocalCopy]:
    """A deployed copy of the local hosts: up, and site.yml applied (which creates the store's schema too).

    The model server gets the tiny model that the session trains through the real CLI, so a fresh clone
    (which has no model/) deploys the same way as a developer's checkout.
    """
    number = int(os.environ.get(COPY_ENV) or 0)
    if number:
        copy = LocalCopy(
            prefix=f"imgsieve-infra{number}",
            ssh_port_base=2320 + 10 * number,
            subnet=f"10.123.{1 + number}.0/24",
            model_dir=str(tiny_model),
        )
    else:
        copy = LocalCopy(model_dir=str(tiny_model))
    try:
        copy.playbook("playbooks/local_up.yml")
        copy.playbook("site.yml")
        yield copy
    finally:
        if os.environ.get(KEEP_ENV) != "1":
            copy.playbook("playbooks/local_down.yml")


@pytest.fixture(scope="session")
def db_host(local_copy: LocalCopy) -> Host:
    """The deployed database host."""
    return local_copy.host(hosts_of("db")[0])
