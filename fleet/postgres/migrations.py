"""Folders of SQL migrations applied to a tenant's database as its owner role, with yoyo-migrations.

Every source (the plan's app migrations, each module) is recorded in one table, `_fleet_migrations`, under
`<source>__<file>`: a file applied once is never applied again, and two sources may reuse file names. The session is the server
admin's, switched to the owner role before anything runs; a file that tries to switch back is refused unread.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import psycopg
from yoyo import get_backend, read_migrations

from fleet.errors import FleetError
from fleet.model.migration_sources import check_source, migration_files
from fleet.postgres.access import ServerAccess

SAFE_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MIGRATION_TABLE = "_fleet_migrations"
"""yoyo's record of what was applied, in the tenant's database, owned by its owner role."""
ID_SEPARATOR = "__"


class MigrationError(FleetError):
    """A migration failed, or a source can't be used; the message names the source, the file and the server's error."""


@dataclass
class MigrationReport:
    """What a run applied, by source."""

    applied: dict[str, list[str]] = field(default_factory=dict)
    """Migration ids applied now, per source (empty lists: nothing new)."""


def apply_migrations(access: ServerAccess, database: str, owner: str, sources: dict[str, Path], *, app: Optional[str] = None) -> MigrationReport:
    """Apply every source's pending migrations to `database` as `owner`, in source order; stops at the first failure.

    Each migration runs in its own transaction (yoyo's), so a failing file leaves the database as the previous
    file left it, and the next run starts from that file again. `app` (the login role) loses the default
    privileges it would get on yoyo's record tables."""
    problems = [f"{name}: {problem}" for name, folder in sources.items() for problem in check_source(name, folder)]
    if problems:
        raise MigrationError("; ".join(problems))
    report = MigrationReport()
    if not SAFE_ROLE.match(owner) or (app is not None and not SAFE_ROLE.match(app)):
        raise MigrationError(f"roles {owner!r}/{app!r} are not plain identifiers")
    # The role is set by the server at session start (libpq `options`), before yoyo creates its own tables:
    # everything, its bookkeeping included, is done and owned by the owner role.
    role_option = quote(f"-c role={owner}", safe="")
    uri = (
        f"postgresql+psycopg://{quote(access.admin_user, safe='')}:{quote(access.admin_password, safe='')}"
        f"@{access.host}:{access.port}/{quote(database, safe='')}?sslmode={access.sslmode}"
        f"&application_name=tenant-fleet-migrations&options={role_option}"
    )
    backend = get_backend(uri, migration_table=MIGRATION_TABLE)
    try:
        with backend.lock(), tempfile.TemporaryDirectory(prefix="tenant-fleet-migrations-") as staging:
            for name, folder in sources.items():
                pending = backend.to_apply(read_migrations(str(_staged(name, Path(folder), Path(staging)))))
                report.applied[name] = [migration.id.split(ID_SEPARATOR, 1)[1] for migration in pending]
                for migration in pending:
                    try:
                        backend.apply_one(migration)
                    except Exception as error:  # noqa: BLE001 - yoyo and psycopg raise many kinds; name the file
                        file = migration.id.split(ID_SEPARATOR, 1)[1]
                        raise MigrationError(f"{name}: {file}.sql failed on {database} ({access.label}): {first_lines(error)}") from None
        if app:
            # Default privileges gave the app DML on the record tables too: it must not be able to unmark a migration.
            with backend.transaction():
                for table in (MIGRATION_TABLE, "_yoyo_log", "_yoyo_version", "yoyo_lock"):
                    backend.execute(f'REVOKE ALL ON TABLE "{table}" FROM "{app}"')
    finally:
        backend.connection.close()
    return report


def _staged(source: str, folder: Path, staging: Path) -> Path:
    """Copies of a source's files named `<source>__<file>`: one record table for every source, and no two sources'
    files can be taken for each other (yoyo identifies a migration by its file name)."""
    target = staging / source
    target.mkdir()
    for path in migration_files(folder):
        shutil.copyfile(path, target / f"{source}{ID_SEPARATOR}{path.name}")
    return target


def first_lines(error: BaseException, lines: int = 3) -> str:
    text = str(error).strip() or type(error).__name__
    return " | ".join(text.splitlines()[:lines])


def run_as_owner(access: ServerAccess, database: str, owner: str, statement: str, params: dict[str, str]) -> None:
    """One SQL text with named parameters, in one transaction, as `owner` (set at connection time, as for migrations)."""
    if not SAFE_ROLE.match(owner):
        raise MigrationError(f"owner role {owner!r} is not a plain identifier")
    try:
        with psycopg.connect(access.dsn(database, with_password=True, options=f"-c role={owner}")) as connection:
            connection.execute(statement, params, prepare=False)
    except psycopg.Error as error:
        raise MigrationError(f"failed on {database} ({access.label}): {first_lines(error)}") from None
