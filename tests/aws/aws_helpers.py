"""Running the EC2 half of the AWS tier against moto: playbooks/aws_hosts.yml and playbooks/teardown.yml with the
real inventory/aws, and boto3 clients to look at what they left in moto.

The playbooks run as an IAM user holding only inventory/aws/deployer_policy.json (its S3 part widened to s3:*,
since moto names some S3 actions differently from AWS, e.g. s3:HeadBucket), on a moto server of their own that
enforces IAM: so the tests also prove that the documented EC2, IAM and STS permissions suffice. The tests' own
look-ups use a second user allowed everything.

One deployment is shared by the test modules (provisioning takes about half a minute): `Deployment.ensure()`
provisions it on first use, and the teardown tests mark it gone so that a later `ensure()` provisions again.
Nothing is written into the checkout: the generated key pair and known_hosts go to a temporary directory.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
INVENTORY = REPO / "inventory" / "aws"
PLAYBOOK_TIMEOUT_S = 300
REGION = "eu-west-1"
# inventory/aws/group_vars/all/aws.yml's imgsieve_cluster_name: the tag value aws_ec2.yml filters on.
CLUSTER = "imgsieve.k8s.local"
NAME = "imgsieve"
ADMIN_CIDR = "203.0.113.7/32"
IMAGES_BUCKET = "imgsieve-test-images"
MODEL_BUCKET = "imgsieve-test-models"
KOPS_STATE_BUCKET = "imgsieve-test-kops-state"
# Moto's own account (its fake Debian image is registered there, see `debian_image`).
MOTO_ACCOUNT = "123456789012"


def vars_as_json(names: list[str]) -> str:
    """A Jinja expression rendering the named variables of a host as one JSON object."""
    listed = json.dumps(names)
    values = "query('ansible.builtin.vars', *" + listed + ", default='')"
    return "{{ dict(" + listed + " | zip(" + values + ")) | to_json }}"


# The facts role aws_hosts sets on the controller for the cluster.
FACTS = [
    "aws_hosts_vpc_id",
    "aws_hosts_vpc_cidr",
    "aws_hosts_subnet_ids",
    "aws_hosts_subnet_details",
    "aws_hosts_security_group_ids",
    "aws_hosts_images_read_policy_arn",
    "aws_hosts_model_read_policy_arn",
]
# A play that writes FACTS of the controller to the file in the variable facts_file.
WRITE_FACTS_PLAY = {
    "name": "Write the facts of role aws_hosts",
    "hosts": "aws_controller",
    "gather_facts": False,
    "tasks": [
        {
            "name": "Write them as JSON",
            "ansible.builtin.copy": {
                "content": vars_as_json(FACTS),
                "dest": "{{ facts_file }}",
                "mode": "0600",
            },
            "check_mode": False,
            "changed_when": False,
        }
    ],
}
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
DEPLOYER_POLICY = INVENTORY / "deployer_policy.json"
SERVER_START_TIMEOUT_S = 30.0


@dataclass
class Moto:
    """A moto server enforcing IAM, with the keys of the deployer (the playbooks) and of the auditor (the tests)."""

    url: str
    deployer: dict[str, str]
    auditor: dict[str, str]


_SERVERS: dict[str, Moto] = {}


def _user_with_policy(iam: Any, name: str, document: dict[str, Any]) -> dict[str, str]:
    """Create an IAM user holding one managed policy; return its access key as AWS_* variables."""
    iam.create_user(UserName=name)
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def moto_enforcing_iam() -> Moto:
    """The session's moto server that enforces IAM (started on first use, stopped when the process exits)."""
    if _SERVERS:
        return next(iter(_SERVERS.values()))
    # Requests moto serves before it enforces IAM: the readiness probe below, then for each of two users
    # create_user, create_policy, attach_user_policy and create_access_key.
    setup_calls = 1 + 2 * 4
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(setup_calls)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start on {url}") from None
            time.sleep(0.1)
    iam = boto3.client(
        "iam", endpoint_url=url, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
    )
    policy = json.loads(DEPLOYER_POLICY.read_text())
    for statement in policy["Statement"]:
        if all(action.startswith("s3:") for action in statement["Action"]):
            statement["Action"] = ["s3:*"]
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    moto = Moto(
        url, _user_with_policy(iam, "deployer", policy), _user_with_policy(iam, "auditor", everything)
    )
    _SERVERS[url] = moto
    return moto


