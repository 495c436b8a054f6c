"""PostgreSQL tools shared by the fleet's own resources and commands: access, dump, restore, verify, block.

Everything here talks to a server as its admin, through a `ServerAccess`; nothing keeps a connection
between calls, so the functions are safe to use from dynamic providers (whose code is pickled into the
state) and from CLI commands alike. SQL is composed with `psycopg.sql` (identifiers are never pasted
into strings), and passwords reach `pg_dump`/`pg_restore` through their environment, never their
command line.

    access = ServerAccess("127.0.0.1", 5433, "postgres", password, sslmode="disable")
    file = dump(access, "tenant_acme", Path("backups/acme/acme.dump"))       # pg_dump -Fc, atomically
    tables = verify_dump(file.path)                                          # TOC read + every block read
    restore(target, "tenant_acme", file.path, owner_role="tenant_acme_app")  # one transaction
    problems = compare_facts(collect_facts(access, "tenant_acme"), collect_facts(target, "tenant_acme", ...))

The API, by concern:

* access: `ServerAccess` (`dsn`, `connect`, `tool_env`, `from_mapping`/`to_mapping`), `server_version`,
  `system_identifier`, `is_superuser`;
* tools: `find_pg_bin`, `pg_tool`, `tool_major_version`, `check_tool_versions`;
* files: `dump` -> `DumpFile`, `read_toc`, `verify_dump` -> `TocEntry` list, `restore`, `sha256_of`;
* facts: `table_counts`, `schema_signature` -> `SchemaSignature`, `table_checksums`, `sequence_values`,
  `large_object_count`, and all of them at once: `collect_facts` -> `DatabaseFacts`, `compare_facts`;
* catalog: `database_exists`, `role_exists`, `database_comment`, `set_database_comment`, `extensions`,
  `user_objects`, `drop_owned_objects`, `prepared_transactions`, `other_sessions`;
* blocking: `block_connections` -> `BlockState`, `terminate_sessions`, `reopen`;
* dropping (only the purge uses these): `drop_database`, `drop_role`.

Failures raise `PgToolsError` subclasses whose messages name the server (`host:port`), the database
and the command, never a password.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "PgToolsError",
    "PgToolMissing",
    "PgCommandError",
    "ServerAccess",
    "DumpFile",
    "TocEntry",
    "SchemaSignature",
    "DatabaseFacts",
    "BlockState",
    "CHECKSUM_MAX_BYTES",
    "find_pg_bin",
    "pg_tool",
    "tool_major_version",
    "check_tool_versions",
    "server_version",
    "system_identifier",
    "is_superuser",
    "dump",
    "read_toc",
    "verify_dump",
    "restore",
    "sha256_of",
    "table_counts",
    "schema_signature",
    "table_checksums",
    "sequence_values",
    "large_object_count",
    "collect_facts",
    "compare_facts",
    "database_exists",
    "role_exists",
    "database_comment",
    "set_database_comment",
    "extensions",
    "user_objects",
    "drop_owned_objects",
    "prepared_transactions",
    "other_sessions",
    "FLEET_APPLICATION_NAME",
    "block_connections",
    "terminate_sessions",
    "reopen",
    "drop_database",
    "drop_role",
]

CHECKSUM_MAX_BYTES = 64 * 1024 * 1024
"""Tables up to this size (pg_table_size) get a content checksum besides their row count."""

FLEET_APPLICATION_NAME = "tenant-fleet"
"""`application_name` of every connection made through a ServerAccess (psycopg and the client tools)."""

# Session settings that make `row::text` identical on two servers (checksums compare it).
_STABLE_TEXT_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex"
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
_TOOLS = ("pg_dump", "pg_restore")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


# ---------------------------------------------------------------- errors


class PgToolsError(Exception):
    """A PostgreSQL operation of the fleet failed; the message says where and what."""


class PgToolMissing(PgToolsError):
    """pg_dump or pg_restore was not found, or is older than a server it must talk to."""


class PgCommandError(PgToolsError):
    """pg_dump or pg_restore exited non-zero; carries its exit code and the tail of its stderr."""

    def __init__(self, command: str, exit_code: int, stderr: str) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-12:]) or "(no output)"
        super().__init__(f"{command} failed (exit {exit_code}): {tail}")

    def __reduce__(self):
        return (type(self), (self.command, self.exit_code, self.stderr))


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
        from psycopg.conninfo import make_conninfo

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
        import psycopg

        try:
            return psycopg.connect(self.dsn(database, with_password=True, **options), autocommit=autocommit)
        except psycopg.OperationalError as error:
            raise PgToolsError(f"cannot connect to database {database!r} on {self.label} as {self.admin_user}: {_first_line(error)}") from None

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
    import psycopg

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
        if all((folder / tool).is_file() for tool in _TOOLS):
            return folder
        raise PgToolMissing(f"pg_dump/pg_restore not found in {folder} (backups.pg_bin)")
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: _major_key(path.parent.name), reverse=True)
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in _TOOLS):
            return folder
    raise PgToolMissing(
        "pg_dump/pg_restore not found in /usr/lib/postgresql/*/bin or on PATH; install the PostgreSQL client "
        "(apt-get install postgresql-client-15) or set backups.pg_bin in the stack config"
    )


def pg_tool(name: str, pg_bin: Optional[str | os.PathLike[str]] = None) -> Path:
    """The path of `pg_dump` or `pg_restore` (see `find_pg_bin`)."""
    if name not in _TOOLS:
        raise ValueError(f"unknown tool {name!r}: expected one of {', '.join(_TOOLS)}")
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


# ---------------------------------------------------------------- dump files


@dataclass(frozen=True)
class DumpFile:
    """A finished `pg_dump -Fc` file."""

    path: Path
    """Where it is."""
    bytes: int
    """Its size."""
    sha256: str
    """Hex SHA-256 of its content (to notice a file changed or truncated later)."""
    seconds: float
    """How long pg_dump ran."""


@dataclass(frozen=True)
class TocEntry:
    """One entry of a dump's table of contents (`pg_restore --list`)."""

    kind: str
    """`TABLE`, `TABLE DATA`, `SEQUENCE`, `INDEX`, ..."""
    schema: str
    """Schema, or `-` for objects without one."""
    name: str
    """Object name (for some kinds, e.g. constraints, `<table> <constraint>`)."""
    owner: str
    """Owner recorded in the dump ('' when dumped without owners)."""
    has_data: bool = False
    """For TABLE entries: whether the dump holds its rows (a TABLE DATA entry)."""

    @property
    def qualified(self) -> str:
        """`schema.name`."""
        return f"{self.schema}.{self.name}"


