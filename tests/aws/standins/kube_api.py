"""A recording stand-in for the Kubernetes API server, for kubernetes.core modules and the kubernetes client.

Serves the discovery documents (/version, /api, /apis and the resource lists of the groups role tf_serving
uses), and create, get, list, merge-patch, replace and delete of objects, kept in memory. It plays the
controllers whose results the role waits for: a Deployment's rollout completes at once (status, observed
generation, a new revision when the pod template changes, with the templates kept as the rollout history),
and a LoadBalancer Service gets a hostname as AWS' cloud controller gives it (internal-... for an internal
one). Every request is appended as a JSON line to the log file given with --log.

    python -m tests.aws.standins.kube_api --port PORT --log FILE
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import itertools
import json
import re
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

REVISION = "deployment.kubernetes.io/revision"
INTERNAL = "service.beta.kubernetes.io/aws-load-balancer-internal"
LB_DOMAIN = "elb.eu-west-1.amazonaws.com"
# group/version -> plural -> (kind, namespaced)
RESOURCES: dict[str, dict[str, tuple[str, bool]]] = {
    "v1": {
        "namespaces": ("Namespace", False),
        "configmaps": ("ConfigMap", True),
        "services": ("Service", True),
        "pods": ("Pod", True),
        "secrets": ("Secret", True),
    },
    "apps/v1": {"deployments": ("Deployment", True), "replicasets": ("ReplicaSet", True)},
    "policy/v1": {"poddisruptionbudgets": ("PodDisruptionBudget", True)},
    "autoscaling/v2": {"horizontalpodautoscalers": ("HorizontalPodAutoscaler", True)},
    "node.k8s.io/v1": {"runtimeclasses": ("RuntimeClass", False)},
}
PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def status(code: int, reason: str, message: str) -> web.Response:
    """A metav1.Status error response."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body.update(reason=reason, message=message, code=code)
    return web.json_response(body, status=code)


class Cluster:
    """The objects, the request log and the emulated controllers."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.versions = itertools.count(1)

    def record(self, request: web.Request, body: Any) -> None:
        """Append one request to the log."""
        entry = {"method": request.method, "path": request.path, "content_type": request.content_type}
        if request.query_string:
            entry["query"] = request.query_string
        if body is not None:
            entry["body"] = body
        with self.log.open("a") as log:
            log.write(json.dumps(entry) + "\n")

    def settle(
        self,
        group_version: str,
        kind: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        dry_run: bool = False,
    ) -> None:
        """Metadata the API server sets, and what the controllers would do next (not in a dry run)."""
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self.versions))
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["generation"] = 1
        else:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            changed = obj.get("spec") != old.get("spec")
            meta["generation"] = old["metadata"].get("generation", 1) + (1 if changed else 0)
        obj["apiVersion"], obj["kind"] = group_version, kind
        if kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        elif kind == "Deployment" and not dry_run:
            self.roll_out(obj, old)
        elif kind == "Service":
            self.expose(obj)

    def roll_out(self, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Complete the rollout at once; a changed pod template makes a new revision."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        history = self.history.setdefault(key, [])
        annotations = obj["metadata"].setdefault("annotations", {})
        if old is None or old["spec"].get("template") != spec.get("template"):
            history.append(copy.deepcopy(spec.get("template")))
            annotations[REVISION] = str(len(history))
        else:
            annotations[REVISION] = old["metadata"]["annotations"][REVISION]
        replicas = spec["replicas"]
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }

    def expose(self, obj: dict[str, Any]) -> None:
        """A cluster IP, and for a LoadBalancer the hostname AWS' cloud controller would publish."""
        spec = obj.setdefault("spec", {})
        digest = hashlib.sha256(obj["metadata"]["name"].encode()).hexdigest()
        spec.setdefault("clusterIP", f"100.64.{int(digest[:2], 16)}.{int(digest[2:4], 16)}")
        if spec.get("type") == "LoadBalancer":
            internal = (obj["metadata"].get("annotations") or {}).get(INTERNAL) == "true"
            host = f"{'internal-' if internal else ''}a{digest[:16]}-{digest[16:24]}.{LB_DOMAIN}"
            obj["status"] = {"loadBalancer": {"ingress": [{"hostname": host}]}}