@dataclass
class Run:
    """One ansible run: exit code, output (stdout then stderr), stdout alone, and the PLAY RECAP's changed count."""

    returncode: int
    output: str
    stdout: str

    @property
    def changed(self) -> int:
        """Tasks reported changed, summed over the hosts of every recap."""
        return sum(int(match[2]) for match in RECAP.findall(self.output))


def client(moto_url: str, service: str, user: str = "auditor") -> Any:
    """A boto3 client of moto for one service, in the deployment's region, as the auditor or the deployer."""
    keys = getattr(_SERVERS[moto_url], user)
    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )


def debian_image(moto_url: str) -> str:
    """Register (once) an image named like Debian's in moto's account; return its ID.

    An image of another name is registered too, so a lookup that ignored the name filter would be caught.
    """
    ec2 = client(moto_url, "ec2")
    found = ec2.describe_images(
        Owners=[MOTO_ACCOUNT], Filters=[{"Name": "name", "Values": ["debian-12-amd64-*"]}]
    )
    if found["Images"]:
        return str(found["Images"][0]["ImageId"])
    # Images made from an instance of one of moto's x86_64 images carry its architecture (registered ones none).
    base = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"][0][
        "ImageId"
    ]
    source = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    try:
        for name in ("debian-11-amd64-20240101-1600", "debian-12-amd64-20250610-2140"):
            image = ec2.create_image(InstanceId=source, Name=name)
    finally:
        ec2.terminate_instances(InstanceIds=[source])
    return str(image["ImageId"])