# Descriptions pg_dump uses that contain a space; the longest first so the match is unambiguous.
_TOC_KINDS = sorted(
    (
        "TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "FK CONSTRAINT", "DEFAULT ACL", "BLOB DATA",
        "LARGE OBJECT", "MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "EVENT TRIGGER", "FOREIGN TABLE",
        "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE",
        "FOREIGN DATA WRAPPER", "USER MAPPING", "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA",
        "OPERATOR CLASS", "OPERATOR FAMILY", "DEFAULT", "ROW SECURITY", "TABLE ATTACH", "INDEX ATTACH",
        "ACCESS METHOD", "SHELL TYPE", "CHECK CONSTRAINT",
    ),
    key=len,
    reverse=True,
)
_TOC_LINE = re.compile(r"^\s*\d+;\s+\d+\s+\d+\s+(?P<rest>.*)$")


def _parse_toc_line(line: str) -> Optional[TocEntry]:
    match = _TOC_LINE.match(line)
    if not match:
        return None
    rest = match.group("rest").rstrip()
    kind = next((candidate for candidate in _TOC_KINDS if rest.startswith(candidate + " ")), None)
    if kind is None:
        kind, _, rest = rest.partition(" ")
    else:
        rest = rest[len(kind) + 1:]
    parts = rest.split(" ")
    if len(parts) >= 3:
        schema, owner, name = parts[0], parts[-1], " ".join(parts[1:-1])
    elif len(parts) == 2:  # dumped without an owner
        schema, name, owner = parts[0], parts[1], ""
    else:
        schema, name, owner = "-", rest, ""
    return TocEntry(kind, schema, name, owner)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_tool(command: list[str], env: dict[str, str], what: str, timeout: Optional[float]) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PgToolsError(f"{what} did not finish within {timeout:.0f}s") from None
    except OSError as error:
        raise PgToolMissing(f"{what}: cannot run {command[0]}: {error}") from None
    if result.returncode != 0:
        raise PgCommandError(what, result.returncode, result.stderr)
    return result


