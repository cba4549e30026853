"""Every object the Kubernetes tier renders, for several variable sets, is valid: the Kubernetes objects
against the OpenAPI schemas of the Kubernetes release the cluster runs (kubernetes-validate, strict), the
kops objects for the fields kops requires (tests/aws/kops_objects.py), TF Serving's config files by parsing
them as the server does (protobuf text format).

The objects are rendered by the roles themselves (their preflight, spec and render tasks).
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from tests.aws.conftest import PLAYBOOKS, Controller
from tests.aws.kops_objects import check_objects
from tests.aws.test_kops_cluster import cluster_vars
from tests.aws.tf_serving_protos import parse_batching, parse_model_config, parse_monitoring

pytestmark = [pytest.mark.integration]

# The Kubernetes release of the cluster (kops_cluster_kubernetes_version's minor).
KUBERNETES_VERSION = "1.31.0"
MODEL_URL = "s3://imgsieve-models/models/demo/"
VARIABLE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "dns_cluster": {
        "kops_cluster_name": "models.imgsieve.example.com",
        "kops_cluster_dns_zone": "imgsieve.example.com",
        "kops_cluster_dns_type": "Private",
    },
    "cpu_only_public": {
        "kops_cluster_gpu_enabled": False,
        "kops_cluster_topology": "public",
        "kops_cluster_subnets": [
            {"name": "eu-west-1a", "zone": "eu-west-1a", "cidr": "172.20.32.0/19", "type": "Public"},
            {"name": "eu-west-1b", "zone": "eu-west-1b", "cidr": "172.20.64.0/19", "type": "Public"},
        ],
        "kops_cluster_node_min": 2,
        "kops_cluster_node_max": 5,
        "kops_cluster_autoscaler": False,
        "tf_serving_gpu": False,
        "tf_serving_internal": False,
        "tf_serving_source_ranges": ["198.51.100.0/24"],
    },
    "three_zones_more_replicas": {
        "kops_cluster_network_id": "vpc-0123456789abcdef0",
        "kops_cluster_network_cidr": "10.20.0.0/16",
        "kops_cluster_subnets": [
            {
                "name": f"eu-west-1{z}",
                "zone": f"eu-west-1{z}",
                "cidr": f"10.20.{32 * i + 32}.0/19",
                "type": "Private",
            }
            for i, z in enumerate("abc")
        ]
        + [{"name": "utility-eu-west-1a", "zone": "eu-west-1a", "cidr": "10.20.0.0/22", "type": "Utility"}],
        "kops_cluster_gpu_min": 3,
        "kops_cluster_gpu_max": 6,
        "tf_serving_replicas_min": 3,
        "tf_serving_replicas_max": 6,
        "tf_serving_allowed_batch_sizes": [16, 32, 64],
        "tf_serving_model_version": 12,
    },
}


def render(
    controller: Controller, overrides: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Render both roles' objects with the variable set; return (kops objects, Kubernetes objects)."""
    kops_dir, k8s_dir = controller.root / "kops", controller.root / "k8s"
    variables = {
        **cluster_vars(f"imgsieve-kops-{uuid.uuid4().hex[:12]}"),
        "kops_cluster_build_dir": str(kops_dir),
        "tf_serving_build_dir": str(k8s_dir),
        "tf_serving_kubeconfig": str(controller.root / "kubeconfig"),
        "tf_serving_model_s3_url": MODEL_URL,
        "tf_serving_model_version": 3,
        **overrides,
    }
    run = controller.playbook(PLAYBOOKS / "render.yml", variables)
    assert run.returncode == 0, run.output[-4000:]
    kops = [doc for doc in yaml.safe_load_all((kops_dir / "cluster.yaml").read_text()) if doc]
    k8s = [doc for doc in yaml.safe_load_all((k8s_dir / "tf-serving.yaml").read_text()) if doc]
    return kops, k8s