@dataclass
class Deployment:
    """The deployment of inventory/aws in moto, and how to run its playbooks."""

    moto_url: str
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="imgsieve-aws-hosts-")))
    provisioned: Run | None = None

    def __post_init__(self) -> None:
        atexit.register(shutil.rmtree, self.workdir, ignore_errors=True)

    @property
    def ssh_key(self) -> Path:
        """The private key role aws_hosts generates (its .pub is imported as the key pair)."""
        return self.workdir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """The instances' pinned host keys, which the teardown removes."""
        return self.workdir / "ssh" / "known_hosts"

    def extra_vars(self) -> dict[str, Any]:
        """What a user sets in the inventory and the vault, with the endpoint pointing at moto."""
        return {
            "aws_endpoint_url": self.moto_url,
            "aws_admin_cidr": ADMIN_CIDR,
            "imgsieve_images_bucket": IMAGES_BUCKET,
            "imgsieve_model_bucket": MODEL_BUCKET,
            "imgsieve_kops_state_bucket": KOPS_STATE_BUCKET,
            # Moto has no Debian image under Debian's account: look up the one registered in moto's own.
            "aws_hosts_ami_owner": MOTO_ACCOUNT,
            "aws_hosts_ssh_key": str(self.ssh_key),
            "aws_hosts_known_hosts": str(self.known_hosts),
        }

    def environment(self, **more: str) -> dict[str, str]:
        """Dummy keys, and the inventory plugin pointed at moto (it reads the endpoint from AWS_URL)."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        keys = _SERVERS[self.moto_url].deployer
        return {
            **keep,
            **keys,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_URL": self.moto_url,
            "ANSIBLE_NOCOLOR": "1",
            **more,
        }

    def run(self, command: str, *args: str, extra: dict[str, Any] | None = None, **env: str) -> Run:
        """Run an ansible command of the venv from the repository root (so ansible.cfg applies)."""
        vars_file = self.workdir / "extra_vars.json"
        vars_file.write_text(json.dumps({**self.extra_vars(), **(extra or {})}))
        result = subprocess.run(
            [str(VENV_BIN / command), "-i", str(INVENTORY), "-e", f"@{vars_file}", *args],
            cwd=REPO,
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT_S,
            check=False,
        )
        return Run(result.returncode, result.stdout + result.stderr, result.stdout)

    def aws_hosts(self, *args: str, extra: dict[str, Any] | None = None) -> Run:
        """playbooks/aws_hosts.yml, without waiting for SSH (moto's instances run no sshd); then the role's facts
        are written to `facts_file` (read them with `facts()`)."""
        playbook = self.workdir / "aws_hosts_then_facts.yml"
        imported = {
            "name": "Create the EC2 hosts",
            "ansible.builtin.import_playbook": str(REPO / "playbooks/aws_hosts.yml"),
        }
        playbook.write_text(json.dumps([imported, WRITE_FACTS_PLAY]))
        return self.run(
            "ansible-playbook",
            str(playbook),
            "--skip-tags",
            "aws_hosts_ssh",
            *args,
            extra={"facts_file": str(self.facts_file), **(extra or {})},
        )

    def facts_entry_point(self) -> Run:
        """Only the role's `facts` entry point, then its facts written to `facts_file`."""
        playbook = self.workdir / "facts.yml"
        lookup = {
            "name": "Look up the facts",
            "hosts": "aws_controller",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the facts entry point",
                    "ansible.builtin.include_role": {"name": "aws_hosts", "tasks_from": "facts"},
                }
            ],
        }
        playbook.write_text(json.dumps([lookup, WRITE_FACTS_PLAY]))
        return self.run(
            "ansible-playbook",
            str(playbook),
            extra={"facts_file": str(self.facts_file)},
            ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        )

    @property
    def facts_file(self) -> Path:
        """Where the last run wrote the role's facts."""
        return self.workdir / "facts.json"

    def facts(self) -> dict[str, Any]:
        """The role's facts as the last run left them."""
        return dict(json.loads(self.facts_file.read_text()))

    def teardown(self, *args: str, extra: dict[str, Any] | None = None) -> Run:
        """playbooks/teardown.yml, with the kops stand-in (tests/aws/standins/kops.py) first on PATH."""
        bin_dir = self.workdir / "bin"
        wrapper = bin_dir / "kops"
        if not wrapper.exists():
            bin_dir.mkdir(parents=True, exist_ok=True)
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.aws.standins.kops "$@"\n')
            wrapper.chmod(0o755)
        return self.run(
            "ansible-playbook",
            "playbooks/teardown.yml",
            *args,
            extra={"kops_cluster_install_binaries": False, **(extra or {})},
            PATH=f"{bin_dir}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            PYTHONPATH=str(REPO),
            KOPS_STANDIN_DIR=str(self.kops_dir),
            HOME=str(self.workdir / "home"),
        )

    @property
    def kops_dir(self) -> Path:
        """Where the kops stand-in records its calls."""
        return self.workdir / "kops"

    def kops_calls(self) -> list[dict[str, Any]]:
        """The kops stand-in's calls so far, oldest first."""
        log = self.kops_dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def ensure(self) -> Run:
        """Provision the deployment unless it is already there; return the run that provisioned it."""
        if self.provisioned is None:
            debian_image(self.moto_url)
            run = self.aws_hosts()
            assert run.returncode == 0, run.output
            self.provisioned = run
        return self.provisioned

    def forget(self) -> None:
        """The deployment was torn down: the next `ensure()` provisions it again."""
        self.provisioned = None


_DEPLOYMENTS: dict[str, Deployment] = {}


def deployment(moto_url: str) -> Deployment:
    """The one deployment of this test session on that moto server."""
    if moto_url not in _DEPLOYMENTS:
        _DEPLOYMENTS[moto_url] = Deployment(moto_url)
    return _DEPLOYMENTS[moto_url]


def cluster_filter(*more: dict[str, Any]) -> list[dict[str, Any]]:
    """EC2 describe filters: this deployment's tag, plus more."""
    return [{"Name": "tag:imgsieve:cluster", "Values": [CLUSTER]}, *more]


def instances(
    moto_url: str, role: str | None = None, states: tuple[str, ...] = ("pending", "running")
) -> list[Any]:
    """The deployment's instances (of one role tag value), in the given states, oldest first."""
    more = [{"Name": "instance-state-name", "Values": list(states)}]
    if role is not None:
        more.append({"Name": "tag:imgsieve:role", "Values": [role]})
    pages = client(moto_url, "ec2").describe_instances(Filters=cluster_filter(*more))["Reservations"]
    found = [instance for page in pages for instance in page["Instances"]]
    return sorted(found, key=lambda instance: instance["LaunchTime"])
