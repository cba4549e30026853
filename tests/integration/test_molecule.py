"""Every role's molecule scenario passes: create, converge, idempotence, verify (testinfra), destroy.

Each runs through scripts/local/molecule.sh, which gives the containers this machine's limits, the
runc runtime and the locally built base image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(path.parents[2].name for path in REPO.glob("roles/*/molecule/default/molecule.yml"))
SCENARIO_TIMEOUT_S = 1200
SHOWN_OUTPUT_CHARS = 6000


@pytest.mark.parametrize("role", ROLES)
def test_molecule_scenario_passes(role: str) -> None:
    """`molecule test` of the role exits 0 (its idempotence step fails on any changed task)."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts/local/molecule.sh"), role, "test"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-SHOWN_OUTPUT_CHARS:]
    assert "idempotence" in output
