"""Real servers on loopback for benchmarks and tests: PostgreSQL clusters, a Caddy process, a Redis server, tiny upstreams.

Each starts the real binary in its own temporary folder on free loopback ports and removes everything on
`stop()` (also at interpreter exit). A missing binary raises `MissingServerBinary`, naming the Debian package.
"""

from __future__ import annotations

import atexit
import http.client
import http.server
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

import psycopg
from psycopg.conninfo import make_conninfo

from fleet.errors import FleetError

__all__ = [
    "MissingServerBinary",
    "ServerStartError",
    "HttpResponse",
    "free_port",
    "http_get",
    "PostgresCluster",
    "CaddyServerProcess",
    "UpstreamHTTPServer",
    "RedisServerProcess",
    "find_postgres_bindir",
    "find_caddy",
]

LOOPBACK = "127.0.0.1"
INSTALL_HINT = "apt-get install postgresql-15 caddy redis-server"


class MissingServerBinary(FleetError):
    """A server binary the tests need is not installed; the message says which package provides it."""


class ServerStartError(FleetError):
    """A server did not come up; the message carries the tail of its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on `host` a moment ago (the OS picks it; a race with others is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class HttpResponse:
    """What a plain HTTP request got back."""

    status: int
    """HTTP status code."""
    body: str
    """Response body, decoded as UTF-8."""
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers (last value wins), names lower-cased."""


