"""Restore a tenant's backup into a fresh database, compare row counts, and optionally swap it in.
"""


from __future__ import annotations

import re
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from psycopg import sql

from fleet.ops.backups import (
    _TENANT_ROLE,
    PG_IDENTIFIER_MAX_BYTES,
    BackupError,
    Clock,
    check_dump,
    read_manifest,
    stamp,
    utc_now,
)
from fleet.postgres import catalog, drops, dumps, privileges, sessions
from fleet.postgres.access import PgToolsError, ServerAccess

# ---------------------------------------------------------------- restoring


def create_database(access: ServerAccess, database: str, owner: str, locale: str = "C.UTF-8") -> None:
    """A new, empty tenant-style database: owned by `owner`, from template0, PUBLIC's CONNECT and TEMPORARY revoked.

    (Helper to move into fleet.postgres: the settings are those of components.database.TenantDatabase.)
    """

    with access.connect() as connection:
        connection.execute(
            sql.SQL("create database {} owner {} template template0 encoding 'UTF8' lc_collate {} lc_ctype {}").format(
                sql.Identifier(database), sql.Identifier(owner), sql.Literal(locale), sql.Literal(locale)
            )
        )
        connection.execute(sql.SQL("revoke connect, temporary on database {} from public").format(sql.Identifier(database)))


def _rename_database(connection, old: str, new: str) -> None:

    connection.execute(sql.SQL("alter database {} rename to {}").format(sql.Identifier(old), sql.Identifier(new)))


@dataclass
class RestoreResult:
    """The outcome of a restore."""

    tenant: str
    dump: str
    database: str
    """Where the data now is (the live name after a replace)."""
    ok: bool
    tables: int = 0
    rows: int = 0
    mismatches: list[str] = field(default_factory=list)
    """`schema.table: N rows in the dump, M restored` for every table that differs."""
    replaced: bool = False
    previous_database: Optional[str] = None
    """After a replace: the name the former live database was renamed to (kept, never dropped)."""
    seconds: float = 0.0
    volumes: dict[str, str] = field(default_factory=dict)
    """With `volumes`: each volume's files, restored into a fresh folder beside the live one (by volume name)."""

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


def restore_volumes(entry, dump: Path, manifest: Optional[dict], when: datetime) -> dict[str, str]:
    """Extract each volume archive of a backup into `<volume folder>.restored-<time>` (never over the live folder),
    after checking its sha256 against the manifest. Returns the new folders by volume name."""
    recorded = (manifest or {}).get("volumes") or {}
    if not recorded:
        raise BackupError(f"{dump.name} has no volume archives (its manifest lists none)")
    restored = {}
    for name, facts in sorted(recorded.items()):
        if facts.get("absent"):
            continue
        live = entry.volumes.get(name)
        if live is None:
            raise BackupError(f"{dump.name} holds volume {name!r}, which {entry.name}'s plan no longer has; extract {facts['file']} by hand")
        archive = dump.with_name(str(facts["file"]))
        if not archive.is_file() or dumps.sha256_of(archive) != facts.get("sha256"):
            raise BackupError(f"{archive} is missing or differs from the backup's manifest (sha256): not restoring it")
        target = Path(f"{live}.restored-{stamp(when)}")
        if target.exists():
            raise BackupError(f"{target} already exists: a restore goes into a fresh folder")
        target.mkdir(parents=True, mode=0o700)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(target, filter="data")  # no absolute paths, links out of it or device files
        except (tarfile.TarError, OSError) as error:
            raise BackupError(f"could not restore volume {name} from {archive.name} into {target} (left there, incomplete): {error}") from None
        restored[name] = str(target)
    return restored


def default_restore_name(database: str, when: datetime, purpose: str = "restored") -> str:
    """`tenant_x_restored_20261123t020000`: a fresh database name that says what it is."""
    name = f"{database}_{purpose}_{stamp(when).lower().rstrip('z')}"
    if len(name.encode()) > PG_IDENTIFIER_MAX_BYTES:
        raise BackupError(f"{name!r} exceeds {PG_IDENTIFIER_MAX_BYTES} bytes: name the target with --into")
    return name


def compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """Tables whose row counts differ between a dump and a restored database."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, have = expected.get(table), actual.get(table)
        if want != have:
            problems.append(
                f"{table}: {'not in the dump' if want is None else f'{want} rows in the dump'}, "
                f"{'missing after the restore' if have is None else f'{have} restored'}"
            )
    return problems


RESERVED_DATABASES = frozenset({"postgres", "template0", "template1"})
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def restore_target_problem(name: str, tenant: str, live_database: str, other_databases: Iterable[str]) -> Optional[str]:
    """Why `name` can't be the fresh database of a restore (None when it can): a plain identifier of at most 63
    bytes, not reserved, not the live database, and not another tenant's (`tenant_<other>...`)."""
    if not name:
        return "--into needs a database name"
    if not _DATABASE_NAME.match(name):
        return f"--into {name!r} is not a plain database name (lowercase letters, digits and _, not starting with a digit)"
    if len(name.encode()) > PG_IDENTIFIER_MAX_BYTES:
        return f"--into {name!r} exceeds {PG_IDENTIFIER_MAX_BYTES} bytes"
    if name in RESERVED_DATABASES:
        return f"--into {name!r} is one of the server's own databases"
    if name == live_database:
        return f"{name} is {tenant}'s live database: restore into a fresh one, or use --replace"
    # The database a name looks like is the longest tenant database it extends (tenant_santa vs tenant_santa_rita).
    owners = [database for database in {*other_databases, live_database} if name == database or name.startswith(database + "_")]
    owner = max(owners, key=len, default=None)
    if owner is not None and owner != live_database:
        return f"--into {name!r} looks like another tenant's database ({owner}): name it after {tenant} ({live_database}_...)"
    return None


