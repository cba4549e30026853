"""playbooks/teardown.yml with inventory/aws against moto: it deletes the cluster through role kops_cluster (the
kops stand-in on PATH), then everything role aws_hosts created, keeps the images bucket unless told, never
deletes a bucket it did not create, and changes nothing when run again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aws.aws_helpers import (
    CLUSTER,
    IMAGES_BUCKET,
    KOPS_STATE_BUCKET,
    NAME,
    Deployment,
    Run,
    client,
    cluster_filter,
    deployment,
    instances,
    moto_enforcing_iam,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def moto_url() -> str:
    """moto enforcing IAM; the playbooks run as the deployer (see tests/aws/aws_helpers.py)."""
    return moto_enforcing_iam().url


def leftovers(moto_url: str) -> dict[str, Any]:
    """What of the deployment is still in moto, by kind; empty lists when nothing is."""
    ec2 = client(moto_url, "ec2")
    iam = client(moto_url, "iam")
    return {
        "instances": [i["InstanceId"] for i in instances(moto_url, states=("pending", "running", "stopped"))],
        "security groups": [
            g["GroupName"]
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"].startswith(f"{NAME}-")
        ],
        "key pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"] if k["KeyName"] == NAME],
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=cluster_filter())["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=cluster_filter())["Subnets"]],
        "gateways": [
            g["InternetGatewayId"]
            for g in ec2.describe_internet_gateways(Filters=cluster_filter())["InternetGateways"]
        ],
        "route tables": [
            r["RouteTableId"] for r in ec2.describe_route_tables(Filters=cluster_filter())["RouteTables"]
        ],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"{NAME}-")],
        "profiles": [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles()["InstanceProfiles"]
            if p["InstanceProfileName"].startswith(f"{NAME}-")
        ],
        "policies": [
            p["PolicyName"]
            for p in iam.list_policies(Scope="Local")["Policies"]
            if p["PolicyName"].startswith(f"{NAME}-")
        ],
    }


def buckets(moto_url: str) -> set[str]:
    """Names of the buckets in moto."""
    return {bucket["Name"] for bucket in client(moto_url, "s3").list_buckets()["Buckets"]}


# The teardown run made by the fixture below, by moto URL.
_first_teardown: dict[str, Run] = {}


@pytest.fixture(scope="module")
def torn_down(moto_url: str) -> Deployment:
    """The deployment with an image in its bucket and a kops state bucket, then torn down once."""
    found = deployment(moto_url)
    found.ensure()
    assert all(leftovers(moto_url).values()), "the deployment must be complete before the teardown"
    s3 = client(moto_url, "s3")
    s3.put_object(Bucket=IMAGES_BUCKET, Key="cats/1.jpg", Body=b"\xff\xd8\xff")
    s3.create_bucket(Bucket=KOPS_STATE_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    found.known_hosts.write_text("203.0.113.9 ssh-ed25519 AAAA\n")
    _first_teardown[moto_url] = found.teardown()
    found.forget()
    return found


def test_teardown_succeeds(torn_down: Deployment) -> None:
    """The teardown runs to the end."""
    run = _first_teardown[torn_down.moto_url]
    assert run.returncode == 0, run.output
    assert run.changed > 0


def test_nothing_of_the_deployment_is_left(torn_down: Deployment) -> None:
    """Instances terminated; groups, key pair, VPC, subnets, gateway, route table, role, profile, policies gone."""
    assert leftovers(torn_down.moto_url) == {kind: [] for kind in leftovers(torn_down.moto_url)}


def test_images_bucket_and_its_objects_are_kept_by_default(torn_down: Deployment) -> None:
    """Without aws_hosts_delete_images_bucket the images bucket stays, with its images."""
    listed = client(torn_down.moto_url, "s3").list_objects_v2(Bucket=IMAGES_BUCKET)
    assert [o["Key"] for o in listed["Contents"]] == ["cats/1.jpg"]


def test_cluster_is_looked_up_in_its_state_store_and_the_store_deleted(torn_down: Deployment) -> None:
    """Role kops_cluster's delete ran first: kops asked for the cluster in the state store, which is gone."""
    calls = torn_down.kops_calls()
    assert calls and calls[0]["argv"][:2] == ["get", "cluster"] and CLUSTER in calls[0]["argv"]
    assert calls[0]["KOPS_STATE_STORE"] == f"s3://{KOPS_STATE_BUCKET}"
    assert KOPS_STATE_BUCKET not in buckets(torn_down.moto_url)


def test_pinned_host_keys_are_forgotten(torn_down: Deployment) -> None:
    """The instances' known_hosts file is removed: their addresses will belong to other machines."""
    assert not torn_down.known_hosts.exists()


def test_bucket_not_created_by_the_role_is_never_deleted(torn_down: Deployment) -> None:
    """Even with aws_hosts_delete_images_bucket, a bucket the role did not create (no created-by tag) stays."""
    s3 = client(torn_down.moto_url, "s3")
    s3.create_bucket(
        Bucket="someone-elses-images", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    run = torn_down.teardown(
        extra={"imgsieve_images_bucket": "someone-elses-images", "aws_hosts_delete_images_bucket": True}
    )
    assert run.returncode == 0, run.output
    assert run.changed == 0, run.output
    assert "someone-elses-images" in buckets(torn_down.moto_url)


def test_second_teardown_deletes_only_the_images_bucket_when_told(torn_down: Deployment) -> None:
    """Run again with aws_hosts_delete_images_bucket: the role-created bucket goes, the one change reported."""
    run = torn_down.teardown(extra={"aws_hosts_delete_images_bucket": True})
    assert run.returncode == 0, run.output
    assert run.changed == 1, run.output
    assert IMAGES_BUCKET not in buckets(torn_down.moto_url)
