"""The deployed consumers: consumer_workers instances of imgsieve-consumer@.service on each consumer host,
their config readable by the service group only, the package without TensorFlow, and no listening port."""

from __future__ import annotations

import pytest

from tests.infra.conftest import LocalCopy, hosts_of

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CONSUMER_HOSTS = hosts_of("consumers")
# inventory/local/group_vars/consumers/consumer.yml
WORKERS = 2
INSTANCES = [f"imgsieve-consumer@{n}" for n in range(1, WORKERS + 1)]


@pytest.mark.parametrize("name", CONSUMER_HOSTS)
@pytest.mark.parametrize("instance", INSTANCES)
def test_instance_is_active_and_enabled(local_copy: LocalCopy, name: str, instance: str) -> None:
    """Each wanted instance runs and starts at boot; otherwise the failure shows its journal."""
    host = local_copy.host(name)
    service = host.service(instance)
    if not (service.is_running and service.is_enabled):
        log = host.run(f"journalctl --unit {instance} --lines 40 --no-pager").stdout
        pytest.fail(f"{instance} on {name} is not active and enabled:\n{log}")


@pytest.mark.parametrize("name", CONSUMER_HOSTS)
def test_no_more_instances_than_wanted(local_copy: LocalCopy, name: str) -> None:
    """Only instances 1 to consumer_workers run."""
    listed = local_copy.host(name).check_output(
        "systemctl list-units --plain --no-legend --state=active 'imgsieve-consumer@*.service'"
    )
    assert sorted(line.split()[0] for line in listed.splitlines()) == [f"{i}.service" for i in INSTANCES]


@pytest.mark.parametrize("name", CONSUMER_HOSTS)
def test_config_points_at_the_other_hosts(local_copy: LocalCopy, name: str) -> None:
    """The config names the producer, the model server and the database by their container names."""
    config = local_copy.host(name).file("/etc/imgsieve/consumer.toml").content_string
    for group, port in (("producers", 5557), ("model_servers", 8501), ("db", 3306)):
        assert f"{local_copy.container(hosts_of(group)[0])}:{port}" in config


@pytest.mark.parametrize("name", CONSUMER_HOSTS)
def test_consumers_listen_on_no_port(local_copy: LocalCopy, name: str) -> None:
    """Consumers only connect out: no process of theirs listens on a TCP port."""
    listening = local_copy.host(name).check_output("ss --listening --tcp --numeric --processes --no-header")
    assert '"imgsieve"' not in listening