def restore_backup(
    inventory,
    tenant: str,
    dump: Path,
    *,
    into: Optional[str] = None,
    replace: bool = False,
    force: bool = False,
    clock: Clock = utc_now,
    on_step: Optional[Callable[[str], None]] = None,
    volumes: bool = False,
) -> RestoreResult:
    """Restore a dump of `tenant` into a fresh database and compare row counts with the dump.

    `into` names the new database (default `<database>_restored_<time>`; it must not exist). With
    `replace` the verified copy then takes the live database's name: connections to the live one are
    blocked and ended, it is renamed to `<database>_replaced_<time>` (kept), and the copy renamed in.
    `volumes` also extracts the backup's volume archives, each into a fresh folder beside the live one.
    """
    step = on_step or (lambda _text: None)
    started = time.monotonic()
    entry = inventory.tenant(tenant)
    dump = Path(dump)
    when = clock()
    if replace and into:
        raise BackupError("--replace restores into the live database's name; don't combine it with --into")
    manifest = read_manifest(dump)
    if manifest is not None and manifest.get("tenant") not in (None, tenant):
        raise BackupError(f"{dump} is a backup of tenant {manifest.get('tenant')}, not {tenant}")
    step(f"checking {dump.name}")
    contents = check_dump(dump, pg_bin=inventory.pg_bin, expected_sha256=(manifest or {}).get("sha256"))
    ours = {entry.role, entry.owner}  # dumps taken before the owner/app split hold the login role's objects
    theirs = " or ".join(sorted(ours))
    foreign = {owner for owner in contents.owners if owner not in ours and _TENANT_ROLE.match(owner)}
    if foreign and not ours & contents.owners:
        raise BackupError(f"{dump} holds tables of {', '.join(sorted(foreign))}, not of {tenant}'s roles {theirs}: another tenant's backup?")
    strangers = sorted(owner for owner in contents.owners if owner not in ours)
    if strangers and not ours & contents.owners and not force:
        raise BackupError(f"{dump}'s objects belong to {', '.join(strangers)}, not to {tenant}'s roles {theirs}: not restoring it (--force if you are sure)")
    access = inventory.admin_access(entry.server_key)
    target = default_restore_name(entry.database, when, "incoming" if replace else "restored") if into is None else into
    problem = restore_target_problem(target, tenant, entry.database, (other.database for other in inventory.select()))
    if problem:
        raise BackupError(problem)
    if catalog.database_exists(access, target):
        raise BackupError(f"database {target} already exists on {access.label}: a restore goes into a fresh database")
    # A tenant not yet deployed since the owner/app split has no owner role: its login role still owns its data.
    owner = entry.owner if catalog.role_exists(access, entry.owner) else entry.role
    step(f"creating {target} on {entry.server_key}")
    create_database(access, target, owner, entry.server.locale)
    step(f"restoring {contents.rows} rows in {len(contents.tables)} tables")
    try:
        dumps.restore(access, target, dump, owner_role=owner, pg_bin=inventory.pg_bin)
        if owner != entry.role:
            privileges.apply_tenant_access(access, target, owner, entry.role)
    except PgToolsError as error:
        # The restore ran in one transaction, so the database is as empty as we created it: remove it.
        drops.drop_database(access, target)
        raise BackupError(f"restore of {dump.name} into {target} failed (the new database was removed): {error}") from None
    step("comparing row counts")
    mismatches = compare_counts(contents.counts, catalog.table_counts(access, target))
    result = RestoreResult(tenant, str(dump), target, ok=not mismatches, tables=len(contents.tables), rows=contents.rows, mismatches=mismatches)
    if volumes and not mismatches:
        step("restoring volumes into fresh folders")
        result.volumes = restore_volumes(entry, dump, manifest, when)
    if replace and not mismatches:
        step(f"swapping {target} in for {entry.database}")
        result.previous_database = swap_in(access, entry.database, target, entry.role, when)
        result.database = entry.database
        result.replaced = True
    result.seconds = round(time.monotonic() - started, 3)
    return result


def swap_in(access: ServerAccess, live: str, incoming: str, role: str, when: datetime) -> str:
    """Give `incoming` the live database's name; the live one is renamed aside (kept). Returns its new name."""
    previous = default_restore_name(live, when, "replaced")
    if catalog.database_exists(access, previous):
        raise BackupError(f"database {previous} already exists on {access.label}; nothing was swapped")
    if not catalog.database_exists(access, live):
        # Nothing live to keep aside (a tenant whose database was lost): just take the name.
        with access.connect() as connection:
            _rename_database(connection, incoming, live)
        return ""
    state = sessions.block_connections(access, live, role)
    try:
        sessions.terminate_sessions(access, live)
        with access.connect() as connection:
            _rename_database(connection, live, previous)
            try:
                _rename_database(connection, incoming, live)
            except Exception:
                _rename_database(connection, previous, live)  # put the live database back under its name
                raise
    finally:
        # The limit goes back onto whatever carries the live name now; the role may log in again.
        sessions.reopen(access, state)
    return previous