@pytest.fixture(scope="module", params=sorted(VARIABLE_SETS))
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, moto_server: str
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(variables, kops objects, Kubernetes objects by kind) of one variable set."""
    overrides = VARIABLE_SETS[request.param]
    controller = Controller(root=tmp_path_factory.mktemp(request.param), moto_url=moto_server)
    kops, k8s = render(controller, overrides)
    by_kind = {doc["kind"]: doc for doc in k8s}
    assert len(by_kind) == len(k8s)
    return overrides, kops, by_kind


def test_kops_objects_have_what_kops_requires(
    rendered: tuple[dict[str, Any], list[Any], dict[str, Any]],
) -> None:
    """The Cluster and its instance groups pass the kops checks; GPU support only with a GPU group."""
    overrides, kops, _ = rendered
    assert check_objects(kops) == []
    cluster = kops[0]
    groups = {doc["metadata"]["name"]: doc["spec"] for doc in kops[1:]}
    gpu = overrides.get("kops_cluster_gpu_enabled", True)
    assert ("gpu-nodes" in groups) is gpu
    assert cluster["spec"].get("containerd", {}).get("nvidiaGPU", {}).get("enabled", False) is gpu
    if gpu:
        assert groups["gpu-nodes"]["machineType"] == "g4dn.xlarge"
        assert groups["gpu-nodes"]["minSize"] == overrides.get("kops_cluster_gpu_min", 1)
        assert groups["gpu-nodes"]["maxSize"] == overrides.get("kops_cluster_gpu_max", 3)
        assert "nvidia.com/gpu:NoSchedule" in groups["gpu-nodes"]["taints"]
    assert cluster["spec"]["kubernetesVersion"].startswith(KUBERNETES_VERSION.rsplit(".", 1)[0] + ".")
    if "kops_cluster_dns_zone" in overrides:
        assert cluster["spec"]["dnsZone"] == overrides["kops_cluster_dns_zone"]
        assert cluster["spec"]["topology"]["dns"]["type"] == overrides["kops_cluster_dns_type"]
    else:
        assert cluster["metadata"]["name"].endswith(".k8s.local")
        assert "dnsZone" not in cluster["spec"]


def test_kubernetes_objects_match_the_openapi_schema(
    rendered: tuple[dict[str, Any], list[Any], dict[str, Any]],
) -> None:
    """Each object validates, strictly (no unknown field), against Kubernetes' own schema of that release."""
    _, _, objects = rendered
    assert sorted(objects) == sorted(
        ["Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]
    )
    for obj in objects.values():
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_tf_serving_config_files_parse_as_tf_serving_reads_them(
    rendered: tuple[dict[str, Any], list[Any], dict[str, Any]],
) -> None:
    """Batching parameters, monitoring config and model config parse as their protobuf messages, with the
    values the variables set."""
    overrides, _, objects = rendered
    data = objects["ConfigMap"]["data"]
    batching = parse_batching(data["batching.conf"])
    assert batching.max_batch_size.value == 64
    assert batching.num_batch_threads.value == 4
    assert batching.batch_timeout_micros.value == 2000
    assert list(batching.allowed_batch_sizes) == overrides.get("tf_serving_allowed_batch_sizes", [])
    monitoring = parse_monitoring(data["monitoring.conf"])
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    models = parse_model_config(data["models.conf"]).model_config_list.config
    version = overrides.get("tf_serving_model_version", 3)
    assert [(m.name, m.base_path, list(m.model_version_policy.specific.versions)) for m in models] == [
        ("demo", "/models/demo", [version])
    ]


def test_deployment_serves_the_version_with_no_downtime_rollouts(
    rendered: tuple[dict[str, Any], list[Any], dict[str, Any]],
) -> None:
    """GPU runtime and limits (when on GPU), the S3 copy of the version, the flags, probes and strategy."""
    overrides, _, objects = rendered
    deployment = objects["Deployment"]
    version = overrides.get("tf_serving_model_version", 3)
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    gpu = overrides.get("tf_serving_gpu", True)
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert (pod.get("runtimeClassName") == "nvidia") is gpu
    assert ("nvidia.com/gpu" in server["resources"]["limits"]) is gpu
    assert server["image"] == "docker.io/tensorflow/serving:2.18.0" + ("-gpu" if gpu else "")
    assert {"cpu", "memory"} <= set(server["resources"]["requests"])
    assert pod["initContainers"][0]["command"][-2:] == [f"{MODEL_URL}{version}/", f"/models/demo/{version}/"]
    for flag in ("--enable_batching=true", "--enable_model_warmup=true", "--rest_api_port=8501"):
        assert flag in server["args"]
    files = {arg.split("=", 1)[0]: arg.split("=", 1)[1] for arg in server["args"] if arg.endswith(".conf")}
    mount = next(m["mountPath"] for m in server["volumeMounts"] if m["name"] == "config")
    assert files == {
        "--model_config_file": f"{mount}/models.conf",
        "--batching_parameters_file": f"{mount}/batching.conf",
        "--monitoring_config_file": f"{mount}/monitoring.conf",
    }
    metadata = f"/v1/models/demo/versions/{version}/metadata"
    assert server["readinessProbe"]["httpGet"]["path"] == metadata
    assert server["startupProbe"]["httpGet"]["path"] == metadata
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_service_is_internal_and_limited_and_scaling_follows_the_variables(
    rendered: tuple[dict[str, Any], list[Any], dict[str, Any]],
) -> None:
    """Internal load balancer (unless asked otherwise) open to the VPC only; PDB; HPA min and max."""
    overrides, kops, objects = rendered
    service = objects["Service"]
    annotations = service["metadata"]["annotations"]
    internal = overrides.get("tf_serving_internal", True)
    assert (annotations.get("service.beta.kubernetes.io/aws-load-balancer-internal") == "true") is internal
    vpc = kops[0]["spec"]["networkCIDR"]
    assert service["spec"]["loadBalancerSourceRanges"] == overrides.get("tf_serving_source_ranges", [vpc])
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (
        overrides.get("tf_serving_replicas_min", 1),
        overrides.get("tf_serving_replicas_max", 2),
    )
    assert hpa["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]


@pytest.fixture(scope="module")
def default_kops(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> list[dict[str, Any]]:
    """The kops objects of the default variables."""
    controller = Controller(root=tmp_path_factory.mktemp("defaults-for-mutation"), moto_url=moto_server)
    return render(controller, {})[0]


def _mutate(docs: list[dict[str, Any]], path: str, value: Any) -> list[dict[str, Any]]:
    """A copy of docs with one field set: 'INDEX.a.b' (a list index inside is written as a number)."""
    result = copy.deepcopy(docs)
    keys = path.split(".")
    target: Any = result[int(keys[0])]
    for key in keys[1:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[keys[-1]] = value
    return result


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("2.spec.subnets", ["eu-west-1z"], "is not in the Cluster's spec.subnets"),
        ("2.spec.minSize", 5, "needs 0 <= minSize <= maxSize"),
        ("2.metadata.labels", {}, "kops.k8s.io/cluster"),
        ("0.spec.subnets.0.cidr", "10.0.0.0/19", "outside spec.networkCIDR"),
        ("0.spec.kubernetesVersion", "latest", "is not 1.X.Y"),
        ("0.spec.etcdClusters.0.etcdMembers.0.instanceGroup", "nodes", "not a control-plane group"),
        ("1.spec.role", "Master-ish", "spec.role must be one of"),
        ("0.spec.networking", {"cilium": {}, "calico": {}}, "exactly one of"),
        ("0.spec.externalPolicies", {"node": ["not-an-arn"]}, "is not an IAM policy ARN"),
        ("0.spec.kubernetesAPIAccess", ["0.0.0.0/0"], "unknown field spec.kubernetesAPIAccess"),
    ],
)
def test_kops_checks_reject_what_kops_would(
    default_kops: list[dict[str, Any]], path: str, value: Any, expected: str
) -> None:
    """One wrong field in an otherwise valid spec is reported, named."""
    assert check_objects(default_kops) == []
    errors = check_objects(_mutate(default_kops, path, value))
    assert any(expected in error for error in errors), errors


def test_schema_validation_rejects_wrong_types_and_unknown_fields(tmp_path: Path) -> None:
    """kubernetes-validate does fail: a string where replicas wants an integer, an unknown field."""
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            _mutate([deployment], "0.spec.replicas", "2")[0], KUBERNETES_VERSION, True
        )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            _mutate([deployment], "0.spec.maxUnavailable", 0)[0], KUBERNETES_VERSION, True
        )
