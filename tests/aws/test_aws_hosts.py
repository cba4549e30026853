"""playbooks/aws_hosts.yml (role aws_hosts) run for real against moto with inventory/aws: what it creates, that a
second run and a check-mode run change nothing, scaling the consumers, and the preflight's refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws.aws_helpers import (
    ADMIN_CIDR,
    CLUSTER,
    IMAGES_BUCKET,
    MODEL_BUCKET,
    NAME,
    Deployment,
    client,
    cluster_filter,
    debian_image,
    deployment,
    instances,
    moto_enforcing_iam,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_url() -> str:
    """moto enforcing IAM; the playbooks run as the deployer (see tests/aws/aws_helpers.py)."""
    return moto_enforcing_iam().url


# What each instance role runs with: its security groups (by name suffix) and instance profile.
KINDS: dict[str, dict[str, Any]] = {
    "db": {"groups": {"admin-ssh", "db"}, "profile": False, "type": "t3.medium", "count": 1},
    "producer": {"groups": {"admin-ssh", "producer"}, "profile": True, "type": "t3.small", "count": 1},
    "consumer": {"groups": {"admin-ssh", "consumers"}, "profile": False, "type": "t3.medium", "count": 2},
}


@pytest.fixture
def deployed(moto_url: str) -> Deployment:
    """The deployment, provisioned by a first run of playbooks/aws_hosts.yml."""
    found = deployment(moto_url)
    found.ensure()
    return found


def security_groups(moto_url: str) -> dict[str, Any]:
    """The deployment's security groups by name."""
    groups = client(moto_url, "ec2").describe_security_groups(Filters=cluster_filter())["SecurityGroups"]
    return {group["GroupName"]: group for group in groups}


def ingress(group: dict[str, Any]) -> set[tuple[Any, ...]]:
    """A group's inbound rules as (protocol, from, to, source) with sources as CIDRs or group IDs."""
    rules = set()
    for permission in group["IpPermissions"]:
        key = (permission["IpProtocol"], permission.get("FromPort"), permission.get("ToPort"))
        rules |= {(*key, ip_range["CidrIp"]) for ip_range in permission.get("IpRanges", [])}
        rules |= {(*key, pair["GroupId"]) for pair in permission.get("UserIdGroupPairs", [])}
    return rules


