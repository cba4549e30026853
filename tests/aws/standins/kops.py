"""A recording stand-in for the kops command: run as `kops ARGS...` through a wrapper on PATH.

Appends each call (argv, KOPS_STATE_STORE, AWS_REGION) as a JSON line to $KOPS_STANDIN_DIR/calls.jsonl and
keeps the clusters it was given under $KOPS_STANDIN_DIR/state/, so a second run of a playbook meets the state
the first left, as with a real state store. It answers the subcommands role kops_cluster uses the way kops
does: `get cluster` fails with "not found" for an unknown cluster, `replace -f --force` stores the objects
(after checking them as kops would, see tests/aws/kops_objects.py), `update cluster` previews or applies,
`validate cluster` succeeds once applied, `export kubecfg` writes a kubeconfig for $KOPS_STANDIN_API_SERVER,
`delete cluster --yes` forgets the cluster.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from tests.aws.kops_objects import check_objects

NOT_FOUND = 1


def option(argv: list[str], *names: str) -> str | None:
    """The value of --name VALUE or --name=VALUE (or a short alias) in argv, if given."""
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def cluster_dir(root: Path, name: str) -> Path:
    """Where the stand-in keeps one cluster's spec and whether it was applied."""
    return root / "state" / name


def fail(message: str, code: int = 1) -> int:
    """Print to stderr as kops does, and return the exit code."""
    print(f"Error: {message}", file=sys.stderr)
    return code


def replace(root: Path, argv: list[str]) -> int:
    """`kops replace -f FILE --force`: check the objects and store them; --force creates missing ones."""
    path = option(argv, "-f", "--filename")
    if path is None:
        return fail("-f is required")
    docs: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]
    errors = check_objects(docs)
    if errors:
        return fail("invalid objects:\n  " + "\n  ".join(errors))
    cluster = next(doc for doc in docs if doc["kind"] == "Cluster")
    name = cluster["metadata"]["name"]
    store = os.environ.get("KOPS_STATE_STORE", "")
    if not store or not cluster["spec"]["configBase"].startswith(store.rstrip("/") + "/"):
        return fail(f"configBase {cluster['spec']['configBase']} is not in KOPS_STATE_STORE {store!r}")
    here = cluster_dir(root, name)
    if not here.exists() and "--force" not in argv:
        return fail(f'cluster "{name}" not found: use --force to create it')
    here.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_dump_all(docs, sort_keys=True)
    (here / "spec.yaml").write_text(spec)
    return 0


def update(root: Path, name: str, argv: list[str]) -> int:
    """`kops update cluster`: list pending changes (none once applied); with --yes apply them."""
    here = cluster_dir(root, name)
    if not (here / "spec.yaml").exists():
        return fail(f'cluster "{name}" not found')
    spec = (here / "spec.yaml").read_text()
    applied = here / "applied.yaml"
    pending = not applied.exists() or applied.read_text() != spec
    if "--yes" in argv:
        applied.write_text(spec)
        print("Cluster changes have been applied to the cloud.")
    elif pending:
        print("Will create resources:\n  (the stand-in does not list them)\n")
        print("Must specify --yes to apply changes")
    else:
        print("No changes need to be applied")
    return 0


def export_kubecfg(name: str, argv: list[str]) -> int:
    """`kops export kubecfg --admin --kubeconfig PATH`: a kubeconfig pointing at the stand-in API server."""
    path = option(argv, "--kubeconfig") or os.environ.get("KUBECONFIG")
    if path is None:
        return fail("no --kubeconfig and no KUBECONFIG")
    server = os.environ.get("KOPS_STANDIN_API_SERVER", f"https://api.{name}")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": "standin-admin-token"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    Path(path).write_text(yaml.safe_dump(config))
    print(f"kOps has set your kubectl context to {name}")
    return 0


def main(argv: list[str]) -> int:
    """Record the call, then answer it."""
    root = Path(os.environ["KOPS_STANDIN_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    record = {
        "argv": argv,
        "KOPS_STATE_STORE": os.environ.get("KOPS_STATE_STORE"),
        "AWS_REGION": os.environ.get("AWS_REGION"),
    }
    with (root / "calls.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")
    if argv[:1] == ["version"]:
        print("Client version: 1.31.0 (stand-in)")
        return 0
    if argv[:1] == ["replace"]:
        return replace(root, argv)
    if argv[:2] == ["export", "kubecfg"]:
        name = option(argv, "--name")
        if name is None or not (cluster_dir(root, name) / "spec.yaml").exists():
            return fail(f'cluster not found "{name}"')
        return export_kubecfg(name, argv)
    if len(argv) < 2 or argv[1] != "cluster":
        return fail(f"the stand-in does not know `kops {' '.join(argv)}`")
    name = option(argv, "--name") or (argv[2] if len(argv) > 2 and not argv[2].startswith("-") else None)
    if name is None:
        return fail("--name is required")
    here = cluster_dir(root, name)
    verb = argv[0]
    if verb == "get":
        if not (here / "spec.yaml").exists():
            return fail(f'cluster not found "{name}"', NOT_FOUND)
        print((here / "spec.yaml").read_text())
        return 0
    if verb == "update":
        return update(root, name, argv)
    if verb == "validate":
        if not (here / "applied.yaml").exists():
            return fail(f"cannot validate {name}: it was never applied (kops update cluster --yes)")
        print(f"Your cluster {name} is ready")
        return 0
    if verb == "delete" and "--yes" in argv:
        for child in sorted(here.glob("*")):
            child.unlink()
        here.rmdir()
        print(f"Deleted cluster: {name!r}")
        return 0
    return fail(f"the stand-in does not know `kops {' '.join(argv)}`")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