def discovery(app: web.Application) -> None:
    """Routes for the discovery documents."""

    def resource_list(group_version: str) -> dict[str, Any]:
        resources = []
        for plural, (kind, namespaced) in RESOURCES[group_version].items():
            resources.append(
                {
                    "name": plural,
                    "singularName": kind.lower(),
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": VERBS,
                }
            )
            if kind in {"Deployment", "Service"}:
                resources.append(
                    {"name": f"{plural}/status", "namespaced": True, "kind": kind, "verbs": VERBS[2:]}
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }

    async def version(_: web.Request) -> web.Response:
        return web.json_response(
            {"major": "1", "minor": "31", "gitVersion": "v1.31.4", "platform": "linux/amd64"}
        )

    async def api(_: web.Request) -> web.Response:
        return web.json_response(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        )

    async def apis(_: web.Request) -> web.Response:
        groups = []
        for group_version in RESOURCES:
            if "/" in group_version:
                group, version = group_version.split("/")
                entry = {"groupVersion": group_version, "version": version}
                groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def core(_: web.Request) -> web.Response:
        return web.json_response(resource_list("v1"))

    async def group(request: web.Request) -> web.Response:
        group_version = f"{request.match_info['group']}/{request.match_info['version']}"
        if group_version not in RESOURCES:
            return status(404, "NotFound", f"no group version {group_version}")
        return web.json_response(resource_list(group_version))

    app.router.add_get("/version", version)
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", core)
    app.router.add_get("/apis/{group}/{version}", group)


async def objects(request: web.Request) -> web.Response:
    """CRUD of the objects of every known resource."""
    cluster: Cluster = request.app["cluster"]
    raw = await request.read()
    body: Any = json.loads(raw) if raw else None
    cluster.record(request, body)
    match = PATH.match(request.path)
    group_version = (match and (match["core"] or f"{match['group']}/{match['version']}")) or ""
    if match is None or match["plural"] not in RESOURCES.get(group_version, {}):
        return status(404, "NotFound", f"the server could not find the requested resource {request.path}")
    kind, namespaced = RESOURCES[group_version][match["plural"]]
    namespace = match["ns"] or ""
    if namespaced and not namespace and request.method != "GET":
        return status(400, "BadRequest", "a namespace is required")
    key_base = (group_version, match["plural"], namespace)
    name = match["name"]
    if name is None:
        if request.method == "POST":
            name = (body.get("metadata") or {}).get("name", "")
            if (*key_base, name) in cluster.objects:
                return status(409, "AlreadyExists", f'{match["plural"]} "{name}" already exists')
            if namespaced and (("v1", "namespaces", "", namespace) not in cluster.objects):
                return status(404, "NotFound", f'namespaces "{namespace}" not found')
            obj: dict[str, Any] = copy.deepcopy(body)
            obj["metadata"]["namespace" if namespaced else "name"] = namespace if namespaced else name
            dry_run = request.query.get("dryRun") == "All"
            cluster.settle(group_version, kind, obj, None, dry_run=dry_run)
            if not dry_run:
                cluster.objects[(*key_base, name)] = obj
            return web.json_response(obj, status=201)
        items = [
            o
            for (gv, plural, ns, _), o in sorted(cluster.objects.items())
            if (gv, plural) == key_base[:2] and (not namespace or ns == namespace)
        ]
        return web.json_response(
            {
                "kind": f"{kind}List",
                "apiVersion": group_version,
                "items": items,
                "metadata": {"resourceVersion": str(next(cluster.versions))},
            }
        )
    key = (*key_base, name)
    old = cluster.objects.get(key)
    if old is None:
        return status(404, "NotFound", f'{match["plural"]} "{name}" not found')
    if request.method == "GET":
        return web.json_response(old)
    if request.method == "DELETE":
        del cluster.objects[key]
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})
    if request.method == "PATCH":
        if request.content_type != "application/merge-patch+json":
            return status(
                415, "UnsupportedMediaType", f"the stand-in takes merge patches, not {request.content_type}"
            )
        obj = merge_patch(old, body)
    elif request.method == "PUT":
        obj = copy.deepcopy(body)
    else:
        return status(405, "MethodNotAllowed", request.method)
    obj.pop("status", None)
    if old.get("status") is not None:
        obj["status"] = copy.deepcopy(old["status"])
    if obj == old:
        # As the API server does, a write that changes nothing leaves the object, its version included, as is.
        return web.json_response(old)
    if request.query.get("dryRun") == "All":
        # Server-side dry run (check mode): the result of the write, which is not kept.
        cluster.settle(group_version, kind, obj, copy.deepcopy(old), dry_run=True)
        return web.json_response(obj)
    cluster.settle(group_version, kind, obj, old)
    cluster.objects[key] = obj
    return web.json_response(obj)


def build_app(log: Path) -> web.Application:
    """The stand-in API server as an aiohttp application."""
    app = web.Application()
    app["cluster"] = Cluster(log)
    discovery(app)
    app.router.add_route("*", "/{tail:.*}", objects)
    return app


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (required)")
    parser.add_argument(
        "--log", type=Path, required=True, help="file the requests are appended to (required)"
    )
    args = parser.parse_args()
    web.run_app(build_app(args.log), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
