"""A private MariaDB server for tests: its own datadir, socket and port on 127.0.0.1, started in about a
second, restartable in place (same port, same data) and shut down cleanly.

It runs the Debian `mariadb-server` binaries (installed by scripts/setup.sh). Two accounts are made: an
admin with every privilege, and `imgsieve` with every privilege on databases named test_*, which is the
account the code under test uses.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from tests.conftest import free_port

SERVER = "mariadbd"
INSTALL_DB = "mariadb-install-db"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
BIND_ATTEMPTS = 3
# Small redo log and buffer pool: tests hold a few thousand rows, and the 2-core machine is shared.
SERVER_OPTIONS = (
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--innodb-log-file-size=16M",
    "--innodb-buffer-pool-size=64M",
    "--max-connections=100",
)


@dataclass
class MariaDB:
    """One private server: where it listens, its accounts, and how to start, stop and restart it."""

    base: Path
    port: int = 0
    host: str = "127.0.0.1"
    admin_user: str = "admin"
    admin_password: str = field(default_factory=lambda: secrets.token_hex(12))
    user: str = "imgsieve"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    options: tuple[str, ...] = ()  # more server options, e.g. TLS settings
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def datadir(self) -> Path:
        """The server's data directory."""
        return self.base / "data"

    @property
    def socket(self) -> Path:
        """The server's unix socket."""
        return self.base / "sock"

    @property
    def error_log(self) -> Path:
        """The server's error log, quoted when it fails to start."""
        return self.base / "error.log"

    def install(self) -> None:
        """Create the datadir and the system tables (root may log in over the socket without a password)."""
        for tool in (SERVER, INSTALL_DB):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed; run `make setup` (apt package mariadb-server)")
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise RuntimeError(f"socket path {self.socket} is too long for a unix socket; use a shorter base")
        result = subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--user=root",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-log-file-size=16M",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{INSTALL_DB} failed ({result.returncode}):\n{result.stderr[-3000:]}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections; pick a free port on the first start."""
        for attempt in range(BIND_ATTEMPTS):
            first_start = self.port == 0 or attempt > 0
            if first_start:
                self.port = free_port()
            self.error_log.unlink(missing_ok=True)
            self.process = subprocess.Popen(
                [
                    SERVER,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--port={self.port}",
                    f"--socket={self.socket}",
                    f"--pid-file={self.base / 'mariadbd.pid'}",
                    f"--log-error={self.error_log}",
                    "--user=root",
                    *SERVER_OPTIONS,
                    *self.options,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_until_ready():
                return
            log_text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
            if "Bind on TCP/IP port" not in log_text or not first_start:
                raise RuntimeError(f"MariaDB did not start on port {self.port}; its log:\n{log_text[-3000:]}")
        raise RuntimeError(f"MariaDB found no free port in {BIND_ATTEMPTS} attempts")

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM) and wait for it to exit."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise RuntimeError(
                    f"MariaDB did not shut down within {STOP_TIMEOUT_S:.0f} s; killed"
                ) from None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def create_accounts(self) -> None:
        """Create the admin account and the test account `imgsieve` (all on test_* databases)."""
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                for user, password in ((self.admin_user, self.admin_password), (self.user, self.password)):
                    cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, self.host, password))
                cursor.execute("GRANT ALL ON *.* TO %s@%s WITH GRANT OPTION", (self.admin_user, self.host))
                cursor.execute("GRANT ALL ON `test\\_%%`.* TO %s@%s", (self.user, self.host))
        finally:
            conn.close()

    def admin_connect(
        self, database: str | None = None, **options: Any
    ) -> pymysql.connections.Connection[Any]:
        """A connection as the admin over TCP (autocommit)."""
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.admin_user,
            password=self.admin_password,
            database=database,
            autocommit=True,
            **options,
        )

    def create_database(self, prefix: str = "test") -> str:
        """Create a fresh empty database with the server's default character set and return its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        conn = self.admin_connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}`")
        finally:
            conn.close()
        return name

    def url(self, database: str, user: str | None = None) -> str:
        """The store URL of database for user (the test account by default), without a password."""
        return f"mysql://{user or self.user}@{self.host}:{self.port}/{database}"

    def new_database_url(self) -> str:
        """A fresh empty test_* database and its URL for the test account."""
        return self.url(self.create_database())

    def _wait_until_ready(self) -> bool:
        """Poll the socket until the server answers; False if the process exits or time runs out."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=1).close()
                return True
            except pymysql.err.OperationalError:
                time.sleep(0.05)
        self.stop()
        return False


def start_private_server(base: Path, options: tuple[str, ...] = ()) -> MariaDB:
    """Install, start and set up a private server under base, with more server options if given."""
    server = MariaDB(base, options=options)
    server.install()
    server.start()
    try:
        server.create_accounts()
    except BaseException:
        server.stop()
        raise
    return server
