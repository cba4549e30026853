"""Check kops objects (kops.k8s.io/v1alpha2 Cluster and InstanceGroup) for the fields kops requires.

kops validates its objects when `kops replace` reads them and again when `kops update cluster` builds the
cloud; no kops binary runs here, so this module checks what those steps reject: the kind and API version,
names, the fields each object must have and their types, CIDRs, sizes, and the references between objects
(instance groups to the cluster and its subnets, etcd members to control-plane groups). Unknown fields are
reported too, as `kops replace` rejects them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

API_VERSION = "kops.k8s.io/v1alpha2"
CLUSTER_LABEL = "kops.k8s.io/cluster"
DNS_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
K8S_VERSION = re.compile(r"^v?1\.[0-9]+\.[0-9]+$")
AWS_ZONE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$")
MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[0-9a-z]+$")
TAINT = re.compile(r"^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$")
IAM_POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$")
# AWS instance families with NVIDIA GPUs (kops installs the driver on these when containerd.nvidiaGPU is on).
GPU_FAMILIES = ("p2", "p3", "p3dn", "p4d", "p4de", "p5", "g3", "g3s", "g4dn", "g5", "g6", "g6e", "gr6")

# ClusterSpec and InstanceGroupSpec fields of v1alpha2 this project may write (a subset of kops' own).
CLUSTER_SPEC_FIELDS = {
    "api",
    "authorization",
    "channel",
    "cloudProvider",
    "cloudLabels",
    "clusterAutoscaler",
    "configBase",
    "containerd",
    "dnsZone",
    "etcdClusters",
    "externalPolicies",
    "iam",
    "kubelet",
    "kubernetesApiAccess",
    "kubernetesVersion",
    "networkCIDR",
    "networkID",
    "networking",
    "nonMasqueradeCIDR",
    "sshAccess",
    "sshKeyName",
    "subnets",
    "topology",
    "additionalPolicies",
    "kubeProxy",
    "masterPublicName",
}
IG_SPEC_FIELDS = {
    "role",
    "image",
    "machineType",
    "minSize",
    "maxSize",
    "autoscale",
    "nodeLabels",
    "taints",
    "subnets",
    "cloudLabels",
    "rootVolumeSize",
    "rootVolumeType",
    "mixedInstancesPolicy",
    "maxPrice",
}
IG_ROLES = {"ControlPlane", "Master", "Node", "Bastion", "APIServer"}
SUBNET_TYPES = {"Public", "Private", "Utility"}
NETWORKING_PROVIDERS = {"cilium", "calico", "kubenet", "amazonvpc", "flannel", "kindnet", "cni", "external"}
POLICY_ROLES = {"node", "control-plane", "master", "bastion"}


def _cidr(value: Any, where: str, errors: list[str]) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """Parse a CIDR, noting an error naming `where` when it is not one."""
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        errors.append(f"{where}: {value!r} is not a CIDR (address/prefix, host bits zero)")
        return None


def _int(value: Any, where: str, errors: list[str]) -> int | None:
    """Return value when it is an integer (not a bool or a string), else note an error."""
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{where}: expected an integer, got {value!r}")
        return None
    return value


def _meta(doc: dict[str, Any], errors: list[str]) -> str:
    """Check apiVersion and metadata.name of any kops object; return its name for messages."""
    name = str((doc.get("metadata") or {}).get("name") or "")
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION:
        errors.append(f"{kind} {name!r}: apiVersion must be {API_VERSION}, got {doc.get('apiVersion')!r}")
    if not DNS_NAME.match(name):
        errors.append(f"{kind}: metadata.name {name!r} is not a DNS name")
    if not isinstance(doc.get("spec"), dict):
        errors.append(f"{kind} {name!r}: spec is missing")
    return name


def check_cluster(doc: dict[str, Any], errors: list[str]) -> None:
    """Check one Cluster object on its own."""
    name = _meta(doc, errors)
    spec = doc.get("spec") or {}
    where = f"Cluster {name}"
    for field in sorted(set(spec) - CLUSTER_SPEC_FIELDS):
        errors.append(f"{where}: unknown field spec.{field}")
    for field in ("cloudProvider", "configBase", "kubernetesVersion", "networkCIDR", "networking", "subnets"):
        if field not in spec:
            errors.append(f"{where}: spec.{field} is required")
    if spec.get("cloudProvider", "aws") != "aws":
        errors.append(f"{where}: spec.cloudProvider must be aws, got {spec.get('cloudProvider')!r}")
    if not str(spec.get("configBase", "s3://")).startswith("s3://"):
        errors.append(f"{where}: spec.configBase must be an s3:// URL, got {spec.get('configBase')!r}")
    if str(spec.get("configBase", "")).rstrip("/").split("/")[-1] != name:
        errors.append(
            f"{where}: spec.configBase must end with the cluster name, got {spec.get('configBase')!r}"
        )
    if not K8S_VERSION.match(str(spec.get("kubernetesVersion", "1.0.0"))):
        errors.append(f"{where}: spec.kubernetesVersion {spec.get('kubernetesVersion')!r} is not 1.X.Y")
    network = _cidr(spec.get("networkCIDR", "0.0.0.0/0"), f"{where}: spec.networkCIDR", errors)
    _cidr(spec.get("nonMasqueradeCIDR", "100.64.0.0/10"), f"{where}: spec.nonMasqueradeCIDR", errors)
    providers = set(spec.get("networking") or {})
    if len(providers) != 1 or not providers <= NETWORKING_PROVIDERS:
        errors.append(
            f"{where}: spec.networking needs exactly one of {sorted(NETWORKING_PROVIDERS)}, got {sorted(providers)}"
        )
    for field in ("kubernetesApiAccess", "sshAccess"):
        values = spec.get(field) or []
        if not values:
            errors.append(f"{where}: spec.{field} must list at least one CIDR")
        for value in values:
            _cidr(value, f"{where}: spec.{field}", errors)
    _check_subnets(spec, network, where, errors)
    _check_topology(spec, name, where, errors)
    gpu = (spec.get("containerd") or {}).get("nvidiaGPU")
    if gpu is not None and not isinstance(gpu.get("enabled"), bool):
        errors.append(
            f"{where}: spec.containerd.nvidiaGPU.enabled must be true or false, got {gpu.get('enabled')!r}"
        )
    for role, arns in (spec.get("externalPolicies") or {}).items():
        if role not in POLICY_ROLES:
            errors.append(
                f"{where}: spec.externalPolicies.{role}: role must be one of {sorted(POLICY_ROLES)}"
            )
        for arn in arns or []:
            if not IAM_POLICY_ARN.match(str(arn)):
                errors.append(f"{where}: spec.externalPolicies.{role}: {arn!r} is not an IAM policy ARN")
    etcd_names = [cluster.get("name") for cluster in spec.get("etcdClusters") or []]
    if sorted(etcd_names) != ["events", "main"]:
        errors.append(f"{where}: spec.etcdClusters must be main and events, got {etcd_names}")


def _check_subnets(spec: dict[str, Any], network: Any, where: str, errors: list[str]) -> None:
    """Subnets: named, typed, inside the VPC CIDR, not overlapping one another."""
    seen: list[Any] = []
    names: set[str] = set()
    for index, subnet in enumerate(spec.get("subnets") or []):
        at = f"{where}: spec.subnets[{index}]"
        for field in ("name", "zone", "type"):
            if not subnet.get(field):
                errors.append(f"{at}.{field} is required")
        if subnet.get("name") in names:
            errors.append(f"{at}: duplicate subnet name {subnet.get('name')!r}")
        names.add(subnet.get("name"))
        if subnet.get("type") not in SUBNET_TYPES:
            errors.append(f"{at}.type must be one of {sorted(SUBNET_TYPES)}, got {subnet.get('type')!r}")
        if not AWS_ZONE.match(str(subnet.get("zone", ""))):
            errors.append(f"{at}.zone {subnet.get('zone')!r} is not an AWS availability zone")
        if "cidr" not in subnet and "id" not in subnet:
            errors.append(f"{at}: needs a cidr (or the id of an existing subnet)")
            continue
        if "cidr" in subnet:
            cidr = _cidr(subnet["cidr"], f"{at}.cidr", errors)
            if cidr is None:
                continue
            if network is not None and not cidr.subnet_of(network):
                errors.append(f"{at}.cidr {cidr} is outside spec.networkCIDR {network}")
            for other in seen:
                if cidr.overlaps(other):
                    errors.append(f"{at}.cidr {cidr} overlaps {other}")
            seen.append(cidr)


def _check_topology(spec: dict[str, Any], name: str, where: str, errors: list[str]) -> None:
    """Topology and DNS: private nodes need utility subnets; a DNS cluster's name lies in its zone."""
    topology = spec.get("topology") or {}
    types = {subnet.get("type") for subnet in spec.get("subnets") or []}
    for field in ("masters", "nodes"):
        value = topology.get(field, "public")
        if value not in {"public", "private"}:
            errors.append(f"{where}: spec.topology.{field} must be public or private, got {value!r}")
        wanted = "Private" if value == "private" else "Public"
        if wanted not in types:
            errors.append(f"{where}: spec.topology.{field} is {value} but no subnet is of type {wanted}")
    if "private" in {topology.get("masters"), topology.get("nodes")} and "Utility" not in types:
        errors.append(f"{where}: a private topology needs Utility subnets for the load balancers")
    dns_type = (topology.get("dns") or {}).get("type", "Public")
    if dns_type not in {"Public", "Private", "None"}:
        errors.append(f"{where}: spec.topology.dns.type must be Public, Private or None, got {dns_type!r}")
    if not name.endswith(".k8s.local"):
        zone = str(spec.get("dnsZone") or "")
        if not zone:
            errors.append(f"{where}: a cluster not named *.k8s.local (gossip) needs spec.dnsZone")
        elif not name.endswith("." + zone):
            errors.append(f"{where}: the name is not inside spec.dnsZone {zone!r}")


