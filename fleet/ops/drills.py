"""Restore drills: prove a tenant's latest backup by restoring it into a scratch database and checking it.

A drill restores the newest backup into `fleet_drill_<tenant>_<time>` on a chosen server (default: the
tenant's), as the tenant's own owner role (`pg_restore --role`), checks the dump's sha256, each table's rows
and checksum and the set of tables against the manifest written with the backup, and drops the scratch
database whatever happened. The result goes to `<backups>/<tenant>/drills.jsonl` beside the backups (not the
registry: it is optional, and its rows are desired state written by `pulumi up`, not operations' evidence).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from fleet.ops.backups import PG_IDENTIFIER_MAX_BYTES, BackupError, Clock, check_dump, newest_backup, read_manifest, stamp, tenant_folder, utc_now
from fleet.ops.restore import compare_counts, create_database
from fleet.postgres import catalog, drops, dumps
from fleet.postgres.access import PgToolsError
from fleet.postgres.table_digests import database_digests

DRILL_PREFIX = "fleet_drill_"
"""Every scratch database starts with this: no tenant database (`tenant_...`) or server database can."""
DRILL_LOG = "drills.jsonl"


@dataclass
class DrillResult:
    """One drill: what was restored where, what was checked, how long it took."""

    tenant: str
    ok: bool
    server: str
    backup: Optional[str] = None
    scratch_database: Optional[str] = None
    started_at: str = ""
    seconds: float = 0.0
    restore_seconds: float = 0.0
    backup_bytes: int = 0
    tables: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    scratch_dropped: bool = False

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


def scratch_database_name(tenant: str, when: datetime) -> str:
    """`fleet_drill_<tenant>_<time>` (a hash instead of the name when it would pass 63 bytes)."""
    suffix = "_" + stamp(when).lower().rstrip("z")
    stem = tenant.replace("-", "_")
    if len((DRILL_PREFIX + stem + suffix).encode()) > PG_IDENTIFIER_MAX_BYTES:
        stem = "t" + hashlib.sha256(tenant.encode()).hexdigest()[:12]
    return DRILL_PREFIX + stem + suffix


def drill_log_path(folder: Path, tenant: str) -> Path:
    """Where a tenant's drill results are appended, one JSON object a line."""
    return tenant_folder(folder, tenant) / DRILL_LOG


def drill_history(folder: Path, tenant: str) -> list[dict[str, Any]]:
    """A tenant's recorded drills, oldest first (unreadable lines are skipped)."""
    path = drill_log_path(folder, tenant)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def drill_started_at(record: dict[str, Any]) -> Optional[datetime]:
    """When a recorded drill started, as an aware time (a time without zone is read as UTC); None when the line
    carries no readable time (edited by hand)."""
    value = record.get("started_at")
    if not isinstance(value, str):
        return None
    try:
        started = datetime.fromisoformat(value)
    except ValueError:
        return None
    return started if started.tzinfo is not None else started.replace(tzinfo=timezone.utc)


def passed_drills(folder: Path, tenant: str) -> list[dict[str, Any]]:
    """A tenant's drills that passed and say when they started, oldest first."""
    return [record for record in drill_history(folder, tenant) if record.get("ok") is True and drill_started_at(record) is not None]


def last_good_drill(folder: Path, tenant: str) -> Optional[dict[str, Any]]:
    """The newest successful drill of a tenant, or None."""
    good = passed_drills(folder, tenant)
    return good[-1] if good else None


def _record(folder: Path, result: DrillResult) -> None:
    path = drill_log_path(folder, result.tenant)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result.to_mapping(), sort_keys=True) + "\n")
    path.chmod(0o600)


def _checks(manifest: Optional[dict[str, Any]], contents, restored_counts: dict[str, int], restored_digests: dict[str, str]) -> list[str]:
    """Every difference between the manifest, the dump and the restored copy."""
    if manifest is None:
        return ["no manifest beside the backup: nothing to check the restored copy against"]
    problems = []
    expected_counts = manifest.get("tables") or {}
    problems += [f"manifest vs restored: {problem}" for problem in compare_counts(expected_counts, restored_counts)]
    schema = sorted(set(contents.tables) ^ set(restored_counts))
    if schema:
        problems.append(f"schema: tables not both in the dump and the restored copy: {', '.join(schema)}")
    expected_digests = manifest.get("checksums")
    if expected_digests is None:
        expected_digests = contents.digests  # a backup from before manifests carried checksums: the dump's own
        problems += [] if contents.counts == expected_counts else ["dump vs manifest: row counts differ"]
    for table in sorted(set(expected_digests) | set(restored_digests)):
        if expected_digests.get(table) != restored_digests.get(table):
            problems.append(f"checksum of {table}: {expected_digests.get(table, 'absent')} in the manifest, {restored_digests.get(table, 'absent')} restored")
    return problems