def policy_document(moto_url: str, name: str) -> dict[str, Any]:
    """The default version's document of the customer managed policy of that name."""
    iam = client(moto_url, "iam")
    arn = next(p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"] if p["PolicyName"] == name)
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else dict(document)


@pytest.mark.slow
def test_first_run_creates_the_hosts(deployed: Deployment) -> None:
    """The first run succeeds and creates resources."""
    run = deployed.ensure()
    assert run.returncode == 0, run.output
    assert run.changed > 0, run.output


@pytest.mark.slow
@pytest.mark.parametrize("role", sorted(KINDS))
def test_instances_of_each_role_run_as_designed(deployed: Deployment, role: str) -> None:
    """Each role has its count of instances: type, Debian image, key pair, subnet, groups, profile, IMDSv2."""
    kind = KINDS[role]
    found = instances(deployed.moto_url, role)
    assert len(found) == kind["count"]
    groups = security_groups(deployed.moto_url)
    vpc = client(deployed.moto_url, "ec2").describe_vpcs(Filters=cluster_filter())["Vpcs"]
    for instance in found:
        tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
        assert tags["Name"] == f"{NAME}-{role}"
        assert instance["InstanceType"] == kind["type"]
        assert instance["ImageId"] == debian_image(deployed.moto_url)
        assert instance["KeyName"] == NAME
        assert instance["VpcId"] == vpc[0]["VpcId"]
        names = {group["GroupName"] for group in instance["SecurityGroups"]}
        assert names == {f"{NAME}-{suffix}" for suffix in kind["groups"]}
        assert all(groups[name]["VpcId"] == vpc[0]["VpcId"] for name in names)
        assert ("IamInstanceProfile" in instance) == kind["profile"]
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        assert instance.get("PublicIpAddress"), "SSH from the admin CIDR needs a public address"


@pytest.mark.slow
def test_root_volumes_are_encrypted_gp3(deployed: Deployment) -> None:
    """Every instance's root volume is encrypted gp3 of the configured size."""
    ec2 = client(deployed.moto_url, "ec2")
    sizes = {"db": 40, "producer": 16, "consumer": 16}
    for role, size in sizes.items():
        for instance in instances(deployed.moto_url, role):
            volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
            volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
            assert (volume["Encrypted"], volume["VolumeType"], volume["Size"]) == (True, "gp3", size), role


@pytest.mark.slow
def test_security_groups_let_in_exactly_what_each_host_serves(deployed: Deployment) -> None:
    """SSH from the admin CIDR; ZeroMQ from the consumers; MySQL from the consumers and the producer; no more."""
    groups = security_groups(deployed.moto_url)
    ids = {name: group["GroupId"] for name, group in groups.items()}
    assert set(groups) == {f"{NAME}-admin-ssh", f"{NAME}-consumers", f"{NAME}-producer", f"{NAME}-db"}
    assert ingress(groups[f"{NAME}-admin-ssh"]) == {("tcp", 22, 22, ADMIN_CIDR)}
    assert ingress(groups[f"{NAME}-consumers"]) == set()
    assert ingress(groups[f"{NAME}-producer"]) == {("tcp", 5557, 5557, ids[f"{NAME}-consumers"])}
    assert ingress(groups[f"{NAME}-db"]) == {
        ("tcp", 3306, 3306, ids[f"{NAME}-consumers"]),
        ("tcp", 3306, 3306, ids[f"{NAME}-producer"]),
    }


@pytest.mark.slow
def test_network_is_a_vpc_with_public_subnets_routed_to_an_internet_gateway(deployed: Deployment) -> None:
    """The VPC's CIDR, one public subnet per zone tagged for internal load balancers, a default route."""
    ec2 = client(deployed.moto_url, "ec2")
    vpcs = ec2.describe_vpcs(Filters=cluster_filter())["Vpcs"]
    assert [vpc["CidrBlock"] for vpc in vpcs] == ["10.42.0.0/16"]
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=cluster_filter({"Name": "vpc-id", "Values": [vpc_id]}))["Subnets"]
    assert sorted((s["AvailabilityZone"], s["CidrBlock"]) for s in subnets) == [
        ("eu-west-1a", "10.42.0.0/20"),
        ("eu-west-1b", "10.42.16.0/20"),
    ]
    for subnet in subnets:
        tags = {tag["Key"]: tag["Value"] for tag in subnet["Tags"]}
        assert subnet["MapPublicIpOnLaunch"] is True
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert tags[f"kubernetes.io/cluster/{CLUSTER}"] == "shared"
    gateways = ec2.describe_internet_gateways(Filters=cluster_filter())["InternetGateways"]
    assert [g["Attachments"][0]["VpcId"] for g in gateways] == [vpc_id]
    tables = ec2.describe_route_tables(Filters=cluster_filter())["RouteTables"]
    assert len(tables) == 1
    routes = {(r.get("DestinationCidrBlock"), r.get("GatewayId")) for r in tables[0]["Routes"]}
    assert ("0.0.0.0/0", gateways[0]["InternetGatewayId"]) in routes
    associated = {a["SubnetId"] for a in tables[0]["Associations"] if "SubnetId" in a}
    assert associated == {s["SubnetId"] for s in subnets}


