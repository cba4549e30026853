"""Fixtures for the AWS tier: moto in server mode, the kops and Kubernetes API stand-ins, and a runner for
playbooks against them.

No AWS account, kops binary or Kubernetes cluster is reachable here. AWS APIs are moto's; `kops` on PATH is
tests/aws/standins/kops.py, which records its calls and keeps its state in a directory; the Kubernetes API is
tests/aws/standins/kube_api.py, which records its requests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STANDINS = Path(__file__).resolve().parent / "standins"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
PLAYBOOK_TIMEOUT_S = 300
SERVER_START_TIMEOUT_S = 30.0
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def wait_for_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    """Return once url answers; fail naming `what` when the process exits or the time runs out."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not start on {url}") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server started by a fixture, then kill it if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode on a free 127.0.0.1 port; yields its endpoint URL (no environment is changed)."""
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url, proc, "moto_server")
    try:
        yield url
    finally:
        stop(proc)


@dataclass
class KubeApi:
    """The Kubernetes API stand-in: its URL and the requests it received."""

    url: str
    log: Path

    def requests(self) -> list[dict[str, Any]]:
        """Every request so far, oldest first."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def writes(self) -> list[dict[str, Any]]:
        """The requests that change an object."""
        return [r for r in self.requests() if r["method"] in {"POST", "PUT", "PATCH", "DELETE"}]

    def get(self, path: str) -> dict[str, Any]:
        """An object as the API holds it, e.g. get('/apis/apps/v1/namespaces/ns/deployments/name')."""
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            result: dict[str, Any] = json.load(response)
            return result


def start_kube_api(directory: Path) -> tuple[subprocess.Popen[bytes], KubeApi]:
    """Start a fresh Kubernetes API stand-in on a free port, logging into directory."""
    port = free_port()
    log = directory / "kube_api.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.aws.standins.kube_api", "--port", str(port), "--log", str(log)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/version", proc, "the Kubernetes API stand-in")
    log.unlink(missing_ok=True)
    return proc, KubeApi(url=url, log=log)


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    """A fresh Kubernetes API stand-in for one test."""
    proc, api = start_kube_api(tmp_path)
    try:
        yield api
    finally:
        stop(proc)


@dataclass
class Run:
    """One ansible-playbook run: exit code, output, and the PLAY RECAP's changed count."""

    returncode: int
    output: str
    changed: int = field(default=0)


@dataclass
class Controller:
    """The controller of the AWS tier, emulated: an inventory with group kubernetes on this machine, the kops
    stand-in first on PATH, and the AWS variables pointing at moto."""

    root: Path
    moto_url: str
    kube_api_url: str = ""

    def s3(self) -> Any:
        """A boto3 S3 client of moto, with moto's dummy keys."""

        return boto3.client(
            "s3",
            endpoint_url=self.moto_url,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def kops_dir(self) -> Path:
        """Where the kops stand-in keeps its call log and state."""
        return self.root / "kops"

    @property
    def inventory(self) -> Path:
        """Group kubernetes (child of model_servers) with the one controller host, as inventory/aws has it."""
        path = self.root / "hosts.yml"
        if not path.exists():
            host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
            tree = {
                "all": {
                    "children": {
                        "aws_controller": {"hosts": {"aws-controller": host}},
                        "model_servers": {"children": {"kubernetes": {"hosts": {"aws-controller": None}}}},
                    }
                }
            }
            path.write_text(yaml.safe_dump(tree))
        return path

    def kops_calls(self) -> list[dict[str, Any]]:
        """The kops stand-in's calls so far, oldest first."""
        log = self.kops_dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def environment(self) -> dict[str, str]:
        """The environment of ansible-playbook: stand-ins first on PATH, dummy AWS keys."""
        bin_dir = self.root / "bin"
        wrapper = bin_dir / "kops"
        if not wrapper.exists():
            bin_dir.mkdir(parents=True, exist_ok=True)
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.aws.standins.kops "$@"\n')
            wrapper.chmod(0o755)
        return {
            **os.environ,
            **AWS_TEST_ENV,
            "PATH": f"{bin_dir}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(REPO),
            "KOPS_STANDIN_DIR": str(self.kops_dir),
            "KOPS_STANDIN_API_SERVER": self.kube_api_url,
            "HOME": str(self.root / "home"),
            # The kubernetes client caches discovery per API URL in the temporary directory.
            "TMPDIR": str(self.root / "tmp"),
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.root / "tmp" / "ansible-local"),
        }

    def playbook(self, playbook: Path, extra_vars: dict[str, Any], *args: str) -> Run:
        """Run a playbook from the repository root (so ansible.cfg applies) against the controller."""
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        variables = {"aws_endpoint_url": self.moto_url, **extra_vars}
        vars_file = self.root / "extra_vars.json"
        vars_file.write_text(json.dumps(variables))
        result = subprocess.run(
            [
                str(VENV_BIN / "ansible-playbook"),
                "-i",
                str(self.inventory),
                str(playbook),
                "-e",
                f"@{vars_file}",
                *args,
            ],
            cwd=REPO,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT_S,
            check=False,
        )
        output = result.stdout + result.stderr
        changed = sum(int(match[2]) for match in RECAP.findall(output))
        return Run(result.returncode, output, changed)


@pytest.fixture
def controller(tmp_path: Path, moto_server: str) -> Controller:
    """A fresh emulated controller (own kops state, home and temporary directories)."""
    return Controller(root=tmp_path / "controller", moto_url=moto_server)