def run_drill(
    inventory,
    tenant: str,
    *,
    server: Optional[str] = None,
    clock: Clock = utc_now,
    on_step: Optional[Callable[[str], None]] = None,
    record: bool = True,
) -> DrillResult:
    """Drill one tenant's newest backup (see the module docstring); never raises for the tenant's own failure."""
    step = on_step or (lambda _text: None)
    started, when = time.monotonic(), clock()
    entry = inventory.tenant(tenant)
    server_key = server or entry.server_key
    result = DrillResult(tenant, ok=False, server=server_key, started_at=when.astimezone(timezone.utc).isoformat())
    backup = newest_backup(inventory.backups_dir, tenant)
    if backup is None:
        result.problems.append(f"no backup of {tenant} in {inventory.backups_dir}")
        return _finish(inventory, result, started, record)
    result.backup, result.backup_bytes = str(backup.path), backup.bytes
    scratch = scratch_database_name(tenant, when)
    try:
        if server_key not in inventory.environment.servers:
            raise BackupError(f"unknown server {server_key!r}; servers: {', '.join(sorted(inventory.environment.servers))}")
        access = inventory.admin_access(server_key)
        if not catalog.role_exists(access, entry.owner):
            raise BackupError(f"{tenant}'s owner role {entry.owner} does not exist on {server_key}: the drill restores as that role, nothing broader")
        if catalog.database_exists(access, scratch):
            raise BackupError(f"scratch database {scratch} already exists on {server_key}")
        manifest = read_manifest(backup.path)
        if manifest is not None and manifest.get("tenant") not in (None, tenant):
            raise BackupError(f"{backup.path} is a backup of tenant {manifest.get('tenant')}, not {tenant}")
        step(f"checking {backup.path.name}")
        contents = check_dump(backup.path, pg_bin=inventory.pg_bin, expected_sha256=(manifest or {}).get("sha256"))
        step(f"restoring {contents.rows} rows into {scratch} on {server_key}")
        result.scratch_database = scratch
        create_database(access, scratch, entry.owner, inventory.environment.servers[server_key].locale)
        result.restore_seconds = dumps.restore(access, scratch, backup.path, owner_role=entry.owner, pg_bin=inventory.pg_bin)
        step("checking row counts, checksums and tables")
        restored_counts = catalog.table_counts(access, scratch)
        restored_digests = database_digests(access, scratch, sorted(restored_counts), role=entry.owner)
        result.tables, result.rows = len(restored_counts), sum(restored_counts.values())
        result.problems += _checks(manifest, contents, restored_counts, restored_digests)
    except (BackupError, PgToolsError, OSError) as error:
        result.problems.append(str(error))
    finally:
        if result.scratch_database is not None:
            result.scratch_dropped = _drop_scratch(inventory, server_key, scratch, result)
    result.ok = not result.problems
    return _finish(inventory, result, started, record)


def _drop_scratch(inventory, server_key: str, scratch: str, result: DrillResult) -> bool:
    """Drop the scratch database (only ever a `fleet_drill_` one); a failure to do so is itself a problem."""
    assert scratch.startswith(DRILL_PREFIX), scratch
    try:
        access = inventory.admin_access(server_key)
        drops.drop_database(access, scratch)
        if catalog.database_exists(access, scratch):
            raise PgToolsError(f"{scratch} still exists")
        return True
    except Exception as error:  # noqa: BLE001 - reported, never hidden
        result.problems.append(f"could not drop the scratch database {scratch} on {server_key}: {error}")
        return False


def _finish(inventory, result: DrillResult, started: float, record: bool) -> DrillResult:
    result.seconds = round(time.monotonic() - started, 3)
    if record:
        _record(inventory.backups_dir, result)
    return result


def drill_many(inventory, tenants, *, server: Optional[str] = None, clock: Clock = utc_now, on_done=None) -> list[DrillResult]:
    """Drill tenants one after another; one tenant's failure doesn't stop the others."""
    results = []
    for tenant in tenants:
        result = run_drill(inventory, tenant, server=server, clock=clock)
        results.append(result)
        if on_done:
            on_done(result)
    return results


def drill_age_days(record: Optional[dict[str, Any]], now: datetime) -> Optional[float]:
    """Days since a recorded drill started (None without one)."""
    started = drill_started_at(record) if record else None
    if started is None:
        return None
    return (now - started).total_seconds() / 86400