def http_get(port: int, host_header: str, path: str = "/", *, host: str = LOOPBACK, timeout: float = 5.0) -> HttpResponse:
    """GET `path` from `host:port` with the given Host header (how a proxy tells tenants apart)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host_header, "Connection": "close"})
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
        return HttpResponse(response.status, body, {name.lower(): value for name, value in response.getheaders()})
    finally:
        connection.close()


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- PostgreSQL


def end_process(process: Optional[subprocess.Popen], grace: float = 10.0) -> None:
    """Stop a server process: SIGTERM, then SIGKILL when it is still running after `grace` seconds (nothing when
    it is None or has exited)."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def find_postgres_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: $FLEET_PG_BINDIR, Debian's versioned dirs, or PATH."""
    needed = ("initdb", "pg_ctl", "postgres")
    candidates: list[Path] = []
    if os.environ.get("FLEET_PG_BINDIR"):
        candidates.append(Path(os.environ["FLEET_PG_BINDIR"]))
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    versioned = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: _version_key(path.parent.name), reverse=True)
    candidates.extend(versioned)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if all((directory / binary).is_file() for binary in needed):
            return directory
    raise MissingServerBinary(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in /usr/lib/postgresql/*/bin, "
        f"$FLEET_PG_BINDIR or PATH. Install them with: {INSTALL_HINT}"
    )


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (0,)


LOGICAL_REPLICATION_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "16",
    "max_wal_senders": "16",
    "max_logical_replication_workers": "8",
    "max_worker_processes": "16",
}
"""What a server needs for live moves, as source and as target (docs/moves.md); the dev stack's servers use the same."""


class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a password-protected superuser.

    Authentication: `local all all trust` (unix socket in the cluster's temp dir) and
    `host all all 127.0.0.1/32 scram-sha-256`. Durability is off (fsync, synchronous_commit,
    full_page_writes) because the data is thrown away: startup takes about a second.

    Use as a context manager, or call `start()` and `stop()`. When running as root, the server runs as
    the `postgres` OS user (PostgreSQL refuses root).
    """

    def __init__(
        self,
        admin_password: str = "fleet-test-superuser",
        *,
        admin_user: str = "postgres",
        locale: str = "C.UTF-8",
        os_user: str = "postgres",
        bindir: Optional[Path] = None,
        settings: Optional[dict[str, Any]] = None,
        startup_timeout: float = 60.0,
        logical_replication: bool = True,
    ) -> None:
        self.host = LOOPBACK
        """Address the server listens on (and the only one)."""
        self.port: Optional[int] = None
        """TCP port, chosen at start."""
        self.admin_user = admin_user
        """Superuser name."""
        self.admin_password = admin_password
        """Superuser password (SCRAM)."""
        self.locale = locale
        self.os_user = os_user
        self.bindir = Path(bindir) if bindir else None
        self.settings = dict(settings or {})
        self.logical_replication = logical_replication
        """wal_level=logical with slots and senders for live moves (False: PostgreSQL's default `replica`, for the dump fallback)."""
        self.startup_timeout = startup_timeout
        self.base_dir: Optional[Path] = None
        """Temporary directory: data/, the unix socket, server.log."""
        self._running = False

    # ------------------------------------------------------------ paths

    @property
    def data_dir(self) -> Path:
        """PGDATA of the cluster."""
        assert self.base_dir is not None, "cluster not started"
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        """Directory of the unix socket (connect with host=<socket_dir> for trust auth)."""
        assert self.base_dir is not None, "cluster not started"
        return self.base_dir

    @property
    def log_path(self) -> Path:
        """The server log."""
        assert self.base_dir is not None, "cluster not started"
        return self.base_dir / "server.log"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "PostgresCluster":
        """initdb into a fresh temp dir and start the server; returns self."""
        if self._running:
            return self
        bindir = self.bindir or find_postgres_bindir()
        self.bindir = bindir
        self._owner = self._resolve_owner()
        self.base_dir = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
        atexit.register(self.stop)
        try:
            self._chown(self.base_dir)
            pwfile = self.base_dir / "pwfile"
            pwfile.write_text(self.admin_password + "\n")
            pwfile.chmod(0o600)
            self._chown(pwfile)
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", self.admin_user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    f"--locale={self.locale}",
                    "--no-sync",
                    "--no-instructions",
                ],
                "initdb",
            )
            pwfile.unlink()
            self._configure()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        self._running = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory. Safe to call twice."""
        atexit.unregister(self.stop)
        self._running = False
        if self.base_dir is None:
            return
        data_dir = self.data_dir
        try:
            if (data_dir / "postmaster.pid").exists() and self.bindir is not None:
                try:
                    self._run([str(self.bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "-t", "30", "stop"], "pg_ctl stop", timeout=40)
                except (ServerStartError, subprocess.TimeoutExpired):
                    self._kill_postmaster(data_dir)
        finally:
            base_dir, self.base_dir = self.base_dir, None
            shutil.rmtree(base_dir, ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ clients

    def dsn(self, dbname: str = "postgres", user: Optional[str] = None, password: Optional[str] = None, **extra: Any) -> str:
        """A libpq connection string over TCP to 127.0.0.1; defaults to the superuser and its password."""

        assert self.port is not None, "cluster not started"
        if user is None:
            user = self.admin_user
            password = self.admin_password if password is None else password
        params: dict[str, Any] = {"host": self.host, "port": self.port, "dbname": dbname, "user": user, "connect_timeout": 10}
        if password is not None:
            params["password"] = password
        params.update(extra)
        return make_conninfo("", **params)

    def connect(
        self,
        dbname: str = "postgres",
        user: Optional[str] = None,
        password: Optional[str] = None,
        *,
        autocommit: bool = True,
        **extra: Any,
    ):
        """A psycopg connection (autocommit by default, so CREATE DATABASE works) over TCP, password-authenticated."""

        return psycopg.connect(self.dsn(dbname, user, password, **extra), autocommit=autocommit)

    # ------------------------------------------------------------ helpers

    def _resolve_owner(self) -> Optional[pwd.struct_passwd]:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            raise MissingServerBinary(
                f"running as root, PostgreSQL must run as the {self.os_user!r} OS user, which does not exist; "
                f"installing the server creates it: {INSTALL_HINT}"
            ) from None

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def _environment(self) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        environment.update(HOME=str(self.base_dir), LC_ALL="C.UTF-8", LANG="C.UTF-8")
        return environment

    def _run(self, command: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess:
        owner: dict[str, Any] = {}
        if self._owner is not None:
            owner = {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": []}
        result = subprocess.run(
            command,
            cwd=self.base_dir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **owner,
        )
        if result.returncode != 0:
            raise ServerStartError(f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def _configure(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "password_encryption": "'scram-sha-256'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "'32MB'",
            "max_connections": "100",
        }
        if self.logical_replication:
            settings.update(LOGICAL_REPLICATION_SETTINGS)
        settings.update({key: str(value) for key, value in self.settings.items()})
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# fleet.bench.servers.PostgresCluster\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text("# TYPE  DATABASE  USER  ADDRESS       METHOD\nlocal   all       all                 trust\nhost    all       all   127.0.0.1/32  scram-sha-256\n")
        self._chown(hba)

    def _start_server(self) -> None:
        assert self.bindir is not None, "cluster not started"
        # The port is only known free until someone else binds it: retry on a clash.
        for attempt in range(5):
            self.port = free_port()
            try:
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D", str(self.data_dir),
                        "-l", str(self.log_path),
                        "-o", f"-p {self.port}",
                        "-w", "-t", str(int(self.startup_timeout)),
                        "start",
                    ],
                    "pg_ctl start",
                    timeout=self.startup_timeout + 10,
                )
                return
            except ServerStartError as error:
                log = _log_tail(self.log_path)
                if attempt < 4 and "could not bind" in log:
                    continue
                raise ServerStartError(f"{error}\nserver log:\n{log}") from None

    @staticmethod
    def _kill_postmaster(data_dir: Path) -> None:
        try:
            pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            time.sleep(1)


# ---------------------------------------------------------------- Caddy


def find_caddy() -> Path:
    """The caddy binary: $FLEET_CADDY_BIN, PATH, or /usr/bin/caddy."""
    for candidate in (os.environ.get("FLEET_CADDY_BIN"), shutil.which("caddy"), "/usr/bin/caddy"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise MissingServerBinary(f"the caddy binary was not found ($FLEET_CADDY_BIN, PATH, /usr/bin/caddy). Install it with: {INSTALL_HINT}")


class CaddyServerProcess:
    """A private `caddy run` with its admin API on a free loopback port.

    Its config file holds only the admin listener; servers and routes arrive through the admin API.
    XDG_CONFIG_HOME, XDG_DATA_HOME and HOME point into a temp dir, so the autosave
    (`<temp>/config/caddy/autosave.json`) never touches the real home. `http_port` is a further free
    port a test can give a Caddy server as its listen address (`http_listen`) and then query with `get`.
    """

    def __init__(self, *, caddy: Optional[Path] = None, startup_timeout: float = 20.0) -> None:
        self.caddy = Path(caddy) if caddy else None
        self.startup_timeout = startup_timeout
        self.admin_port: Optional[int] = None
        """Port of the admin API."""
        self.http_port: int = free_port()
        """A free port for a test server's listener (see `http_listen`)."""
        self.base_dir: Optional[Path] = None
        self._process: Optional[subprocess.Popen] = None
        self._log_file: Optional[IO[bytes]] = None

    # ------------------------------------------------------------ addresses

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API, e.g. http://127.0.0.1:40123."""
        assert self.admin_port is not None, "caddy not started"
        return f"http://{LOOPBACK}:{self.admin_port}"

    @property
    def http_listen(self) -> str:
        """`127.0.0.1:<http_port>`, a listen address for a server under test."""
        return f"{LOOPBACK}:{self.http_port}"

    @property
    def autosave_path(self) -> Path:
        """Where Caddy saves the config it got through the API (what --resume restores)."""
        assert self.base_dir is not None, "caddy not started"
        return self.base_dir / "config" / "caddy" / "autosave.json"

    @property
    def log_path(self) -> Path:
        """Caddy's stdout and stderr."""
        assert self.base_dir is not None, "caddy not started"
        return self.base_dir / "caddy.log"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------ lifecycle

    def cpu_seconds(self) -> float:
        """CPU time the running Caddy has used (user + system), from /proc."""
        if not self.running or self._process is None:
            return 0.0
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def start(self, resume: bool = True) -> "CaddyServerProcess":
        """Start caddy (with `--resume` unless told otherwise) and wait for the admin API; returns self."""
        if self.running:
            return self
        caddy = self.caddy or find_caddy()
        self.caddy = caddy
        first_start = self.base_dir is None
        if first_start:
            self.base_dir = Path(tempfile.mkdtemp(prefix="fleet-caddy-"))
            atexit.register(self.stop)
        for attempt in range(5 if first_start else 1):
            if first_start:
                self.admin_port = free_port()
                self._write_config()
            try:
                self._launch(resume)
                return self
            except ServerStartError:
                log = _log_tail(self.log_path)
                if attempt < 4 and first_start and "address already in use" in log:
                    continue
                self.stop()
                raise
        raise AssertionError("unreachable")

    def crash(self) -> None:
        """Kill caddy but keep its files (config, autosave), as a crash would; `start()` brings it back on the same ports."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        self._terminate()

    def stop(self) -> None:
        """Stop caddy and remove its temp dir (config, autosave, data, log). Safe to call twice."""
        atexit.unregister(self.stop)
        self._terminate()
        base_dir, self.base_dir = self.base_dir, None
        if base_dir is not None:
            shutil.rmtree(base_dir, ignore_errors=True)

    def restart(self, resume: bool = True) -> "CaddyServerProcess":
        """Stop the process and start it again; without `resume` every API-made change is gone."""
        self._terminate()
        return self.start(resume=resume)

    def __enter__(self) -> "CaddyServerProcess":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ clients

    def get(self, host_header: str, port: Optional[int] = None, path: str = "/", timeout: float = 5.0) -> HttpResponse:
        """GET `path` from the server on 127.0.0.1:`port` (default `http_port`) with the given Host header."""
        return http_get(port or self.http_port, host_header, path, timeout=timeout)

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        """Call the admin API directly (test set-up and inspection); returns the decoded JSON or None."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.admin_url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body.strip() else None

    def config(self, path: str = "") -> Any:
        """GET /config/<path>: the live config, or a part of it."""
        return self.admin("GET", "/config/" + path.lstrip("/"))

    def reset(self) -> None:
        """Drop every app (servers and routes), keeping the admin listener: a clean slate between tests."""
        self.admin("DELETE", "/config/apps")

    # ------------------------------------------------------------ helpers

    def _write_config(self) -> None:
        assert self.base_dir is not None, "caddy not started"
        config = {"admin": {"listen": f"{LOOPBACK}:{self.admin_port}"}}
        (self.base_dir / "caddy.json").write_text(json.dumps(config))

    def _environment(self) -> dict[str, str]:
        assert self.base_dir is not None, "caddy not started"
        environment = dict(os.environ)
        environment.update(
            HOME=str(self.base_dir),
            XDG_CONFIG_HOME=str(self.base_dir / "config"),
            XDG_DATA_HOME=str(self.base_dir / "data"),
        )
        return environment

    def _launch(self, resume: bool) -> None:
        assert self.base_dir is not None, "caddy not started"
        command = [str(self.caddy), "run", "--config", str(self.base_dir / "caddy.json")]
        if resume:
            command.append("--resume")
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - Caddy writes to it until stop() closes it
        self._process = subprocess.Popen(
            command,
            cwd=self.base_dir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for pytest must not kill it before the fixtures stop it
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._terminate()
                raise ServerStartError(f"caddy exited with {self._process.returncode}; log:\n{_log_tail(self.log_path)}")
            try:
                self.admin("GET", "/config/")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self._terminate()
        raise ServerStartError(f"caddy's admin API did not answer within {self.startup_timeout}s; log:\n{_log_tail(self.log_path)}")

    def _terminate(self) -> None:
        process, self._process = self._process, None
        end_process(process)  # SIGTERM: graceful stop, autosave already written
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


# ---------------------------------------------------------------- redis


class RedisServerProcess:
    """A private `redis-server` on a free loopback port, no persistence but an ACL file (so ACL SAVE works),
    its `default` user protected by `admin_password`."""

    def __init__(self, admin_password: str = "redis-admin-secret", *, startup_timeout: float = 15.0) -> None:
        self.admin_password = admin_password
        self.startup_timeout = startup_timeout
        self.port: Optional[int] = None
        self.base_dir: Optional[Path] = None
        self._process: Optional[subprocess.Popen] = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def acl_path(self) -> Path:
        assert self.base_dir is not None, "redis not started"
        return self.base_dir / "users.acl"

    def start(self) -> "RedisServerProcess":
        """Start redis-server and wait until the admin can PING it; returns self."""
        if self._process is not None and self._process.poll() is None:
            return self
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingServerBinary(f"redis-server was not found on PATH. Install it with: {INSTALL_HINT}")
        self.base_dir = Path(tempfile.mkdtemp(prefix="fleet-redis-"))
        atexit.register(self.stop)
        self.acl_path.write_text(f"user default on >{self.admin_password} ~* &* +@all\n")
        self.acl_path.chmod(0o600)
        for _attempt in range(5):
            self.port = free_port()
            command = [
                binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
                "--dir", str(self.base_dir), "--aclfile", str(self.acl_path), "--logfile", str(self.base_dir / "redis.log"),
            ]
            self._process = subprocess.Popen(command, cwd=self.base_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready():
                return self
            if "Address already in use" not in _log_tail(self.base_dir / "redis.log"):
                break
        log = _log_tail(self.base_dir / "redis.log")
        self.stop()
        raise ServerStartError(f"redis-server did not answer within {self.startup_timeout}s; log:\n{log}")

    def _wait_ready(self) -> bool:
        import redis

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with redis.Redis(host=LOOPBACK, port=self.port or 0, password=self.admin_password, socket_timeout=1) as client:
                    if client.ping():
                        return True
            except redis.RedisError:
                time.sleep(0.05)
        return False

    def client(self, username: Optional[str] = None, password: Optional[str] = None):
        """A redis-py client, as the admin unless a user is given."""
        import redis

        return redis.Redis(host=LOOPBACK, port=self.port or 0, username=username, password=password or self.admin_password,
                           socket_timeout=5, decode_responses=True)

    def stop(self) -> None:
        """Stop redis-server and remove its folder. Safe to call twice."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        end_process(process)
        base_dir, self.base_dir = self.base_dir, None
        if base_dir is not None:
            shutil.rmtree(base_dir, ignore_errors=True)

    def __enter__(self) -> "RedisServerProcess":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- upstream


class UpstreamHTTPServer:
    """A tiny HTTP server on 127.0.0.1 (a thread) standing in for a tenant's app behind the proxy.

    Every GET answers 200 with `<name> host=<Host header> path=<path>`; `requests` records (host, path).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        """What the server answers with, to tell upstreams apart."""
        self.requests: list[tuple[str, str]] = []
        """(Host header, path) of every request served."""
        self._server: Optional[http.server.ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None, "upstream not started"
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`, the dial address for a proxy."""
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> "UpstreamHTTPServer":
        """Bind a free port and serve in a daemon thread; returns self."""
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                host = self.headers.get("Host", "")
                upstream.requests.append((host, self.path))
                body = f"{upstream.name} host={host} path={self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), name=f"upstream-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "UpstreamHTTPServer":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
