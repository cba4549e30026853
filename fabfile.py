"""Day-2 operations on the deployed imgsieve hosts: `fab --list`, `fab --help TASK`.

Hosts come from the Ansible inventory (IMGSIEVE_INVENTORY and IMGSIEVE_EXTRA_VARS pass -i and -e, as
for ansible-playbook); the work is done in imgsieve.ops. Run fab from the repository root.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fabric import task  # type: ignore[import-untyped]
from invoke.exceptions import Exit

from imgsieve import ops
from imgsieve.errors import UserError


def readable_errors(body: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into fab's error exit with its message instead of a traceback."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except UserError as exc:
            raise Exit(f"fab {body.__name__}: error: {exc}", code=1) from None

    return run


@task
@readable_errors
def status(c: Any) -> None:
    """Show every host's imgsieve services and the progress of running jobs."""
    print(ops.status(ops.Fleet.from_inventory()))


@task(
    help={
        "group": "inventory group",
        "unit": "unit or pattern (default: the group's service)",
        "lines": "journal lines to show first",
        "follow": "keep printing new lines (--no-follow: print and return)",
    }
)
@readable_errors
def logs(c: Any, group: str = "consumers", unit: str = "", lines: int = 20, follow: bool = True) -> None:
    """Follow a service's journal on every host of a group."""
    ops.logs(ops.Fleet.from_inventory(), group, unit or None, lines, follow)


@task(help={"timeout": "seconds each host's consumers may take to be active again"})
@readable_errors
def restart(c: Any, timeout: int = 60) -> None:
    """Restart the consumers, one host at a time, waiting for each to be active."""
    print("\n".join(ops.restart_consumers(ops.Fleet.from_inventory(), timeout)))


@task(help={"workers": "consumer processes per consumer host"})
@readable_errors
def scale(c: Any, workers: str) -> None:
    """Run N consumer instances per host (role consumer with consumer_workers=N)."""
    ops.scale_consumers(workers)


@task(help={"image": "an image file on this machine"})
@readable_errors
def predict(c: Any, image: str) -> None:
    """Classify one image with the model server; print its class and scores."""
    print(ops.predict(ops.Fleet.from_inventory(), Path(image)))


@task(help={"job": "the job's name"})
@readable_errors
def progress(c: Any, job: str) -> None:
    """Show whether a job runs and its figures so far."""
    print(ops.progress(ops.Fleet.from_inventory(), job))