@pytest.mark.slow
@pytest.mark.parametrize("bucket", [IMAGES_BUCKET, MODEL_BUCKET])
def test_read_policies_read_exactly_one_bucket(deployed: Deployment, bucket: str) -> None:
    """Each policy allows listing and reading one bucket, nothing else: no write, no other resource."""
    name = f"{NAME}-images-read" if bucket == IMAGES_BUCKET else f"{NAME}-model-read"
    document = policy_document(deployed.moto_url, name)
    allowed: set[tuple[str, str]] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        allowed |= {(action, resource) for action in actions for resource in resources}
    assert allowed == {
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}"),
        ("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}"),
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/*"),
    }


@pytest.mark.slow
def test_producer_profile_carries_the_images_policy_only(deployed: Deployment) -> None:
    """The producer's instance profile holds one role, trusted by EC2, with the images policy alone attached."""
    iam = client(deployed.moto_url, "iam")
    profile = iam.get_instance_profile(InstanceProfileName=f"{NAME}-producer")["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == [f"{NAME}-producer"]
    role = iam.get_role(RoleName=f"{NAME}-producer")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
    attached = iam.list_attached_role_policies(RoleName=f"{NAME}-producer")["AttachedPolicies"]
    assert [policy["PolicyName"] for policy in attached] == [f"{NAME}-images-read"]
    assert iam.list_role_policies(RoleName=f"{NAME}-producer")["PolicyNames"] == []
    producer = instances(deployed.moto_url, "producer")[0]
    assert producer["IamInstanceProfile"]["Arn"] == profile["Arn"]


@pytest.mark.slow
def test_images_bucket_is_created_private_encrypted_and_tagged(deployed: Deployment) -> None:
    """A missing images bucket is created with public access blocked, encryption, and the tags the teardown reads."""
    s3 = client(deployed.moto_url, "s3")
    block = s3.get_public_access_block(Bucket=IMAGES_BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=IMAGES_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    tags = {tag["Key"]: tag["Value"] for tag in s3.get_bucket_tagging(Bucket=IMAGES_BUCKET)["TagSet"]}
    assert tags == {"imgsieve:cluster": CLUSTER, "imgsieve:created-by": "aws_hosts"}


@pytest.mark.slow
def test_key_pair_is_the_generated_key(deployed: Deployment) -> None:
    """The key pair was generated on the controller (private key 0600) and its public half imported."""
    assert deployed.ssh_key.stat().st_mode & 0o777 == 0o600
    public = deployed.ssh_key.with_suffix(".pub").read_text().split()
    assert public[0] == "ssh-ed25519"
    pairs = client(deployed.moto_url, "ec2").describe_key_pairs(KeyNames=[NAME])["KeyPairs"]
    assert len(pairs) == 1
    assert {tag["Key"]: tag["Value"] for tag in pairs[0].get("Tags", [])}["imgsieve:cluster"] == CLUSTER


@pytest.mark.slow
def test_second_run_changes_nothing_and_sets_the_facts_the_lookup_finds(deployed: Deployment) -> None:
    """Running the playbook again reports no change, keeps the instances, and sets the same facts for the cluster
    as the `facts` entry point (which only looks things up)."""
    before = [i["InstanceId"] for i in instances(deployed.moto_url)]
    run = deployed.aws_hosts()
    assert run.returncode == 0, run.output
    assert run.changed == 0, run.output
    assert [i["InstanceId"] for i in instances(deployed.moto_url)] == before
    from_main = deployed.facts()
    run = deployed.facts_entry_point()
    assert run.returncode == 0, run.output
    assert run.changed == 0, run.output
    assert deployed.facts() == from_main


@pytest.mark.slow
def test_facts_describe_the_network_and_policies_for_the_cluster(deployed: Deployment) -> None:
    """The facts name the VPC, its subnets (instances' first), the groups and the policies as moto has them."""
    run = deployed.facts_entry_point()
    assert run.returncode == 0, run.output
    facts = deployed.facts()
    ec2 = client(deployed.moto_url, "ec2")
    vpc = ec2.describe_vpcs(Filters=cluster_filter())["Vpcs"][0]
    assert (facts["aws_hosts_vpc_id"], facts["aws_hosts_vpc_cidr"]) == (vpc["VpcId"], vpc["CidrBlock"])
    subnets = ec2.describe_subnets(SubnetIds=facts["aws_hosts_subnet_ids"])["Subnets"]
    details = [{"id": s["SubnetId"], "zone": s["AvailabilityZone"], "cidr": s["CidrBlock"]} for s in subnets]
    assert sorted(facts["aws_hosts_subnet_details"], key=str) == sorted(details, key=str)
    assert [d["id"] for d in facts["aws_hosts_subnet_details"]] == facts["aws_hosts_subnet_ids"]
    assert instances(deployed.moto_url)[0]["SubnetId"] == facts["aws_hosts_subnet_ids"][0]
    groups = {
        name.removeprefix(f"{NAME}-"): g["GroupId"] for name, g in security_groups(deployed.moto_url).items()
    }
    assert facts["aws_hosts_security_group_ids"] == {k.replace("-", "_"): v for k, v in groups.items()}
    policies = {
        p["PolicyName"]: p["Arn"]
        for p in client(deployed.moto_url, "iam").list_policies(Scope="Local")["Policies"]
    }
    assert facts["aws_hosts_images_read_policy_arn"] == policies[f"{NAME}-images-read"]
    assert facts["aws_hosts_model_read_policy_arn"] == policies[f"{NAME}-model-read"]


@pytest.mark.slow
def test_check_mode_reports_only_the_wanted_change_and_makes_none(deployed: Deployment) -> None:
    """--check with one more consumer wanted reports exactly that one change, and launches nothing."""
    before = [i["InstanceId"] for i in instances(deployed.moto_url)]
    run = deployed.aws_hosts(
        "--check", extra={"aws_hosts_consumer_count": len(instances(deployed.moto_url, "consumer")) + 1}
    )
    assert run.returncode == 0, run.output
    assert run.changed == 1, run.output
    assert "changed: [aws-controller] => (item=consumer x 3)" in run.output
    assert [i["InstanceId"] for i in instances(deployed.moto_url)] == before


@pytest.mark.slow
def test_consumer_count_scales_out_and_in(deployed: Deployment) -> None:
    """A higher aws_hosts_consumer_count adds consumers; the default again terminates the oldest one."""
    before = [i["InstanceId"] for i in instances(deployed.moto_url, "consumer")]
    run = deployed.aws_hosts(extra={"aws_hosts_consumer_count": len(before) + 1})
    assert run.returncode == 0, run.output
    grown = [i["InstanceId"] for i in instances(deployed.moto_url, "consumer")]
    assert len(grown) == len(before) + 1 and set(before) < set(grown)
    run = deployed.aws_hosts()
    assert run.returncode == 0, run.output
    # The module terminates the oldest; the original two share a launch time, so which of them goes is open.
    left = [i["InstanceId"] for i in instances(deployed.moto_url, "consumer")]
    assert len(left) == len(before) and set(left) < set(grown) and grown[-1] in left


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"aws_admin_cidr": ""}, "role aws_hosts needs aws_hosts_admin_cidr"),
        ({"imgsieve_images_bucket": ""}, "role aws_hosts needs aws_hosts_images_bucket"),
        ({"aws_admin_cidr": "0.0.0.0/0"}, "aws_hosts_admin_cidr must be the IPv4 network SSH is open to"),
        ({"aws_hosts_consumer_count": 0}, "aws_hosts_consumer_count at least 1"),
    ],
)
def test_preflight_refuses_bad_settings_before_any_aws_call(
    moto_url: str, override: dict[str, Any], message: str
) -> None:
    """A missing or bad setting stops the play at the preflight, naming the variable; nothing is created."""
    run = Deployment(moto_url).aws_hosts(extra=override)
    assert run.returncode != 0
    assert message in " ".join(run.output.split()), run.output
    assert "TASK [aws_hosts : Create the VPC]" not in run.output


def test_playbooks_run_as_a_user_denied_what_the_documented_policy_leaves_out(moto_url: str) -> None:
    """The deployer's keys (the playbooks') are refused an action outside inventory/aws/deployer_policy.json, so the
    runs above prove that the policy's EC2, IAM and STS actions suffice."""
    with pytest.raises(ClientError, match="AccessDenied"):
        client(moto_url, "iam", user="deployer").create_user(UserName="intruder")
    with pytest.raises(ClientError, match="AccessDenied"):
        client(moto_url, "ec2", user="deployer").create_nat_gateway(
            SubnetId="subnet-0", AllocationId="eipalloc-0"
        )