def check_instance_group(doc: dict[str, Any], cluster: dict[str, Any], errors: list[str]) -> None:
    """Check one InstanceGroup against its Cluster."""
    name = _meta(doc, errors)
    spec = doc.get("spec") or {}
    where = f"InstanceGroup {name}"
    cluster_name = (cluster.get("metadata") or {}).get("name")
    label = ((doc.get("metadata") or {}).get("labels") or {}).get(CLUSTER_LABEL)
    if label != cluster_name:
        errors.append(f"{where}: metadata.labels[{CLUSTER_LABEL}] must be {cluster_name!r}, got {label!r}")
    for field in sorted(set(spec) - IG_SPEC_FIELDS):
        errors.append(f"{where}: unknown field spec.{field}")
    if spec.get("role") not in IG_ROLES:
        errors.append(f"{where}: spec.role must be one of {sorted(IG_ROLES)}, got {spec.get('role')!r}")
    if not MACHINE_TYPE.match(str(spec.get("machineType", ""))):
        errors.append(f"{where}: spec.machineType {spec.get('machineType')!r} is not an instance type")
    low = _int(spec.get("minSize"), f"{where}: spec.minSize", errors)
    high = _int(spec.get("maxSize"), f"{where}: spec.maxSize", errors)
    if low is not None and high is not None and not 0 <= low <= high:
        errors.append(f"{where}: needs 0 <= minSize <= maxSize, got {low} and {high}")
    known = {subnet.get("name") for subnet in (cluster.get("spec") or {}).get("subnets") or []}
    subnets = spec.get("subnets") or []
    if not subnets:
        errors.append(f"{where}: spec.subnets must name at least one subnet")
    for subnet in subnets:
        if subnet not in known:
            errors.append(f"{where}: subnet {subnet!r} is not in the Cluster's spec.subnets {sorted(known)}")
    for key, value in (spec.get("nodeLabels") or {}).items():
        if not isinstance(value, str):
            errors.append(f"{where}: spec.nodeLabels[{key}] must be a string, got {value!r}")
    for taint in spec.get("taints") or []:
        if not TAINT.match(str(taint)):
            errors.append(f"{where}: taint {taint!r} is not KEY[=VALUE]:EFFECT")