def dump(
    access: ServerAccess,
    database: str,
    path: str | os.PathLike[str],
    *,
    pg_bin: Optional[str | os.PathLike[str]] = None,
    compress: Optional[int] = None,
    timeout: Optional[float] = None,
) -> DumpFile:
    """`pg_dump -Fc` of `database` into `path`, atomically: a failed dump never leaves a file under that name.

    `compress` is pg_dump's level (None: its default; 0 is fastest, for a dump that is restored at once).
    The file is created mode 0600: it holds a tenant's data.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    command = [str(pg_tool("pg_dump", pg_bin)), "--format=custom", "--no-password", f"--file={partial}"]
    if compress is not None:
        command.append(f"--compress={int(compress)}")
    command.append(f"--dbname={access.dsn(database)}")
    started = time.monotonic()
    old_umask = os.umask(0o077)
    try:
        _run_tool(command, access.tool_env(), f"pg_dump of {database!r} on {access.label}", timeout)
        os.replace(partial, final)
    finally:
        os.umask(old_umask)
        partial.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    return DumpFile(final, final.stat().st_size, sha256_of(final), round(seconds, 3))


def read_toc(path: str | os.PathLike[str], *, pg_bin: Optional[str | os.PathLike[str]] = None) -> list[TocEntry]:
    """Every entry of a custom-format dump's table of contents (`pg_restore --list`)."""
    dump_path = Path(path)
    if not dump_path.is_file() or dump_path.stat().st_size == 0:
        raise PgToolsError(f"dump {dump_path} does not exist or is empty")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    result = _run_tool([str(pg_tool("pg_restore", pg_bin)), "--list", str(dump_path)], env, f"pg_restore --list {dump_path}", 300)
    return [entry for entry in map(_parse_toc_line, result.stdout.splitlines()) if entry is not None]


def verify_dump(
    path: str | os.PathLike[str], *, pg_bin: Optional[str | os.PathLike[str]] = None, full: bool = True, timeout: Optional[float] = None
) -> list[TocEntry]:
    """Check a dump is readable; returns its TABLE entries (with `has_data`).

    Reads the table of contents, and with `full` also every data block (`pg_restore --file=/dev/null`
    decompresses and renders the whole dump without a server), so truncation or corruption anywhere
    fails here rather than on the day it is needed.
    """
    entries = read_toc(path, pg_bin=pg_bin)
    if full:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        _run_tool([str(pg_tool("pg_restore", pg_bin)), f"--file={os.devnull}", str(path)], env, f"pg_restore (full read) of {path}", timeout)
    with_data = {(entry.schema, entry.name) for entry in entries if entry.kind == "TABLE DATA"}
    return [
        TocEntry(entry.kind, entry.schema, entry.name, entry.owner, (entry.schema, entry.name) in with_data)
        for entry in entries
        if entry.kind == "TABLE"
    ]


def restore(
    access: ServerAccess,
    database: str,
    path: str | os.PathLike[str],
    owner_role: str,
    *,
    pg_bin: Optional[str | os.PathLike[str]] = None,
    single_transaction: bool = True,
    timeout: Optional[float] = None,
) -> float:
    """`pg_restore` a custom-format dump into the existing `database`, every object owned by `owner_role`.

    Runs as the admin with `--no-owner --role=<owner_role>` (so the admin must be able to SET ROLE to it:
    a superuser, or a member), stops at the first error, and by default in one transaction: a failed
    restore leaves the database as it was. Subscriptions and security labels are not restored (a copied
    subscription would start replicating on the target). Returns the seconds it took.
    """
    command = [
        str(pg_tool("pg_restore", pg_bin)),
        "--no-password",
        "--exit-on-error",
        "--no-owner",
        f"--role={owner_role}",
        "--no-subscriptions",
        "--no-security-labels",
        f"--dbname={access.dsn(database)}",
    ]
    if single_transaction:
        command.append("--single-transaction")
    command.append(str(path))
    started = time.monotonic()
    _run_tool(command, access.tool_env(), f"pg_restore of {Path(path).name} into {database!r} on {access.label}", timeout)
    return round(time.monotonic() - started, 3)


