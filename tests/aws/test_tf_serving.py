"""Role tf_serving and playbooks/model_rollout.yml against the Kubernetes API stand-in, moto and the kops
stand-in: the whole of playbooks/kubernetes.yml as site.yml runs it on the controller.

What runs for real: the roles' Ansible tasks, kubernetes.core's client-side apply and rollout wait through
the kubernetes client, amazon.aws and community.aws against moto's S3 API. What is emulated: the Kubernetes
API server and its controllers (tests/aws/standins/kube_api.py completes a rollout at once and gives a
LoadBalancer Service a hostname) and kops (tests/aws/standins/kops.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import PLAYBOOKS, REPO, Controller, KubeApi, start_kube_api, stop
from tests.aws.test_kops_cluster import cluster_vars

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLLOUT_PLAYBOOK = REPO / "playbooks" / "model_rollout.yml"
NAMESPACE = "imgsieve"
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/tf-serving-demo"
CONFIGMAP = f"/api/v1/namespaces/{NAMESPACE}/configmaps/tf-serving-demo"
SERVICE = f"/api/v1/namespaces/{NAMESPACE}/services/tf-serving-demo"
MODEL_BUCKET = "imgsieve-models-test"


def model_vars(controller: Controller, **more: Any) -> dict[str, Any]:
    """Variables of a full playbooks/kubernetes.yml run."""
    return {
        **cluster_vars(f"imgsieve-kops-{uuid.uuid4().hex[:12]}"),
        "tf_serving_model_s3_url": f"s3://{MODEL_BUCKET}/models/demo/",
        "tf_serving_model_version": 1,
        "report_file": str(controller.root / "tf_serving_url"),
        **more,
    }


def rollout_vars(variables: dict[str, Any], **more: Any) -> dict[str, Any]:
    """Variables of a model_rollout.yml run: the deploy's, less the served version, which the inventory (not
    the command line, whose -e would win over the playbook) holds in production."""
    return {**{k: v for k, v in variables.items() if k != "tf_serving_model_version"}, **more}


def fetched_version(deployment: dict[str, Any]) -> str:
    """The S3 prefix the init container copies, from the Deployment's pod template."""
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    return str(init["command"][-2])


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, moto_server: str
) -> Iterator[tuple[Controller, KubeApi, dict[str, Any]]]:
    """playbooks/kubernetes.yml run once for the module: the cluster (kops stand-in) and the model server
    (Kubernetes API stand-in) with version 1. Each test leaves the objects serving version 1."""
    root = tmp_path_factory.mktemp("deployed")
    proc, kube_api = start_kube_api(root)
    try:
        controller = Controller(root=root / "controller", moto_url=moto_server, kube_api_url=kube_api.url)
        variables = model_vars(controller)
        run = controller.playbook(PLAYBOOKS / "kubernetes_report.yml", variables)
        assert run.returncode == 0, run.output[-5000:]
        yield controller, kube_api, variables
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def model_bucket(deployed: tuple[Controller, KubeApi, dict[str, Any]]) -> Any:
    """The model bucket in moto, holding version 1; yields a boto3 S3 client."""
    client = deployed[0].s3()
    client.create_bucket(Bucket=MODEL_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    client.put_object(Bucket=MODEL_BUCKET, Key="models/demo/1/saved_model.pb", Body=b"version one")
    return client


def test_first_run_applies_every_object_and_publishes_the_internal_url(
    deployed: tuple[Controller, KubeApi, dict[str, Any]],
) -> None:
    """Six objects created in order, the rollout waited for, tf_serving_url on the internal load balancer."""
    controller, kube_api, _ = deployed
    created = [
        (r["path"].split("/")[-1], r["body"]["kind"]) for r in kube_api.writes() if r["method"] == "POST"
    ]
    assert [kind for _, kind in created] == [
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ]
    assert [r["method"] for r in kube_api.writes()] == ["POST"] * 6
    # The rollout wait read the Deployment back after creating it.
    gets = [r for r in kube_api.requests() if r["method"] == "GET" and r["path"] == DEPLOYMENT]
    assert len(gets) >= 2
    url = (controller.root / "tf_serving_url").read_text()
    hostname = kube_api.get(SERVICE)["status"]["loadBalancer"]["ingress"][0]["hostname"]
    assert url == f"http://{hostname}:8501/v1/models/demo"
    assert hostname.startswith("internal-")
    assert fetched_version(kube_api.get(DEPLOYMENT)) == f"s3://{MODEL_BUCKET}/models/demo/1/"


OBJECTS = [
    f"/api/v1/namespaces/{NAMESPACE}",
    CONFIGMAP,
    DEPLOYMENT,
    SERVICE,
    f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets/tf-serving-demo",
    f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/tf-serving-demo",
]


def test_second_run_changes_nothing(deployed: tuple[Controller, KubeApi, dict[str, Any]]) -> None:
    """A re-run of the whole playbook: changed=0, nothing created, every object as it was (resourceVersion
    included). kubernetes.core's client-side apply does send merge patches for list fields; they are no-ops."""
    controller, kube_api, variables = deployed
    before = {path: kube_api.get(path) for path in OBJECTS}
    writes = len(kube_api.writes())

    again = controller.playbook(PLAYBOOKS / "kubernetes_report.yml", variables)

    assert again.returncode == 0, again.output[-5000:]
    assert again.changed == 0, again.output[-5000:]
    assert {r["method"] for r in kube_api.writes()[writes:]} <= {"PATCH"}
    assert {path: kube_api.get(path) for path in OBJECTS} == before


def test_check_mode_of_a_new_version_reports_the_change_and_writes_nothing(
    deployed: tuple[Controller, KubeApi, dict[str, Any]],
) -> None:
    """--check with another version: the Deployment is reported as changing; the writes are server-side dry
    runs only and every object stays as it was."""
    controller, kube_api, variables = deployed
    before = {path: kube_api.get(path) for path in OBJECTS}
    writes = len(kube_api.writes())

    run = controller.playbook(
        PLAYBOOKS / "kubernetes_report.yml", {**variables, "tf_serving_model_version": 5}, "--check", "--diff"
    )

    assert run.returncode == 0, run.output[-5000:]
    assert run.changed >= 1
    assert "/models/demo/5/" in run.output
    assert {w.get("query") for w in kube_api.writes()[writes:]} == {"dryRun=All"}
    assert {path: kube_api.get(path) for path in OBJECTS} == before


def test_rollout_of_a_version_missing_from_s3_fails_before_touching_the_cluster(
    deployed: tuple[Controller, KubeApi, dict[str, Any]], model_bucket: Any
) -> None:
    """A version that was never uploaded stops the playbook with a message; no request reaches the API."""
    controller, kube_api, variables = deployed
    requests = len(kube_api.requests())

    run = controller.playbook(ROLLOUT_PLAYBOOK, rollout_vars(variables, model_version=7))

    assert run.returncode != 0
    assert "holds no saved_model.pb" in run.output
    assert kube_api.requests()[requests:] == []


def test_upgrade_uploads_and_rolls_with_no_unavailable_replica_then_rolls_back(
    deployed: tuple[Controller, KubeApi, dict[str, Any]], model_bucket: Any, tmp_path: Path
) -> None:
    """model_rollout.yml: version 2 uploaded and rolled out (a new revision, maxUnavailable 0); version 1 again
    restores the first pod template; S3 keeps both versions."""
    controller, kube_api, variables = deployed
    client = model_bucket
    export = tmp_path / "demo" / "2"
    (export / "variables").mkdir(parents=True)
    (export / "saved_model.pb").write_bytes(b"version two")
    (export / "variables" / "variables.index").write_bytes(b"index")
    first = kube_api.get(DEPLOYMENT)
    versions = {path: kube_api.get(path)["metadata"]["resourceVersion"] for path in OBJECTS}

    upgrade = controller.playbook(
        ROLLOUT_PLAYBOOK, rollout_vars(variables, model_version=2, model_dir=str(export))
    )

    assert upgrade.returncode == 0, upgrade.output[-5000:]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=MODEL_BUCKET, Prefix="models/demo/")["Contents"]}
    assert {"models/demo/2/saved_model.pb", "models/demo/2/variables/variables.index"} <= keys
    upgraded = kube_api.get(DEPLOYMENT)
    assert fetched_version(upgraded) == f"s3://{MODEL_BUCKET}/models/demo/2/"
    assert upgraded["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert upgraded["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert "versions: 2" in kube_api.get(CONFIGMAP)["data"]["models.conf"]
    changed = [
        path for path in OBJECTS if kube_api.get(path)["metadata"]["resourceVersion"] != versions[path]
    ]
    assert changed == [CONFIGMAP, DEPLOYMENT]

    rollback = controller.playbook(ROLLOUT_PLAYBOOK, rollout_vars(variables, model_version=1))

    assert rollback.returncode == 0, rollback.output[-5000:]
    restored = kube_api.get(DEPLOYMENT)
    assert restored["spec"]["template"] == first["spec"]["template"]
    assert restored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
