"""The Ansible tree (ansible.cfg, site.yml, playbooks, inventory, roles) passes ansible-lint's production
profile and yamllint with no finding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LINT_TIMEOUT_S = 300


def run_linter(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a linter from the repository root, with the venv's tools first on PATH."""
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    return subprocess.run(
        [str(VENV_BIN / command[0]), *command[1:]],
        check=False,
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT_S,
    )


def test_ansible_lint_production_profile_finds_nothing() -> None:
    """ansible-lint (profile and exclusions from .ansible-lint) reports no violation."""
    result = run_linter("ansible-lint", "--offline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr


def test_yamllint_finds_nothing() -> None:
    """yamllint (rules from .yamllint) reports nothing, warnings included."""
    result = run_linter("yamllint", "--strict", ".")
    assert result.returncode == 0, result.stdout + result.stderr
