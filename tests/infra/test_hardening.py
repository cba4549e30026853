"""Every imgsieve systemd unit on the deployed hosts is sandboxed: `systemd-analyze security` rates its
exposure 4.0 or lower (0 is the best, 10 the worst), and the running services use none of the powers taken."""

from __future__ import annotations

import re

import pytest

from tests.infra.conftest import LocalCopy, hosts_of

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MAX_EXPOSURE = 4.0
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")
# (group, unit): every unit the roles install; a template unit is rated through one of its instances.
UNITS_BY_GROUP = [
    ("consumers", "imgsieve-consumer@1.service"),
    ("model_servers", "imgsieve-model-server.service"),
    ("producers", "imgsieve-job@hardening-check.service"),
]
UNITS = [(name, unit) for group, unit in UNITS_BY_GROUP for name in hosts_of(group)]
RUNNING = [(name, unit) for name, unit in UNITS if "@hardening-check" not in unit]


@pytest.mark.parametrize(("name", "unit"), UNITS, ids=[f"{name}:{unit}" for name, unit in UNITS])
def test_exposure_is_at_most_4(local_copy: LocalCopy, name: str, unit: str) -> None:
    """systemd-analyze security rates the unit at most 4.0; the failure shows its full assessment."""
    report = local_copy.host(name).check_output(f"systemd-analyze security --no-pager {unit}")
    found = EXPOSURE.search(report)
    assert found, report
    assert float(found[1]) <= MAX_EXPOSURE, report


@pytest.mark.parametrize(("name", "unit"), RUNNING, ids=[f"{name}:{unit}" for name, unit in RUNNING])
def test_service_runs_unprivileged_with_no_capabilities(local_copy: LocalCopy, name: str, unit: str) -> None:
    """The running service's main process is the service user's, with empty capability sets."""
    host = local_copy.host(name)
    pid = host.check_output(f"systemctl show --property=MainPID --value {unit}")
    assert pid != "0", host.run(f"journalctl -u {unit} -n 40 --no-pager").stdout
    assert host.check_output(f"ps -o user= -p {pid}") == "imgsieve"
    status = host.file(f"/proc/{pid}/status").content_string
    capabilities = dict(re.findall(r"^(Cap(?:Eff|Prm|Bnd|Amb)):\s+(\S+)$", status, re.MULTILINE))
    assert set(capabilities.values()) == {"0000000000000000"}, capabilities
    assert "NoNewPrivs:\t1" in status
