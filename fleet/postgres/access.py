"""How to reach a server: `ServerAccess` (credentials, libpq settings), tool discovery and versions.
"""


from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import psycopg
from psycopg.conninfo import make_conninfo

from fleet.errors import FleetError

TOOLS = ("pg_dump", "pg_restore")
"""The client tools the project runs; found together in one folder matching the servers' major version."""

FLEET_APPLICATION_NAME = "tenant-fleet"
"""`application_name` of every connection made through a ServerAccess (psycopg and the client tools)."""
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


# ---------------------------------------------------------------- errors


class PgToolsError(FleetError):
    """A PostgreSQL operation of the fleet failed; the message says where and what."""


class PgToolMissing(PgToolsError):
    """pg_dump or pg_restore was not found, or is older than a server it must talk to."""


class PgCommandError(PgToolsError):
    """pg_dump or pg_restore exited non-zero; carries its exit code and the tail of its stderr."""

    def __init__(self, command: str, command_exit_code: int, stderr: str) -> None:
        self.command = command
        #: The tool's own exit code; `exit_code` is what the CLI exits with.
        self.command_exit_code = command_exit_code
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-12:]) or "(no output)"
        super().__init__(f"{command} failed (exit {command_exit_code}): {tail}")

    def __reduce__(self):
        return (type(self), (self.command, self.command_exit_code, self.stderr))


# ---------------------------------------------------------------- access


@dataclass(frozen=True)
class ServerAccess:
    """How to reach one PostgreSQL server as its admin (the password never shows in repr or DSNs)."""

    host: str
    """Address to connect to."""
    port: int = 5432
    """TCP port."""
    admin_user: str = "postgres"
    """Admin role (a superuser, or the managed service's admin)."""
    admin_password: str = field(default="", repr=False)
    """The admin's password; passed to libpq as a parameter or PGPASSWORD, never on a command line."""
    sslmode: str = "prefer"
    """libpq sslmode."""
    connect_timeout: int = 10
    """Seconds libpq waits for a connection."""

    @property
    def label(self) -> str:
        """`host:port`, for messages."""
        return f"{self.host}:{self.port}"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "ServerAccess":
        """From a plain mapping (provider inputs, config): host, port, admin_user, admin_password, sslmode."""
        return cls(
            host=str(data["host"]),
            port=int(data.get("port") or 5432),
            admin_user=str(data.get("admin_user") or "postgres"),
            admin_password=str(data.get("admin_password") or ""),
            sslmode=str(data.get("sslmode") or "prefer"),
            connect_timeout=int(data.get("connect_timeout") or 10),
        )

    def to_mapping(self, *, with_password: bool = True) -> dict[str, Any]:
        """The inverse of `from_mapping`; without the password for anything that is displayed or stored plainly."""
        data = asdict(self)
        if not with_password:
            data.pop("admin_password")
        return data

    def dsn(self, database: str = "postgres", *, with_password: bool = False, **options: Any) -> str:
        """A libpq connection string to `database` (without the password unless asked: tools get it from `tool_env`)."""

        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": database,
            "user": self.admin_user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": FLEET_APPLICATION_NAME,
        }
        if with_password and self.admin_password:
            params["password"] = self.admin_password
        params.update(options)
        return make_conninfo("", **params)

    def connect(self, database: str = "postgres", *, autocommit: bool = True, **options: Any):
        """A psycopg connection as the admin (autocommit by default: ALTER/DROP DATABASE need it)."""

        try:
            return psycopg.connect(self.dsn(database, with_password=True, **options), autocommit=autocommit)
        except psycopg.OperationalError as error:
            raise PgToolsError(f"cannot connect to database {database!r} on {self.label} as {self.admin_user}: {first_line(error)}") from None

    def tool_env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: this process's, minus stray PG* settings, plus the password."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_MESSAGES="C", PGCONNECT_TIMEOUT=str(self.connect_timeout))
        if self.admin_password:
            env["PGPASSWORD"] = self.admin_password
        return env


def server_version(access: ServerAccess) -> int:
    """The server's version number (`server_version_num`, e.g. 150010); its major version is `// 10000`."""
    with access.connect() as connection:
        return int(connection.execute("show server_version_num").fetchone()[0])


def system_identifier(access: ServerAccess) -> Optional[str]:
    """The cluster's system identifier (unique per initdb), or None when the admin may not read it."""

    try:
        with access.connect() as connection:
            return str(connection.execute("select system_identifier from pg_control_system()").fetchone()[0])
    except psycopg.Error:
        return None


def is_superuser(access: ServerAccess) -> bool:
    """Whether the admin is a superuser (else CONNECTION LIMIT applies to it too)."""
    with access.connect() as connection:
        return bool(connection.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0])


# ---------------------------------------------------------------- client tools


def find_pg_bin(pg_bin: Optional[str | os.PathLike[str]] = None) -> Path:
    """The folder with pg_dump and pg_restore: `pg_bin` (Backups.pg_bin) if given, else the highest
    /usr/lib/postgresql/<major>/bin, else the one on PATH.

    Newer client tools read and write older servers' dumps, not the reverse, hence the highest version.
    """
    if pg_bin:
        folder = Path(pg_bin)
        if all((folder / tool).is_file() for tool in TOOLS):
            return folder
        raise PgToolMissing(f"pg_dump/pg_restore not found in {folder} (backups.pg_bin)")
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: major_key(path.parent.name), reverse=True)
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in TOOLS):
            return folder
    raise PgToolMissing(
        "pg_dump/pg_restore not found in /usr/lib/postgresql/*/bin or on PATH; install the PostgreSQL client "
        "(apt-get install postgresql-client-15) or set backups.pg_bin in the stack config"
    )


def pg_tool(name: str, pg_bin: Optional[str | os.PathLike[str]] = None) -> Path:
    """The path of `pg_dump` or `pg_restore` (see `find_pg_bin`)."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}: expected one of {', '.join(TOOLS)}")
    return find_pg_bin(pg_bin) / name


def tool_major_version(path: str | os.PathLike[str]) -> int:
    """The major version a client tool reports (`pg_dump (PostgreSQL) 15.10` -> 15)."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise PgToolMissing(f"{path} does not run: {error}") from None
    match = _VERSION.search(out)
    if not match:
        raise PgToolMissing(f"{path} reports no PostgreSQL version: {out.strip()!r}")
    major = int(match.group(1))
    return major if major >= 10 else major * 100 + int(match.group(2) or 0)  # 9.6 -> 906


def check_tool_versions(pg_bin: Optional[str | os.PathLike[str]], *servers: ServerAccess) -> Path:
    """The tools' folder, after checking they are at least as new as every server given (pg_dump refuses newer servers)."""
    folder = find_pg_bin(pg_bin)
    major = tool_major_version(folder / "pg_dump")
    for access in servers:
        server_major = server_version(access) // 10000
        if server_major > major:
            raise PgToolMissing(
                f"pg_dump {major} in {folder} is older than the server on {access.label} (PostgreSQL {server_major}); "
                f"install postgresql-client-{server_major} or point backups.pg_bin at it"
            )
    return folder


# ---------------------------------------------------------------- helpers


def major_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (0,)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
