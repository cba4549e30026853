"""The versions of one model under its base path, and their lifecycle, as TF Serving manages them.

Versions are the numeric subdirectories of the base path; anything else (the exporter's hidden
.export-* staging directories, notes, plots) is ignored. Like TF Serving's default "latest" version
policy, the highest version is the one wanted: a poll thread checks the base path every poll_seconds
and loads a new highest version while the current one keeps serving, then unloads the old one.
A version that fails to load ends in state END with its error, and the version before it keeps
serving. Each version's state (START, LOADING, AVAILABLE, UNLOADING, END) is what /v1/models/NAME
reports.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgsieve.serve.servable import Servable
from imgsieve.serve.status import OK, ServingError, from_exception, not_found

START = "START"
LOADING = "LOADING"
AVAILABLE = "AVAILABLE"
UNLOADING = "UNLOADING"
END = "END"
VERSION_DIR = re.compile(r"^[0-9]+$")
STOP_TIMEOUT_SECONDS = 30.0

log = logging.getLogger(__name__)

Loader = Callable[[str, int, Path], Servable]


@dataclass
class VersionStatus:
    """One version's place in its lifecycle, and the error that ended it if any."""

    version: int
    state: str
    error_code: str = OK
    error_message: str = ""

    def to_json(self) -> dict[str, Any]:
        """This status as a ModelVersionStatus in TF Serving's JSON."""
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


class ModelRegistry:
    """Loads, serves and retires the versions of one model found under base_path."""

    def __init__(
        self, name: str, base_path: Path, poll_seconds: float, loader: Loader = Servable.load
    ) -> None:
        self.name = name
        self.base_path = base_path
        self.poll_seconds = poll_seconds
        self._loader = loader
        self._lock = threading.Lock()
        self._statuses: dict[int, VersionStatus] = {}
        self._servables: dict[int, Servable] = {}
        self._failed: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_missing = False

    def versions_on_disk(self) -> list[int]:
        """The version numbers under the base path, lowest first."""
        try:
            entries = list(self.base_path.iterdir())
        except OSError as exc:
            if not self._warned_missing:
                log.warning(
                    "no versions of model %s: cannot list %s (%s)", self.name, self.base_path, exc.strerror
                )
                self._warned_missing = True
            return []
        self._warned_missing = False
        return sorted(
            int(entry.name) for entry in entries if VERSION_DIR.match(entry.name) and entry.is_dir()
        )

    def poll_once(self) -> None:
        """Bring the loaded versions in line with the disk: load the highest version, retire the rest."""
        on_disk = self.versions_on_disk()
        wanted = on_disk[-1] if on_disk else None
        with self._lock:
            loaded = set(self._servables)
        if wanted is not None and wanted not in loaded and wanted not in self._failed:
            self._load(wanted)
        elif wanted is None and loaded:
            log.warning("no versions of model %s left under %s; unloading", self.name, self.base_path)
            self._unload_all_but(None)

    def start_polling(self) -> None:
        """Poll the base path in a background thread until stop() is called."""
        self._thread = threading.Thread(target=self._poll_forever, name=f"poll-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (a load under way finishes first, up to a timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)

    def latest_version(self) -> int | None:
        """The version that requests without a version go to, or None before one is available."""
        with self._lock:
            return max(self._servables, default=None)

    def servable(self, name: str, version: int | None) -> Servable:
        """The loaded servable for a request's model name and optional version."""
        with self._lock:
            if name == self.name:
                wanted = max(self._servables, default=None) if version is None else version
                if wanted in self._servables:
                    return self._servables[wanted]
        if version is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        raise not_found(f"Servable not found for request: Specific({name}, {version})")

    def status(self, name: str, version: int | None) -> list[dict[str, Any]]:
        """The model_version_status list for a model name and optional version, newest first."""
        with self._lock:
            if name != self.name or not self._statuses:
                raise not_found(f"Could not find any versions of model {name}")
            if version is None:
                return [self._statuses[v].to_json() for v in sorted(self._statuses, reverse=True)]
            if version not in self._statuses:
                raise not_found(f"Could not find version {version} of model {name}")
            return [self._statuses[version].to_json()]

    def _poll_forever(self) -> None:
        """The poll thread's loop."""
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # a bad poll must not end polling for good
                log.exception("polling %s for new versions of model %s failed", self.base_path, self.name)

    def _set_state(self, version: int, state: str, error: ServingError | None = None) -> None:
        """Record a version's new state (and its error, if it failed)."""
        with self._lock:
            if error is None:
                self._statuses[version] = VersionStatus(version, state)
            else:
                self._statuses[version] = VersionStatus(version, state, error.code, error.message)

    def _load(self, version: int) -> None:
        """Load one version; once it is available, retire every other version."""
        path = self.base_path / str(version)
        self._set_state(version, START)
        self._set_state(version, LOADING)
        log.info("loading model %s version %d from %s", self.name, version, path)
        try:
            servable = self._loader(self.name, version, path)
        except Exception as exc:
            error = from_exception(exc)
            self._failed.add(version)
            self._set_state(version, END, error)
            serving = self.latest_version()
            still = f"version {serving} keeps serving" if serving is not None else "no version is serving"
            log.error(
                "model %s version %d failed to load (%s: %s); %s",
                self.name,
                version,
                error.code,
                error.message,
                still,
            )
            return
        with self._lock:
            self._servables[version] = servable
            self._statuses[version] = VersionStatus(version, AVAILABLE)
        log.info(
            "model %s version %d is AVAILABLE (loaded in %.1f s)", self.name, version, servable.load_seconds
        )
        self._unload_all_but(version)

    def _unload_all_but(self, keep: int | None) -> None:
        """Retire every loaded version except keep; requests already holding one finish on it."""
        with self._lock:
            retiring = [version for version in self._servables if version != keep]
        for version in retiring:
            self._set_state(version, UNLOADING)
            with self._lock:
                del self._servables[version]
            self._set_state(version, END)
            log.info("model %s version %d unloaded", self.name, version)
