"""`pg_dump -Fc` and `pg_restore`: take, read back, verify and restore custom-format dumps.
"""


from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fleet.postgres.access import (
    PgCommandError,
    PgToolMissing,
    PgToolsError,
    ServerAccess,
    pg_tool,
)

# Session settings that make `row::text` identical on two servers (checksums compare it).
_STABLE_TEXT_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex"


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


def run_tool(command: list[str], env: dict[str, str], what: str, timeout: Optional[float]) -> subprocess.CompletedProcess:
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
    schema_only: bool = False,
) -> DumpFile:
    """`pg_dump -Fc` of `database` into `path`, atomically: a failed dump never leaves a file under that name.

    `compress` is pg_dump's level (None: its default; 0 is fastest, for a dump that is restored at once).
    `schema_only` (a live move's first step) leaves out the rows and the publications.
    The file is created mode 0600: it holds a tenant's data.
    """
    final = Path(path)
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    final.parent.chmod(0o700)  # the tenant's folder: its dumps are its data
    partial = final.with_name(final.name + ".partial")
    command = [str(pg_tool("pg_dump", pg_bin)), "--format=custom", "--no-password", f"--file={partial}"]
    if compress is not None:
        command.append(f"--compress={int(compress)}")
    if schema_only:
        command += ["--schema-only", "--no-publications", "--no-subscriptions"]
    command.append(f"--dbname={access.dsn(database)}")
    started = time.monotonic()
    old_umask = os.umask(0o077)
    try:
        run_tool(command, access.tool_env(), f"pg_dump of {database!r} on {access.label}", timeout)
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
    result = run_tool([str(pg_tool("pg_restore", pg_bin)), "--list", str(dump_path)], env, f"pg_restore --list {dump_path}", 300)
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
        run_tool([str(pg_tool("pg_restore", pg_bin)), f"--file={os.devnull}", str(path)], env, f"pg_restore (full read) of {path}", timeout)
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
    subscription would start replicating on the target), nor are privileges (`--no-acl`): a dump's GRANTs
    could name any role, a neighbour's included, so the caller applies the tenant's access afterwards
    (fleet.postgres.privileges). Returns the seconds it took.
    """
    command = [
        str(pg_tool("pg_restore", pg_bin)),
        "--no-password",
        "--exit-on-error",
        "--no-owner",
        f"--role={owner_role}",
        "--no-acl",
        "--no-subscriptions",
        "--no-security-labels",
        f"--dbname={access.dsn(database)}",
    ]
    if single_transaction:
        command.append("--single-transaction")
    command.append(str(path))
    started = time.monotonic()
    run_tool(command, access.tool_env(), f"pg_restore of {Path(path).name} into {database!r} on {access.label}", timeout)
    return round(time.monotonic() - started, 3)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), as every dump and manifest is: they hold or describe a tenant's data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file was there already
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