# ---------------------------------------------------------------- facts about a database

_NOT_SYSTEM = """
    n.nspname not in ('pg_catalog', 'information_schema')
    and n.nspname not like 'pg\\_toast%%' and n.nspname not like 'pg\\_temp%%'
"""
_NOT_EXTENSION_MEMBER = """
    not exists (select 1 from pg_depend d where d.classid = {catalog}::regclass and d.objid = {oid} and d.deptype = 'e')
"""


def _tables(connection) -> list[tuple[str, str]]:
    """(schema, table) of every ordinary table (partitions included, partitioned parents not) outside extensions."""
    query = f"""
        select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind = 'r' and {_NOT_SYSTEM}
          and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
        order by 1, 2
    """
    return [(schema, table) for schema, table in connection.execute(query)]


def table_counts(access: ServerAccess, database: str) -> dict[str, int]:
    """Exact row count of every user table, by `schema.table`."""
    from psycopg import sql

    with access.connect(database) as connection:
        return {
            f"{schema}.{table}": int(connection.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))).fetchone()[0])
            for schema, table in _tables(connection)
        }


@dataclass(frozen=True)
class SchemaSignature:
    """What a database's schema consists of, comparable across servers (names and types, not OIDs)."""

    relations: dict[str, str]
    """`schema.name` -> relkind (r table, p partitioned, v view, m matview, S sequence, f foreign, i/I index, c type)."""
    columns: dict[str, list[list[Any]]]
    """`schema.relation` -> [[name, type, not null], ...] in column order."""
    constraints: dict[str, list[list[str]]]
    """`schema.table` -> [[name, type], ...] sorted."""
    routines: list[str]
    """Functions and procedures as `schema.name(argument types)`, sorted."""
    schemas: list[str]
    """Non-system schemas, sorted."""

    def differences(self, other: "SchemaSignature", left: str = "source", right: str = "target") -> list[str]:
        """Human-readable differences from `other` (empty when equal)."""
        problems: list[str] = []
        for name in sorted(set(self.schemas) ^ set(other.schemas)):
            problems.append(f"schema {name} only on {left if name in self.schemas else right}")
        for name in sorted(set(self.relations) | set(other.relations)):
            mine, theirs = self.relations.get(name), other.relations.get(name)
            if mine is None or theirs is None:
                problems.append(f"relation {name} only on {left if theirs is None else right}")
            elif mine != theirs:
                problems.append(f"relation {name} is kind {mine} on {left}, {theirs} on {right}")
        for name in sorted(set(self.columns) & set(other.columns)):
            if self.columns[name] != other.columns[name]:
                problems.append(f"columns of {name} differ: {left} {_columns_text(self.columns[name])}, {right} {_columns_text(other.columns[name])}")
        for name in sorted(set(self.constraints) | set(other.constraints)):
            if self.constraints.get(name, []) != other.constraints.get(name, []):
                problems.append(f"constraints of {name} differ: {left} {self.constraints.get(name, [])}, {right} {other.constraints.get(name, [])}")
        for routine in sorted(set(self.routines) ^ set(other.routines)):
            problems.append(f"routine {routine} only on {left if routine in self.routines else right}")
        return problems


def _columns_text(columns: list[list[Any]]) -> str:
    return "(" + ", ".join(f"{name} {type_}{' not null' if not_null else ''}" for name, type_, not_null in columns) + ")"


