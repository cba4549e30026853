"""inventory/aws against the instances playbooks/aws_hosts.yml made in moto: the amazon.aws.aws_ec2 plugin puts
them in the groups of the local inventory, and the group_vars give the roles the addresses they need."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.aws.aws_helpers import (
    CLUSTER,
    Deployment,
    client,
    deployment,
    instances,
    moto_enforcing_iam,
    vars_as_json,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def moto_url() -> str:
    """moto enforcing IAM; the playbooks run as the deployer (see tests/aws/aws_helpers.py)."""
    return moto_enforcing_iam().url


GROUPS = {"db": "db", "producers": "producer", "consumers": "consumer"}
# Variables of the roles on each instance, rendered by Ansible itself (ad-hoc debug runs on the controller).
RENDERED = [
    "ansible_host",
    "ansible_user",
    "imgsieve_db_host",
    "imgsieve_producer_host",
    "imgsieve_db_client_host",
    "consumer_producer_endpoint",
    "consumer_model_url",
    "consumer_db_url",
    "producer_db_url",
    "mysql_accounts",
]
TF_SERVING_URL = "http://internal-a1b2.elb.eu-west-1.amazonaws.com:8501/v1/models/demo"
PASSWORDS = {
    "imgsieve_db_admin_password": "admin-secret",
    "imgsieve_db_producer_password": "producer-secret",
    "imgsieve_db_consumer_password": "consumer-secret",
}


@pytest.fixture(scope="module")
def deployed(moto_url: str) -> Deployment:
    """The deployment, provisioned once by playbooks/aws_hosts.yml."""
    found = deployment(moto_url)
    found.ensure()
    return found


@pytest.fixture(scope="module")
def inventory(deployed: Deployment) -> dict[str, Any]:
    """`ansible-inventory --list` of inventory/aws, its plugin pointed at moto."""
    run = deployed.run("ansible-inventory", "--list")
    assert run.returncode == 0, run.output
    return inventory_json(run.stdout)


@pytest.fixture(scope="module")
def rendered(deployed: Deployment) -> dict[str, dict[str, Any]]:
    """RENDERED by host, with the vault's passwords and the model Service's URL given as extra variables."""
    message = vars_as_json(RENDERED)
    run = deployed.run(
        "ansible",
        "db:producers:consumers",
        "-m",
        "ansible.builtin.debug",
        "-a",
        f"msg={message}",
        extra={**PASSWORDS, "tf_serving_url": TF_SERVING_URL},
        ANSIBLE_LOAD_CALLBACK_PLUGINS="true",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    assert run.returncode == 0, run.output
    results = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {host: json.loads(result["msg"]) for host, result in results.items()}


def inventory_json(text: str) -> dict[str, Any]:
    """`ansible-inventory --list` output; values the plugin marked unsafe appear as {"__ansible_unsafe": value}."""

    def plain(obj: dict[str, Any]) -> Any:
        return obj["__ansible_unsafe"] if set(obj) == {"__ansible_unsafe"} else obj

    return dict(json.loads(text, object_hook=plain))


def members(inventory: dict[str, Any], group: str) -> set[str]:
    """Hosts of a group of `ansible-inventory --list`, its child groups included."""
    entry = inventory.get(group, {})
    found = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        found |= members(inventory, child)
    return found


def host_of(inventory: dict[str, Any], instance_id: str) -> str:
    """The inventory name of an instance."""
    hostvars = inventory["_meta"]["hostvars"]
    return next(name for name, values in hostvars.items() if values.get("ec2_instance_id") == instance_id)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_group_holds_exactly_the_instances_of_its_role(
    deployed: Deployment, inventory: dict[str, Any], group: str
) -> None:
    """db, producers and consumers hold the running instances whose imgsieve:role tag says so."""
    expected = {i["InstanceId"] for i in instances(deployed.moto_url, GROUPS[group])}
    assert expected
    hostvars = inventory["_meta"]["hostvars"]
    assert {hostvars[host]["ec2_instance_id"] for host in members(inventory, group)} == expected


def test_groups_nest_as_in_the_local_inventory(inventory: dict[str, Any]) -> None:
    """imgsieve holds db, producers, consumers and model_servers; the controller is the kubernetes host."""
    assert set(inventory["imgsieve"]["children"]) >= {"db", "producers", "consumers", "model_servers"}
    assert members(inventory, "kubernetes") == {"aws-controller"}
    assert "kubernetes" in inventory["model_servers"]["children"]
    assert members(inventory, "aws_controller") == {"aws-controller"}
    instances_in_imgsieve = members(inventory, "imgsieve") - {"aws-controller"}
    assert instances_in_imgsieve == members(inventory, "db") | members(inventory, "producers") | members(
        inventory, "consumers"
    )


def test_instances_of_another_deployment_or_stopped_are_left_out(deployed: Deployment) -> None:
    """An instance tagged for another cluster, or one not running, is in no group."""
    ec2 = client(deployed.moto_url, "ec2")
    image = instances(deployed.moto_url)[0]["ImageId"]

    def launch(cluster: str) -> str:
        tags = [{"Key": "imgsieve:cluster", "Value": cluster}, {"Key": "imgsieve:role", "Value": "db"}]
        reservation = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        return str(reservation["Instances"][0]["InstanceId"])

    other = launch("someone-else.k8s.local")
    stopped = launch(CLUSTER)
    ec2.stop_instances(InstanceIds=[stopped])
    try:
        run = deployed.run("ansible-inventory", "--list")
        assert run.returncode == 0, run.output
        listed = inventory_json(run.stdout)
        ids = {values.get("ec2_instance_id") for values in listed["_meta"]["hostvars"].values()}
        assert other not in ids and stopped not in ids
        assert len(members(listed, "db")) == 1
    finally:
        ec2.terminate_instances(InstanceIds=[other, stopped])


def test_hosts_are_reached_by_public_address_as_admin(
    deployed: Deployment, inventory: dict[str, Any], rendered: dict[str, dict[str, Any]]
) -> None:
    """ansible_host is the instance's public address; the login user is Debian's `admin`."""
    for instance in instances(deployed.moto_url):
        host = host_of(inventory, instance["InstanceId"])
        assert rendered[host]["ansible_host"] == instance["PublicIpAddress"]
        assert rendered[host]["ansible_user"] == "admin"


def test_services_are_found_at_private_addresses(
    deployed: Deployment, rendered: dict[str, dict[str, Any]]
) -> None:
    """Every host sees the db and the producer at their private addresses, and the model at the Service URL."""
    db_ip = instances(deployed.moto_url, "db")[0]["PrivateIpAddress"]
    producer_ip = instances(deployed.moto_url, "producer")[0]["PrivateIpAddress"]
    assert len(rendered) == len(instances(deployed.moto_url)), "every instance must answer"
    for values in rendered.values():
        assert values["imgsieve_db_host"] == db_ip
        assert values["imgsieve_producer_host"] == producer_ip
        assert values["imgsieve_db_client_host"] == "10.42.0.0/255.255.0.0"
    consumers = [v for host, v in rendered.items() if host.startswith("imgsieve-consumer-")]
    assert consumers
    for values in consumers:
        assert values["consumer_producer_endpoint"] == f"tcp://{producer_ip}:5557"
        assert values["consumer_model_url"] == TF_SERVING_URL
        assert values["consumer_db_url"] == f"mysql://imgsieve_consumer@{db_ip}:3306/imgsieve"
    producer = next(v for host, v in rendered.items() if host.startswith("imgsieve-producer-"))
    assert producer["producer_db_url"] == f"mysql://imgsieve_producer@{db_ip}:3306/imgsieve"
    db = next(v for host, v in rendered.items() if host.startswith("imgsieve-db-"))
    accounts = {(a["name"], a["host"], a["password"]) for a in db["mysql_accounts"]}
    assert accounts == {
        ("imgsieve_admin", "127.0.0.1", "admin-secret"),
        ("imgsieve_producer", "10.42.0.0/255.255.0.0", "producer-secret"),
        ("imgsieve_consumer", "10.42.0.0/255.255.0.0", "consumer-secret"),
    }


def test_preflight_passes_with_the_vault_and_names_what_is_missing_without(deployed: Deployment) -> None:
    """playbooks/preflight.yml accepts inventory/aws once the vault's passwords are there, and names them if not."""
    run = deployed.run("ansible-playbook", "playbooks/preflight.yml", extra=PASSWORDS)
    assert run.returncode == 0, run.output
    run = deployed.run("ansible-playbook", "playbooks/preflight.yml")
    assert run.returncode != 0
    assert "imgsieve_db_admin_password" in run.output, run.output
