"""Role kops_cluster against moto (the state-store bucket) and the recording kops stand-in on PATH.

What runs for real: the role's Ansible tasks, amazon.aws against moto's S3 API, get_url's checksum check
against a local HTTP server. What is emulated: kops itself (tests/aws/standins/kops.py records the commands
and answers as kops does; it checks the objects it is given with tests/aws/kops_objects.py).
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.aws.conftest import PLAYBOOKS, REPO, Controller, Run
from tests.aws.kops_objects import check_objects

pytestmark = [pytest.mark.integration]

KUBERNETES_PLAYBOOK = REPO / "playbooks" / "kubernetes.yml"
ADMIN = ["203.0.113.7/32"]


def cluster_vars(bucket: str, **more: Any) -> dict[str, Any]:
    """Variables of a cluster run against the stand-ins."""
    return {
        "kops_cluster_state_bucket": bucket,
        "kops_cluster_api_access": ADMIN,
        "kops_cluster_ssh_access": ADMIN,
        "kops_cluster_install_binaries": False,
        "kops_cluster_node_policy_arns": ["arn:aws:iam::123456789012:policy/imgsieve-model-read"],
        **more,
    }


def verbs(calls: list[dict[str, Any]]) -> list[str]:
    """Each kops call as its subcommand words and --yes, e.g. 'update cluster --yes'."""
    words = []
    for call in calls:
        argv = call["argv"]
        head = [a for a in argv[:2] if not a.startswith("-")]
        words.append(" ".join(head + (["--yes"] if "--yes" in argv else [])))
    return words


@pytest.fixture
def bucket() -> str:
    """A state-store bucket name unique to the test."""
    return f"imgsieve-kops-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> tuple[Controller, str, Run]:
    """playbooks/kubernetes.yml (tag kops_cluster) run once for the module on a new state store; the tests
    after the first continue from the state it left."""
    controller = Controller(root=tmp_path_factory.mktemp("created") / "controller", moto_url=moto_server)
    name = f"imgsieve-kops-{uuid.uuid4().hex[:12]}"
    return (
        controller,
        name,
        controller.playbook(KUBERNETES_PLAYBOOK, cluster_vars(name), "--tags", "kops_cluster"),
    )


@pytest.mark.slow
def test_first_run_creates_bucket_applies_spec_and_exports_kubeconfig(
    created: tuple[Controller, str, Run],
) -> None:
    """A first run creates the locked-down bucket, then kops: look up, replace, preview, update, export, validate."""
    controller, bucket, run = created
    assert run.returncode == 0, run.output[-4000:]

    s3 = controller.s3()
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
    )

    calls = controller.kops_calls()
    assert verbs(calls) == [
        "get cluster",
        "replace",
        "update cluster",
        "update cluster --yes",
        "export kubecfg",
        "validate cluster",
    ]
    assert {call["KOPS_STATE_STORE"] for call in calls} == {f"s3://{bucket}"}
    assert {call["AWS_REGION"] for call in calls} == {"eu-west-1"}
    replace = calls[1]["argv"]
    assert "--force" in replace
    spec_file = Path(replace[replace.index("-f") + 1])
    docs = list(yaml.safe_load_all(spec_file.read_text()))
    assert check_objects(docs) == []
    cluster = docs[0]
    assert cluster["spec"]["externalPolicies"] == {
        "node": ["arn:aws:iam::123456789012:policy/imgsieve-model-read"]
    }
    assert cluster["spec"]["configBase"] == f"s3://{bucket}/imgsieve.k8s.local"
    kubeconfig = controller.root / "home" / ".cache/imgsieve/kops/imgsieve.k8s.local/kubeconfig"
    assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "imgsieve.k8s.local"
    assert kubeconfig.stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_second_run_changes_nothing_and_runs_only_read_only_kops_commands(
    created: tuple[Controller, str, Run],
) -> None:
    """Re-run: changed=0; kops only looks up the cluster, previews (no changes) and validates."""
    controller, bucket, first = created
    assert first.returncode == 0, first.output[-4000:]
    before = len(controller.kops_calls())

    second = controller.playbook(KUBERNETES_PLAYBOOK, cluster_vars(bucket), "--tags", "kops_cluster")

    assert second.returncode == 0, second.output[-4000:]
    assert second.changed == 0, second.output[-4000:]
    assert verbs(controller.kops_calls()[before:]) == ["get cluster", "update cluster", "validate cluster"]


@pytest.mark.slow
def test_changed_group_size_is_replaced_and_applied_without_new_kubeconfig(
    created: tuple[Controller, str, Run],
) -> None:
    """A larger GPU group: the spec is written again and applied; the kubeconfig is still fresh."""
    controller, bucket, first = created
    assert first.returncode == 0, first.output[-4000:]
    before = len(controller.kops_calls())

    bigger = controller.playbook(
        KUBERNETES_PLAYBOOK, cluster_vars(bucket, kops_cluster_gpu_max=4), "--tags", "kops_cluster"
    )

    assert bigger.returncode == 0, bigger.output[-4000:]
    assert verbs(controller.kops_calls()[before:]) == [
        "get cluster",
        "replace",
        "update cluster",
        "update cluster --yes",
        "validate cluster",
    ]
    stored = controller.kops_dir / "state" / "imgsieve.k8s.local" / "applied.yaml"
    gpu = [doc for doc in yaml.safe_load_all(stored.read_text()) if doc["metadata"]["name"] == "gpu-nodes"]
    assert gpu[0]["spec"]["maxSize"] == 4


@pytest.mark.slow
def test_check_mode_changes_nothing_on_a_new_cluster(controller: Controller, bucket: str) -> None:
    """--check before the first run: no bucket, and kops is only asked whether the cluster exists."""
    run = controller.playbook(KUBERNETES_PLAYBOOK, cluster_vars(bucket), "--tags", "kops_cluster", "--check")

    assert run.returncode == 0, run.output[-4000:]
    assert verbs(controller.kops_calls()) == ["get cluster"]
    assert bucket not in [b["Name"] for b in controller.s3().list_buckets()["Buckets"]]


@pytest.mark.slow
def test_delete_removes_cluster_and_state_bucket(created: tuple[Controller, str, Run]) -> None:
    """tasks_from delete (the module's last use of the cluster): `kops delete cluster --yes`, then the
    versioned bucket with all its object versions."""
    controller, bucket, first = created
    assert first.returncode == 0, first.output[-4000:]
    s3 = controller.s3()
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket=bucket, Key="imgsieve.k8s.local/config", Body=body)
    before = len(controller.kops_calls())

    deleted = controller.playbook(PLAYBOOKS / "delete.yml", cluster_vars(bucket))

    assert deleted.returncode == 0, deleted.output[-4000:]
    assert verbs(controller.kops_calls()[before:]) == ["get cluster", "delete cluster --yes"]
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not (controller.kops_dir / "state" / "imgsieve.k8s.local").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"kops_cluster_api_access": []}, "kops_cluster_api_access"),
        ({"kops_cluster_name": "imgsieve.example.com"}, "kops_cluster_dns_zone"),
        ({"kops_cluster_gpu_min": 4}, "0 <= min <= max"),
    ],
)
def test_preflight_names_the_bad_variable_and_runs_no_kops(
    controller: Controller, bucket: str, override: dict[str, Any], named: str
) -> None:
    """A missing or inconsistent variable stops the role before any kops command, naming it."""
    run = controller.playbook(KUBERNETES_PLAYBOOK, cluster_vars(bucket, **override), "--tags", "kops_cluster")

    assert run.returncode != 0
    assert named in run.output
    assert controller.kops_calls() == []


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """A file server that does not log to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A local HTTP server of two stand-in release files; yields its URL and their sha256s."""
    root = tmp_path / "releases"
    root.mkdir()
    digests = {}
    for name in ("kops-linux-amd64", "kubectl"):
        content = f"#!/bin/sh\necho {name} {uuid.uuid4()}\n".encode()
        (root / name).write_bytes(content)
        digests[name] = hashlib.sha256(content).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", digests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_install_verifies_checksums_and_is_idempotent(
    controller: Controller, release_server: tuple[str, dict[str, str]]
) -> None:
    """The right sha256 installs both tools executable; a re-run downloads nothing; a wrong one fails."""
    url, digests = release_server
    bin_dir = controller.root / "tools"
    variables = {
        "kops_cluster_bin_dir": str(bin_dir),
        "kops_cluster_kops_url": f"{url}/kops-linux-amd64",
        "kops_cluster_kops_sha256": digests["kops-linux-amd64"],
        "kops_cluster_kubectl_url": f"{url}/kubectl",
        "kops_cluster_kubectl_sha256": digests["kubectl"],
    }
    first = controller.playbook(PLAYBOOKS / "install.yml", variables)
    assert first.returncode == 0, first.output[-4000:]
    for name, source in (("kops", "kops-linux-amd64"), ("kubectl", "kubectl")):
        assert hashlib.sha256((bin_dir / name).read_bytes()).hexdigest() == digests[source]
        assert (bin_dir / name).stat().st_mode & 0o111

    again = controller.playbook(PLAYBOOKS / "install.yml", variables)
    assert again.returncode == 0 and again.changed == 0, again.output[-4000:]

    wrong = {
        **variables,
        "kops_cluster_bin_dir": str(controller.root / "other"),
        "kops_cluster_kops_sha256": "0" * 64,
    }
    failed = controller.playbook(PLAYBOOKS / "install.yml", wrong)
    assert failed.returncode != 0
    assert "checksum" in failed.output.lower()
    assert not (controller.root / "other" / "kops").exists()