def schema_signature(access: ServerAccess, database: str) -> SchemaSignature:
    """The schema of `database`: relations, their columns, constraints, routines and schemas (extension members left out)."""
    with access.connect(database) as connection:
        relations = {
            f"{schema}.{name}": kind
            for schema, name, kind in connection.execute(
                f"""
                select n.nspname, c.relname, c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I', 'c') and {_NOT_SYSTEM}
                  and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
                """
            )
        }
        columns: dict[str, list[list[Any]]] = {}
        for schema, name, column, type_, not_null in connection.execute(
            f"""
            select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
            from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped and {_NOT_SYSTEM}
              and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
            order by n.nspname, c.relname, a.attnum
            """
        ):
            columns.setdefault(f"{schema}.{name}", []).append([column, type_, bool(not_null)])
        constraints: dict[str, list[list[str]]] = {}
        for schema, name, constraint, kind in connection.execute(
            f"""
            select n.nspname, c.relname, k.conname, k.contype::text
            from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
            where {_NOT_SYSTEM} order by 1, 2, 3
            """
        ):
            constraints.setdefault(f"{schema}.{name}", []).append([constraint, kind])
        routines = sorted(
            f"{schema}.{name}({arguments})"
            for schema, name, arguments in connection.execute(
                f"""
                select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where {_NOT_SYSTEM} and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_proc'", oid='p.oid')}
                """
            )
        )
        schemas = sorted(
            name
            for (name,) in connection.execute(
                f"""
                select n.nspname from pg_namespace n where {_NOT_SYSTEM}
                  and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_namespace'", oid='n.oid')}
                """
            )
        )
    return SchemaSignature(relations, columns, constraints, routines, schemas)


def _table_sizes(connection) -> dict[str, int]:
    return {
        f"{schema}.{table}": int(size)
        for schema, table, size in connection.execute(
            f"""
            select n.nspname, c.relname, pg_table_size(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind = 'r' and {_NOT_SYSTEM}
              and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
            """
        )
    }


def table_checksums(
    access: ServerAccess,
    database: str,
    tables: Optional[Iterable[str]] = None,
    *,
    max_bytes: int = CHECKSUM_MAX_BYTES,
) -> dict[str, str]:
    """An order-independent content checksum per table: `<rows>:<sum of md5 prefixes of row::text>`.

    One sequential scan per table, no sort. Without `tables`, every table up to `max_bytes` is
    checksummed; pass the source's keys to checksum exactly the same tables on a copy. Session
    settings that change how values print (TimeZone, DateStyle, float digits, bytea) are pinned,
    so equal rows give equal text on both servers.
    """
    import psycopg
    from psycopg import sql

    with access.connect(database, options=_STABLE_TEXT_OPTIONS) as connection:
        if tables is None:
            chosen = sorted(name for name, size in _table_sizes(connection).items() if size <= max_bytes)
        else:
            chosen = sorted(tables)
        checksums = {}
        for name in chosen:
            schema, _, table = name.partition(".")
            query = sql.SQL(
                "select count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0) from {} as t"
            ).format(sql.Identifier(schema, table))
            try:
                rows, total = connection.execute(query).fetchone()
            except psycopg.Error as error:  # a table missing on a copy is a difference to report, not a crash
                checksums[name] = f"error: {_first_line(error)}"
                continue
            checksums[name] = f"{rows}:{total}"
        return checksums


def sequence_values(access: ServerAccess, database: str) -> dict[str, Optional[int]]:
    """Each sequence's last value by `schema.sequence` (None when never used)."""
    with access.connect(database) as connection:
        return {
            f"{schema}.{name}": (None if value is None else int(value))
            for schema, name, value in connection.execute("select schemaname, sequencename, last_value from pg_sequences")
            if schema not in _SYSTEM_SCHEMAS
        }


def large_object_count(access: ServerAccess, database: str) -> int:
    """How many large objects the database holds."""
    with access.connect(database) as connection:
        return int(connection.execute("select count(*) from pg_largeobject_metadata").fetchone()[0])


