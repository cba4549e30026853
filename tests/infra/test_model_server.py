"""The deployed model server: `imgsieve serve` under systemd on the model hosts only, with TensorFlow, the
package version of this checkout and the highest model version AVAILABLE on port 8501."""

from __future__ import annotations

import json
import shlex

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

from tests.infra.conftest import LocalCopy, hosts_of

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODEL_HOSTS = hosts_of("model_servers")
OTHER_HOSTS = [name for name in hosts_of("imgsieve") if name not in MODEL_HOSTS]
SERVICE = "imgsieve-model-server"
PORT = 8501
MODEL = "demo"
# Run on a host with the virtualenv's Python: print the package's version, or exit 1 without TensorFlow.
# Run on a host with the system Python: print the body of a GET of the URL given as its argument.
GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"


def journal(host: Host, unit: str) -> str:
    """The last lines of a unit's journal, to show why a service test failed."""
    return str(host.run(f"journalctl --unit {unit} --lines 40 --no-pager").stdout)


def python(interpreter: str, code: str, *args: str) -> str:
    """A shell command running code with interpreter and args."""
    return shlex.join([interpreter, "-c", code, *args])


@pytest.mark.parametrize("name", MODEL_HOSTS)
def test_service_is_active_and_enabled(local_copy: LocalCopy, name: str) -> None:
    """The model server runs and starts at boot; otherwise the failure shows its journal."""
    host = local_copy.host(name)
    service = host.service(SERVICE)
    if not (service.is_running and service.is_enabled):
        pytest.fail(f"{SERVICE} on {name} is not active and enabled:\n{journal(host, SERVICE)}")


@pytest.mark.parametrize("name", MODEL_HOSTS)
def test_service_runs_as_the_service_user(local_copy: LocalCopy, name: str) -> None:
    """The server's process belongs to the unprivileged service user."""
    user = local_copy.host(name).check_output(f"systemctl show --property=User --value {SERVICE}")
    assert user == "imgsieve"


@pytest.mark.parametrize("name", MODEL_HOSTS)
def test_listens_on_the_rest_port(local_copy: LocalCopy, name: str) -> None:
    """The REST API listens on every address of the model host."""
    assert local_copy.host(name).socket(f"tcp://0.0.0.0:{PORT}").is_listening


@pytest.mark.parametrize("name", OTHER_HOSTS)
def test_no_rest_port_on_other_hosts(local_copy: LocalCopy, name: str) -> None:
    """Nothing listens on the REST port anywhere but on the model hosts."""
    assert not local_copy.host(name).socket(f"tcp://{PORT}").is_listening


@pytest.mark.parametrize("name", MODEL_HOSTS)
def test_highest_version_is_available(local_copy: LocalCopy, name: str) -> None:
    """The model's status, asked on the host itself, lists the highest version on disk as AVAILABLE."""
    host = local_copy.host(name)
    versions = host.check_output(f"ls /var/lib/imgsieve/models/{MODEL}").split()
    highest = max(int(v) for v in versions if v.isdigit())
    url = f"http://127.0.0.1:{PORT}/v1/models/{MODEL}"
    status = json.loads(host.check_output(python("python3", GET, url)))
    available = {int(s["version"]) for s in status["model_version_status"] if s["state"] == "AVAILABLE"}
    assert available == {highest}
