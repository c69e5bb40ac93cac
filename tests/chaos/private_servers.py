"""Private Postgres and Redis servers on free loopback ports, for the tests that stop and start them.

The shared servers that `make test` and the other sessions use (127.0.0.1:5432 and :6379) are never
stopped: a test that needs an outage starts its own cluster (`initdb`, `pg_ctl`) and its own
`redis-server` child, and stops only those. This is the only test module that runs server
lifecycle commands (tests/test_shared_servers.py fails if another one does).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

# initdb and pg_ctl refuse to run as root: as root they run as this account, which owns the cluster.
POSTGRES_ACCOUNT = "postgres"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def postgres_bin(name: str) -> str:
    """A Postgres server program: from PATH, else the newest Debian/Ubuntu install."""
    found = shutil.which(name)
    if found:
        return found
    installs = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=_version)
    if not installs:
        raise FileNotFoundError(f"{name} not found: install the PostgreSQL server package")
    return str(installs[-1])


def _version(program: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin/<program>: 9.6 < 15 < 16
    return tuple(int(part) for part in program.parts[-3].split(".") if part.isdigit())


class PrivatePostgres:
    """A throw-away Postgres cluster (trust auth, user postgres) listening on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.port = free_port()
        self._user = _cluster_user()
        # Not in pytest's folders: they are private to the current user, which the cluster's owner may not be.
        self.folder = Path(tempfile.mkdtemp(prefix="modelpress-pg-", dir=_reachable_temp()))
        self.data, self.log = self.folder / "data", self.folder / "server.log"
        if self._user is not None:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync")  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",  # TCP only: nothing lands in the shared socket folder
            "fsync": "off",  # a test cluster: speed over durability
            "max_connections": "100",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def dsn(self, database: str = "postgres") -> str:
        """The libpq URL of one of its databases."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one of its databases."""
        return self.dsn(database).replace("postgresql://", "postgresql+psycopg://", 1)

    def up(self) -> bool:
        """Whether the server accepts connections."""
        return accepts(self.port)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(
            postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"
        )
        _wait(self.up, "the private Postgres to start")

    def stop(self) -> None:
        """Stop the server (fast mode: open sessions are terminated)."""
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        _wait(lambda: not self.up(), "the private Postgres to stop")

    def create_database(self, name: str) -> None:
        """Create an empty database."""
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        if (self.data / "postmaster.pid").exists():
            self._run(
                postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False
            )
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, *command: str, check: bool = True) -> None:
        user = self._user
        done = subprocess.run(
            command,
            cwd=self.folder,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


class PrivateRedis:
    """A `redis-server` child process on 127.0.0.1 that keeps nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="modelpress-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: int = 0) -> str:
        """The redis:// URL of one of its databases."""
        return f"redis://127.0.0.1:{self.port}/{database}"

    def up(self) -> bool:
        """Whether the server answers PING."""
        ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "ping"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        return ping.stdout.strip() == "PONG"

    def start(self) -> None:
        """Start the server as this process's child and wait until it answers."""
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                   "--appendonly", "no", "--dir", str(self.folder),
                   "--logfile", str(self.folder / "server.log")]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self.up, "the private Redis to start", alive=self.process)

    def stop(self) -> None:
        """SHUTDOWN NOSAVE: every queued message is lost, as when a Redis without persistence restarts."""
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "SHUTDOWN", "NOSAVE"],
                       capture_output=True, check=False)  # fmt: skip
        if self.process is not None:
            self.process.wait(timeout=30)
        _wait(lambda: not self.up(), "the private Redis to stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _cluster_user() -> pwd.struct_passwd | None:
    """The account that runs initdb and pg_ctl: none to switch to unless this process is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_ACCOUNT)
    except KeyError as missing:
        raise RuntimeError(f"running as root, initdb needs the {POSTGRES_ACCOUNT!r} account") from missing


def _reachable_temp() -> str:
    """A temporary folder every account may pass through (TMPDIR may be private to root)."""
    folder = tempfile.gettempdir()
    return folder if os.stat(folder).st_mode & stat.S_IXOTH else "/tmp"


def _wait(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 60,
    alive: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {alive.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)