@dataclass(frozen=True)
class DatabaseFacts:
    """Everything a copy is verified on: schema, row counts, checksums, sequences, large objects."""

    signature: SchemaSignature
    counts: dict[str, int]
    checksums: dict[str, str]
    sequences: dict[str, Optional[int]]
    large_objects: int
    seconds: float = 0.0
    """How long collecting took."""

    @property
    def rows(self) -> int:
        """Total rows over every table."""
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary (counts per table, totals)."""
        return {"tables": len(self.counts), "rows": self.rows, "checksummed_tables": len(self.checksums), "counts": dict(sorted(self.counts.items()))}


def collect_facts(
    access: ServerAccess,
    database: str,
    *,
    checksum_tables: Optional[Iterable[str]] = None,
    max_checksum_bytes: int = CHECKSUM_MAX_BYTES,
) -> DatabaseFacts:
    """All the facts `compare_facts` compares, from one database (see `table_checksums` for `checksum_tables`)."""
    started = time.monotonic()
    signature = schema_signature(access, database)
    counts = table_counts(access, database)
    checksums = table_checksums(access, database, checksum_tables, max_bytes=max_checksum_bytes)
    sequences = sequence_values(access, database)
    large_objects = large_object_count(access, database)
    return DatabaseFacts(signature, counts, checksums, sequences, large_objects, round(time.monotonic() - started, 3))


def compare_facts(source: DatabaseFacts, target: DatabaseFacts, left: str = "source", right: str = "target") -> list[str]:
    """Every difference between two databases' facts, one line each (empty: the copy is verified)."""
    problems = source.signature.differences(target.signature, left, right)
    for name in sorted(set(source.counts) | set(target.counts)):
        mine, theirs = source.counts.get(name), target.counts.get(name)
        if mine != theirs:
            problems.append(f"table {name}: {_or_missing(mine, 'rows')} on {left}, {_or_missing(theirs, 'rows')} on {right}")
    for name in sorted(set(source.checksums) | set(target.checksums)):
        if source.checksums.get(name) != target.checksums.get(name):
            problems.append(f"table {name}: content checksum differs ({left} {source.checksums.get(name)}, {right} {target.checksums.get(name)})")
    for name in sorted(set(source.sequences) | set(target.sequences)):
        if source.sequences.get(name) != target.sequences.get(name) or (name in source.sequences) != (name in target.sequences):
            problems.append(f"sequence {name}: last value {source.sequences.get(name)} on {left}, {target.sequences.get(name)} on {right}")
    if source.large_objects != target.large_objects:
        problems.append(f"large objects: {source.large_objects} on {left}, {target.large_objects} on {right}")
    return problems


def _or_missing(value: Optional[int], unit: str) -> str:
    return "missing" if value is None else f"{value} {unit}"


# ---------------------------------------------------------------- catalog


def database_exists(access: ServerAccess, database: str) -> bool:
    """Whether `database` exists on the server."""
    with access.connect() as connection:
        return connection.execute("select 1 from pg_database where datname = %s", [database]).fetchone() is not None


def role_exists(access: ServerAccess, role: str) -> bool:
    """Whether `role` exists on the server."""
    with access.connect() as connection:
        return connection.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone() is not None


def database_comment(access: ServerAccess, database: str) -> Optional[str]:
    """The database's COMMENT, or None."""
    with access.connect() as connection:
        row = connection.execute(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = %s", [database]
        ).fetchone()
    return row[0] if row else None


def set_database_comment(access: ServerAccess, database: str, comment: Optional[str]) -> None:
    """COMMENT ON DATABASE (None removes it)."""
    from psycopg import sql

    with access.connect() as connection:
        connection.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(database), sql.Literal(comment)))


def extensions(access: ServerAccess, database: str) -> set[str]:
    """Names of the extensions installed in the database."""
    with access.connect(database) as connection:
        return {name for (name,) in connection.execute("select extname from pg_extension")}