def check_objects(docs: list[dict[str, Any]]) -> list[str]:
    """Every error in one cluster's set of objects (one Cluster, its instance groups); [] when valid."""
    errors: list[str] = []
    clusters = [doc for doc in docs if doc.get("kind") == "Cluster"]
    groups = [doc for doc in docs if doc.get("kind") == "InstanceGroup"]
    for doc in docs:
        if doc.get("kind") not in {"Cluster", "InstanceGroup"}:
            errors.append(
                f"unexpected kind {doc.get('kind')!r}: kops takes Cluster and InstanceGroup objects"
            )
    if len(clusters) != 1:
        return [*errors, f"expected one Cluster, found {len(clusters)}"]
    cluster = clusters[0]
    check_cluster(cluster, errors)
    names = [(doc.get("metadata") or {}).get("name") for doc in groups]
    if len(names) != len(set(names)):
        errors.append(f"instance group names repeat: {names}")
    for doc in groups:
        check_instance_group(doc, cluster, errors)
    control_planes = {
        str((doc.get("metadata") or {}).get("name"))
        for doc in groups
        if (doc.get("spec") or {}).get("role") in {"ControlPlane", "Master"}
    }
    if not control_planes:
        errors.append("no instance group has role ControlPlane")
    for etcd in (cluster.get("spec") or {}).get("etcdClusters") or []:
        for member in etcd.get("etcdMembers") or []:
            if member.get("instanceGroup") not in control_planes:
                errors.append(
                    f"etcd cluster {etcd.get('name')}: member {member.get('name')} is on "
                    f"{member.get('instanceGroup')!r}, not a control-plane group {sorted(control_planes)}"
                )
    gpu = ((cluster.get("spec") or {}).get("containerd") or {}).get("nvidiaGPU") or {}
    if gpu.get("enabled"):
        families = [str((doc.get("spec") or {}).get("machineType", "")).split(".")[0] for doc in groups]
        if not any(family in GPU_FAMILIES for family in families):
            errors.append(f"containerd.nvidiaGPU is enabled but no instance group has a GPU type: {families}")
    return errors
