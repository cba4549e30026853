"""What role consumer leaves on a host, checked inside the molecule container: two instances of
imgsieve-consumer@.service as the service user, their config readable by the service group only."""

from __future__ import annotations

import pytest
from testinfra.host import Host  # type: ignore[import-untyped]

INSTANCES = ["imgsieve-consumer@1", "imgsieve-consumer@2"]
CONFIG = "/etc/imgsieve/consumer.toml"
# (path, owner, group, mode): the config holds the store's password.
KEYS = "/etc/imgsieve/curve"
SECRET_KEY = f"{KEYS}/imgsieve-molecule-consumer.key_secret"
PATHS = [
    (CONFIG, "root", "imgsieve", 0o640),
    # The CURVE secret key is the service user's alone.
    (KEYS, "imgsieve", "imgsieve", 0o750),
    (SECRET_KEY, "imgsieve", "imgsieve", 0o600),
    (f"{KEYS}/imgsieve-molecule-consumer.key", "imgsieve", "imgsieve", 0o644),
    (f"{KEYS}/producer.key", "root", "imgsieve", 0o644),
    ("/etc/systemd/system/imgsieve-consumer@.service", "root", "root", 0o644),
]
# (line): what converge.yml sets, as the config file states it.
CONFIG_LINES = [
    'producer = "tcp://127.0.0.1:5557"',
    'url = "http://127.0.0.1:8501/v1/models/tiny"',
    'url = "mysql://molecule_consumer@127.0.0.1:3306/imgsieve"',
    'password = "molecule-only-consumer"',
    "batch_size = 32",
    f'curve_secret_key = "{SECRET_KEY}"',
    f'curve_producer_key = "{KEYS}/producer.key"',
]


@pytest.mark.parametrize("instance", INSTANCES)
def test_instance_is_active_and_enabled(host: Host, instance: str) -> None:
    """Each instance runs and starts at boot; otherwise the failure shows its journal."""
    service = host.service(instance)
    if not (service.is_running and service.is_enabled):
        pytest.fail(
            f"{instance} is not active and enabled:\n" + host.run(f"journalctl -u {instance} -n 40").stdout
        )


@pytest.mark.parametrize("instance", INSTANCES)
def test_instance_runs_as_the_service_user(host: Host, instance: str) -> None:
    """Each instance's main process belongs to the service user."""
    pid = host.check_output(f"systemctl show --property=MainPID --value {instance}")
    assert host.check_output(f"ps -o user= -p {pid}") == "imgsieve"


@pytest.mark.parametrize("instance", INSTANCES)
def test_instance_names_its_rows_by_host_and_instance(host: Host, instance: str) -> None:
    """Each instance writes rows as <host>/<instance>."""
    environment = host.check_output(f"systemctl show --property=Environment --value {instance}")
    hostname = host.check_output("hostname")
    assert f"IMGSIEVE_CONSUMER_HOST={hostname}/{instance.split('@')[1]}" in environment.split()


def test_no_third_instance(host: Host) -> None:
    """Only consumer_workers instances exist."""
    assert not host.service("imgsieve-consumer@3").is_running


@pytest.mark.parametrize("line", CONFIG_LINES)
def test_config_states_the_settings(host: Host, line: str) -> None:
    """The config file holds each setting converge.yml gave."""
    assert line in host.file(CONFIG).content_string.splitlines()


@pytest.mark.parametrize("expected", PATHS, ids=[path for path, *_ in PATHS])
def test_path_owner_and_mode(host: Host, expected: tuple[str, str, str, int]) -> None:
    """The config and the unit have their owner, group and mode."""
    path, *_ = expected
    found = host.file(path)
    assert (path, found.user, found.group, found.mode) == expected


def test_consumers_listen_on_no_port(host: Host) -> None:
    """Consumers only connect out: no process of theirs listens on a TCP port."""
    assert '"imgsieve"' not in host.check_output("ss --listening --tcp --numeric --processes --no-header")


def test_trusted_producer_key_is_a_copy_of_the_producers(host: Host) -> None:
    """The consumers trust exactly the public key read from the producer host (here, the host itself)."""
    trusted = host.file(f"{KEYS}/producer.key").content_string
    assert trusted == host.file(f"{KEYS}/imgsieve-molecule-consumer.key").content_string
    assert "public-key" in trusted and "secret-key" not in trusted