def user_objects(access: ServerAccess, database: str, limit: int = 20) -> list[str]:
    """Up to `limit` user objects of the database ("table public.items", "schema app", ...); [] means empty.

    Counts schemas other than public, tables, views, sequences, foreign tables, composite and other
    user types, routines and large objects; members of extensions do not count (an extension installed
    ahead of a restore is fine).
    """
    query = f"""
        select 'schema ' || n.nspname from pg_namespace n
        where {_NOT_SYSTEM} and n.nspname <> 'public' and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_namespace'", oid='n.oid')}
        union all
        select case c.relkind when 'r' then 'table ' when 'p' then 'table ' when 'v' then 'view ' when 'm' then 'materialized view '
                              when 'S' then 'sequence ' when 'f' then 'foreign table ' else 'type ' end || n.nspname || '.' || c.relname
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c') and {_NOT_SYSTEM}
          and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
        union all
        select 'routine ' || n.nspname || '.' || p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where {_NOT_SYSTEM} and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_proc'", oid='p.oid')}
        union all
        select 'type ' || n.nspname || '.' || t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where t.typtype in ('e', 'd', 'r', 'b') and t.typrelid = 0 and t.typcategory <> 'A' and {_NOT_SYSTEM}
          and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_type'", oid='t.oid')}
        union all
        select 'large objects (' || count(*) || ')' from pg_largeobject_metadata having count(*) > 0
        limit %s
    """
    with access.connect(database) as connection:
        return [text for (text,) in connection.execute(query, [limit])]


def drop_owned_objects(access: ServerAccess, database: str, role: str, *, keep_extensions: Iterable[str] = ()) -> list[str]:
    """Undo a restore made with `restore(..., owner_role=role)`: DROP OWNED BY `role` inside `database`,
    and drop extensions not in `keep_extensions`. The database itself (a shared object) stays.

    Returns the user objects still left (`user_objects`), so the caller can tell whether it is empty again.
    """
    from psycopg import sql

    keep = set(keep_extensions)
    with access.connect(database) as connection:
        for (name,) in connection.execute("select extname from pg_extension").fetchall():
            if name not in keep:
                connection.execute(sql.SQL("drop extension if exists {} cascade").format(sql.Identifier(name)))
        connection.execute(sql.SQL("drop owned by {} cascade").format(sql.Identifier(role)))
    return user_objects(access, database)


def prepared_transactions(access: ServerAccess, database: str) -> list[str]:
    """Global ids of prepared (two-phase) transactions pending in the database: their writes are in no dump yet."""
    with access.connect() as connection:
        return [gid for (gid,) in connection.execute("select gid from pg_prepared_xacts where database = %s", [database])]


def other_sessions(access: ServerAccess, database: str, *, include_fleet: bool = True) -> list[dict[str, Any]]:
    """Sessions connected to `database` other than the caller's: pid, user, application, state.

    `include_fleet=False` leaves out this tool's own connections (application_name `tenant-fleet`),
    e.g. one that has just been closed and whose server process has not exited yet.
    """
    with access.connect() as connection:
        return [
            {"pid": pid, "user": user, "application": application, "state": state}
            for pid, user, application, state in connection.execute(
                "select pid, usename, application_name, state from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                [database],
            )
            if include_fleet or application != FLEET_APPLICATION_NAME
        ]


# ---------------------------------------------------------------- blocking a database


@dataclass(frozen=True)
class BlockState:
    """What `block_connections` changed, so `reopen` can put it back exactly."""

    database: str
    """The blocked database."""
    connection_limit: int
    """Its CONNECTION LIMIT before (-1: none)."""
    limited: bool
    """Whether CONNECTION LIMIT 0 was applied (only when the admin is a superuser, which the limit exempts)."""
    role: Optional[str] = None
    """The tenant's role, whose LOGIN was switched off (None: no role given, or it does not exist there)."""
    role_could_login: Optional[bool] = None
    """Its LOGIN before."""
    comment: Optional[str] = None
    """The database's COMMENT before."""
    commented: bool = False
    """Whether the block replaced that COMMENT (`block_connections(..., comment=...)`); `reopen` puts it back."""

    def to_mapping(self) -> dict[str, Any]:
        """JSON-able form (e.g. for a provider's outputs, or a COMMENT recording how to reopen)."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "BlockState":
        """Inverse of `to_mapping`."""
        return cls(
            database=data["database"],
            connection_limit=int(data["connection_limit"]),
            limited=bool(data["limited"]),
            role=data.get("role"),
            role_could_login=data.get("role_could_login"),
            comment=data.get("comment"),
            commented=bool(data.get("commented", False)),
        )


def block_connections(
    access: ServerAccess,
    database: str,
    role: Optional[str] = None,
    *,
    comment: Optional[Callable[[BlockState], str]] = None,
) -> BlockState:
    """Refuse new connections to `database`: CONNECTION LIMIT 0 (superusers, like the admin, are exempt)
    and `role` NOLOGIN. Sessions already open stay: end them with `terminate_sessions`.

    With an admin that is not a superuser the limit would lock the admin out too, so only the role's
    LOGIN is switched off then. `comment`, if given, gets the state before the block and returns a
    COMMENT to set on the database in the same transaction: a record, on the server itself, of how to
    reopen it should the caller die before it can (see `reopen`). Returns what was changed.
    """
    from psycopg import sql

    with access.connect() as connection:
        row = connection.execute(
            "select datconnlimit, datallowconn, shobj_description(oid, 'pg_database') from pg_database where datname = %s", [database]
        ).fetchone()
        if row is None:
            raise PgToolsError(f"database {database!r} does not exist on {access.label}")
        if not row[1]:
            raise PgToolsError(f"database {database!r} on {access.label} does not allow connections (datallowconn is false)")
        superuser = bool(connection.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0])
        could_login = None
        if role is not None:
            role_row = connection.execute("select rolcanlogin from pg_roles where rolname = %s", [role]).fetchone()
            could_login = None if role_row is None else bool(role_row[0])
        state = BlockState(database, int(row[0]), superuser, role if could_login is not None else None, could_login, row[2], comment is not None)
        with connection.transaction():
            if superuser:
                connection.execute(sql.SQL("alter database {} connection limit 0").format(sql.Identifier(database)))
            if could_login:
                connection.execute(sql.SQL("alter role {} nologin").format(sql.Identifier(role)))
            if comment is not None:
                connection.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(database), sql.Literal(comment(state))))
    return state


def terminate_sessions(access: ServerAccess, database: str, *, timeout: float = 30.0) -> int:
    """End every other session on `database` and wait until they are gone; returns how many were ended.

    Their open transactions roll back; what they committed stays. Raises when sessions keep coming
    back after `timeout` (a superuser reconnecting: the connection limit does not stop superusers).
    """
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    with access.connect() as connection:
        while True:
            pids = [
                pid
                for (pid,) in connection.execute(
                    "select pid from pg_stat_activity where datname = %s and pid <> pg_backend_pid()", [database]
                )
            ]
            if not pids:
                return len(ended)
            for pid in pids:
                if connection.execute("select pg_terminate_backend(%s)", [pid]).fetchone()[0]:
                    ended.add(pid)
            if time.monotonic() > deadline:
                raise PgToolsError(f"sessions on {database!r} on {access.label} did not end within {timeout:.0f}s (pids {pids})")
            time.sleep(0.05)


def reopen(access: ServerAccess, state: BlockState) -> None:
    """Undo `block_connections`: the connection limit, the role's LOGIN and the COMMENT exactly as they were."""
    from psycopg import sql

    with access.connect() as connection, connection.transaction():
        if state.limited:
            connection.execute(
                sql.SQL("alter database {} connection limit {}").format(sql.Identifier(state.database), sql.Literal(int(state.connection_limit)))
            )
        if state.role is not None and state.role_could_login:
            connection.execute(sql.SQL("alter role {} login").format(sql.Identifier(state.role)))
        if state.commented:
            connection.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(state.database), sql.Literal(state.comment)))


# ---------------------------------------------------------------- dropping (purge only)


def drop_database(access: ServerAccess, database: str) -> bool:
    """DROP DATABASE ... WITH (FORCE) (ends its sessions); False when it did not exist."""
    from psycopg import sql

    with access.connect() as connection:
        if connection.execute("select 1 from pg_database where datname = %s", [database]).fetchone() is None:
            return False
        connection.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(database)))
    return True


def drop_role(access: ServerAccess, role: str) -> bool:
    """DROP ROLE (never REASSIGN/DROP OWNED: a role that still owns something elsewhere makes this fail); False when absent."""
    from psycopg import sql

    with access.connect() as connection:
        if connection.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone() is None:
            return False
        connection.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
    return True


# ---------------------------------------------------------------- helpers


def _major_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (0,)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
