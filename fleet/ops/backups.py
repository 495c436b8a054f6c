"""Per-tenant backups: verified `pg_dump -Fc` files with manifests, retention, and the daily job.
"""


from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from fleet.errors import FleetError
from fleet.model.derive import next_run
from fleet.model.spec import Retention
from fleet.ops import env_backup
from fleet.postgres import dumps
from fleet.postgres.access import PgCommandError, PgToolsError, ServerAccess, pg_tool
from fleet.postgres.dumps import write_private
from fleet.postgres.table_digests import EMPTY_DIGEST, TableDigest

DUMP_SUFFIX = ".dump"
MANIFEST_SUFFIX = ".json"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_BACKUP_NAME = re.compile(r"^(?P<tenant>[a-z][a-z0-9-]*)-(?P<stamp>\d{8}T\d{6}Z)\.dump$")
_DATA_HEADER = re.compile(rb"^-- Data for Name: (?P<name>.*); Type: TABLE DATA; Schema: (?P<schema>.*); Owner: .*$")
_END_OF_COPY = b"\\."
_TENANT_ROLE = re.compile(r"^tenant_[a-z0-9_]+_(app|dbo)$")
"""A tenant's login (`_app`) or owner (`_dbo`) role, as fleet.model.derive names them."""
PG_IDENTIFIER_MAX_BYTES = 63

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, UTC (the default clock; tests pass their own)."""
    return datetime.now(timezone.utc)


class BackupError(FleetError):
    """A backup, a dump file or a restore failed; the message names the tenant and what went wrong."""


# ---------------------------------------------------------------- names and files


def stamp(when: datetime) -> str:
    """`20261123T020000Z`: the UTC time in a backup's name."""
    return when.astimezone(timezone.utc).strftime(STAMP_FORMAT)


def tenant_folder(folder: Path, tenant: str) -> Path:
    """Where a tenant's backups are."""
    return Path(folder) / tenant


def backup_path(folder: Path, tenant: str, when: datetime) -> Path:
    """The file a backup taken at `when` is written to."""
    return tenant_folder(folder, tenant) / f"{tenant}-{stamp(when)}{DUMP_SUFFIX}"


def manifest_path(dump: Path) -> Path:
    """The manifest beside a dump."""
    return dump.with_suffix(MANIFEST_SUFFIX)


@dataclass(frozen=True)
class BackupFile:
    """A backup on disk."""

    path: Path
    tenant: str
    taken_at: datetime
    bytes: int

    def age(self, now: datetime) -> timedelta:
        """How old the backup is at `now`."""
        return now - self.taken_at


def parse_backup_name(path: Path) -> Optional[tuple[str, datetime]]:
    """(tenant, UTC time) of a backup file name; None for anything else (manifests, `.partial` files, strays)."""
    match = _BACKUP_NAME.match(Path(path).name)
    if not match:
        return None
    taken = datetime.strptime(match.group("stamp"), STAMP_FORMAT).replace(tzinfo=timezone.utc)
    return match.group("tenant"), taken


def list_backups(folder: Path, tenant: str) -> list[BackupFile]:
    """A tenant's backups, oldest first (only files named like backups of this tenant)."""
    directory = tenant_folder(folder, tenant)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        parsed = parse_backup_name(path)
        if parsed is None or parsed[0] != tenant or not path.is_file():
            continue
        found.append(BackupFile(path, tenant, parsed[1], path.stat().st_size))
    return sorted(found, key=lambda backup: backup.taken_at)


def newest_backup(folder: Path, tenant: str) -> Optional[BackupFile]:
    """A tenant's most recent backup, or None."""
    backups = list_backups(folder, tenant)
    return backups[-1] if backups else None


def _as_retention(retention: Retention | int) -> Retention:
    return retention if isinstance(retention, Retention) else Retention(daily=int(retention))


def _months_back(now: datetime, months: int) -> tuple[int, int]:
    """(year, month) `months - 1` months before `now`'s: the oldest month the monthly tier still covers."""
    index = now.year * 12 + (now.month - 1) - (months - 1)
    return index // 12, index % 12 + 1


def volume_archive_path(dump: Path, volume: str) -> Path:
    """Where a backup's archive of a volume goes: beside the dump, `<tenant>-<stamp>.<volume>.tar.gz`."""
    return dump.with_name(f"{dump.stem}.{volume}.tar.gz")


def archive_volume(folder: Path, archive: Path) -> dict[str, Any]:
    """tar.gz of `folder`'s content into `archive` (0600, never following links out of it); {bytes, sha256, files}."""
    descriptor = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    files = 0
    with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
            files += path.is_file() and not path.is_symlink()
    return {"file": archive.name, "bytes": archive.stat().st_size, "sha256": dumps.sha256_of(archive), "files": files}


def _remove_backup(dump: Path) -> None:
    """A backup's dump, manifest, volume archives and sealed env."""
    dump.unlink(missing_ok=True)
    manifest_path(dump).unlink(missing_ok=True)
    for archive in dump.parent.glob(f"{dump.stem}.*.tar.gz"):
        archive.unlink(missing_ok=True)
    env_backup.env_file_path(dump).unlink(missing_ok=True)


def kept(backups: list[BackupFile], retention: Retention | int, now: datetime) -> list[BackupFile]:
    """The backups the tiers keep: all of the last `daily` days, the newest of each of the last `weekly` ISO weeks
    and of the last `monthly` calendar months (counting the current one), and always the newest backup."""
    tiers = _as_retention(retention)
    if not backups:
        return []
    keep = {id(max(backups, key=lambda backup: backup.taken_at))}
    cutoff = now - timedelta(days=tiers.daily)
    keep.update(id(backup) for backup in backups if backup.taken_at >= cutoff)
    newest_of: dict[tuple, BackupFile] = {}
    for backup in backups:
        when = backup.taken_at
        periods = []
        if tiers.weekly and when >= now - timedelta(weeks=tiers.weekly):
            periods.append(("week", *when.isocalendar()[:2]))
        if tiers.monthly and (when.year, when.month) >= _months_back(now, tiers.monthly):
            periods.append(("month", when.year, when.month))
        for period in periods:
            if period not in newest_of or when > newest_of[period].taken_at:
                newest_of[period] = backup
    keep.update(id(backup) for backup in newest_of.values())
    return [backup for backup in backups if id(backup) in keep]


def expired(backups: list[BackupFile], retention: Retention | int, now: datetime) -> list[BackupFile]:
    """The backups retention removes: those no tier keeps (`kept`); never the newest one. A purge's final
    backups are not among `backups` at all (`list_backups` lists only scheduled and operator backups)."""
    keep = {id(backup) for backup in kept(backups, retention, now)}
    return [backup for backup in backups if id(backup) not in keep]


def prune(folder: Path, tenant: str, retention: Retention | int, now: datetime) -> list[Path]:
    """Delete a tenant's expired backups (and their manifests); returns the dump files removed."""
    removed = []
    for backup in expired(list_backups(folder, tenant), retention, now):
        _remove_backup(backup.path)
        removed.append(backup.path)
    return removed


# ---------------------------------------------------------------- reading a dump


def dump_row_counts(path: Path, *, pg_bin: Optional[str] = None, timeout: Optional[float] = None) -> dict[str, int]:
    """Rows per table (`schema.table`) that a custom-format dump holds, read without a server."""
    return dump_table_data(path, pg_bin=pg_bin, timeout=timeout)[0]


def dump_table_data(path: Path, *, pg_bin: Optional[str] = None, timeout: Optional[float] = None) -> tuple[dict[str, int], dict[str, str]]:
    """(rows, digest) per table (`schema.table`) of a custom-format dump, read without a server.

    Streams `pg_restore --data-only` and reads the lines of each COPY block: every data block is
    decompressed, so a truncated or damaged dump fails here. The digests are fleet.postgres.table_digests'.
    (Helper to move into fleet.postgres.)
    """
    command = [str(pg_tool("pg_restore", pg_bin)), "--data-only", "--file=-", str(path)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    counts: dict[str, int] = {}
    digests: dict[str, TableDigest] = {}
    started = time.monotonic()
    with subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        table: Optional[str] = None
        in_copy = False
        for line in process.stdout:
            line = line.rstrip(b"\n")
            if in_copy:
                if line == _END_OF_COPY:
                    in_copy = False
                elif table is not None:
                    counts[table] += 1
                    digests[table].add(line)
                continue
            header = _DATA_HEADER.match(line)
            if header:
                table = f"{header.group('schema').decode(errors='replace')}.{header.group('name').decode(errors='replace')}"
                counts.setdefault(table, 0)
                digests.setdefault(table, TableDigest())
            elif line.startswith(b"COPY ") and line.endswith(b" FROM stdin;"):
                in_copy = True
            if timeout is not None and time.monotonic() - started > timeout:
                process.kill()
                raise BackupError(f"reading {path} took longer than {timeout:.0f}s")
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        code = process.wait()
    if code != 0 or in_copy:
        raise PgCommandError(f"pg_restore (data read) of {path}", code, stderr or "data ended inside a table's rows")
    return counts, {name: digest.hex for name, digest in digests.items()}


@dataclass(frozen=True)
class DumpContents:
    """What a verified dump holds: its tables and the rows of each."""

    tables: list[str]
    """Every table the dump defines, `schema.table`."""
    counts: dict[str, int]
    """Rows per table (0 for a table dumped without data)."""
    owners: frozenset[str] = frozenset()
    """Roles that owned the tables when they were dumped."""
    digests: dict[str, str] = field(default_factory=dict)
    """Order-independent checksum of each table's rows (fleet.postgres.table_digests; an empty table's is 0...0)."""

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def check_dump(path: Path, *, pg_bin: Optional[str] = None, expected_sha256: Optional[str] = None) -> DumpContents:
    """Verify a dump is readable and return its contents; BackupError when it is not.

    Reads the table of contents (`pg_restore --list`), then every data block. With `expected_sha256`
    (from the manifest) a file changed since it was written is refused too.
    """
    path = Path(path)
    try:
        if expected_sha256 is not None and dumps.sha256_of(path) != expected_sha256:
            raise BackupError(f"{path}: content differs from the sha256 recorded when it was written (damaged or replaced)")
        tables = dumps.verify_dump(path, pg_bin=pg_bin, full=False)
        counts, digests = dump_table_data(path, pg_bin=pg_bin)
    except (PgToolsError, OSError) as error:
        raise BackupError(f"{path} is not a readable dump: {error}") from None
    names = [table.qualified for table in tables]
    return DumpContents(
        names, {name: counts.get(name, 0) for name in names}, frozenset(table.owner for table in tables if table.owner),
        {name: digests.get(name, EMPTY_DIGEST) for name in names},
    )


def read_manifest(dump: Path) -> Optional[dict[str, Any]]:
    """The manifest written beside a dump, or None when there is none (a file copied in by hand)."""
    try:
        return json.loads(manifest_path(dump).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- taking backups


@dataclass(frozen=True)
class BackupTarget:
    """What one backup needs: whose, which database, how to log in, and how long backups are kept."""

    tenant: str
    database: str
    access: ServerAccess
    retention: Retention
    server_key: str = ""
    volumes: dict[str, str] = field(default_factory=dict)
    """Volume folders to archive beside the dump, by name."""
    app_env: Optional[dict[str, list[str]]] = None
    """The tenant's generated app env (service -> `NAME=value` lines), sealed beside the dump when `env_recipient` is set."""
    env_recipient: Optional[str] = None
    """`fleet:backups.env_recipient`: the public key the env is sealed to; None: backups carry no env."""

    @property
    def retention_days(self) -> int:
        """The daily tier."""
        return self.retention.daily

    @classmethod
    def from_mapping(cls, data: dict[str, Any], password: str, retention_days: Optional[int] = None, weeks: int = 0, months: int = 0) -> "BackupTarget":
        """From the scheduled job's `FLEET_BACKUP_TARGET` (JSON, no secrets), its password and the tenant's retention tiers."""
        if not isinstance(data, dict):
            raise BackupError("the backup target must be a JSON object")
        if retention_days is None:
            retention_days = data.get("retention_days")
        missing = [key for key in ("tenant", "database", "host", "user") if not data.get(key)] + (["retention_days"] if retention_days is None else [])
        if missing:
            raise BackupError(f"the backup target lacks {', '.join(missing)}")
        assert retention_days is not None  # a missing retention_days is in `missing`
        access = ServerAccess(str(data["host"]), int(data.get("port") or 5432), str(data["user"]), password, str(data.get("sslmode") or "prefer"))
        retention = Retention(daily=int(retention_days), weekly=weeks, monthly=months)
        volumes = {str(name): str(path) for name, path in (data.get("volumes") or {}).items()}
        recipient = str(data["env_recipient"]) if data.get("env_recipient") else None
        return cls(str(data["tenant"]), str(data["database"]), access, retention, str(data.get("server") or ""), volumes, env_recipient=recipient)


@dataclass
class BackupResult:
    """The outcome of one tenant's backup."""

    tenant: str
    ok: bool
    server: str = ""
    path: Optional[str] = None
    bytes: int = 0
    seconds: float = 0.0
    tables: int = 0
    rows: int = 0
    pruned: list[str] = field(default_factory=list)
    error: Optional[str] = None

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


def backup_target(inventory, tenant: str) -> BackupTarget:
    """A tenant's backup target from the inventory: its database, as the server's admin (suspended tenants too), and its
    app env when backups seal it and the secret source knows it (the deployed stack's `app_envs` output)."""
    entry = inventory.tenant(tenant)
    recipient = inventory.environment.backups.env_recipient
    return BackupTarget(
        entry.name, entry.database, inventory.admin_access(entry.server_key), entry.retention, entry.server_key, dict(entry.volumes),
        app_env=inventory.app_env(tenant) if recipient else None, env_recipient=recipient,
    )


def backup_one(
    target: BackupTarget,
    folder: Path,
    *,
    clock: Clock = utc_now,
    pg_bin: Optional[str] = None,
    retention_days: Optional[int] = None,
) -> BackupResult:
    """Dump one tenant's database, verify the file, write its manifest, then apply retention.

    Never raises for the tenant's own failure: the result says what went wrong (the dump file, if
    any, is removed, and nothing is pruned).
    """
    started = time.monotonic()
    taken_at = clock()
    path = backup_path(Path(folder), target.tenant, taken_at)
    result = BackupResult(target.tenant, ok=False, server=target.server_key)
    try:
        if path.exists():
            raise BackupError(f"{path} already exists (two backups in the same second?)")
        written = dumps.dump(target.access, target.database, path, pg_bin=pg_bin)
        try:
            contents = check_dump(path, pg_bin=pg_bin)
        except BackupError:
            path.unlink(missing_ok=True)  # an unreadable dump is no backup: don't let it count as the newest
            raise
        try:
            volumes = {}
            for name, volume_folder in sorted(target.volumes.items()):
                if not Path(volume_folder).is_dir():
                    volumes[name] = {"absent": True, "folder": volume_folder}
                    continue
                volumes[name] = {"folder": volume_folder, **archive_volume(Path(volume_folder), volume_archive_path(path, name))}
        except OSError as error:
            _remove_backup(path)  # a backup is the dump and all its volumes, or nothing
            raise BackupError(f"could not archive volume {name} ({volume_folder}): {error}") from None
        env_entry: Optional[dict[str, Any]] = None
        if target.env_recipient:
            try:
                env_entry = env_backup.write_sealed_env(path, target.app_env, target.env_recipient) if target.app_env else {"absent": True}
            except (OSError, env_backup.EnvBackupError) as error:
                _remove_backup(path)
                raise BackupError(f"could not seal the app env beside {path.name}: {error}") from None
        manifest = {
            "tenant": target.tenant,
            "database": target.database,
            "server": target.server_key,
            "host": target.access.host,
            "port": target.access.port,
            "taken_at": taken_at.astimezone(timezone.utc).isoformat(),
            "bytes": written.bytes,
            "sha256": written.sha256,
            "dump_seconds": written.seconds,
            "tables": contents.counts,
            "checksums": contents.digests,
            **({"volumes": volumes} if volumes else {}),
            **({"env": env_entry} if env_entry is not None else {}),
        }
        try:
            write_private(manifest_path(path), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        except OSError:
            _remove_backup(path)  # a backup is the dump and its manifest, or nothing
            raise
        tiers = target.retention if retention_days is None else Retention(daily=retention_days)
        try:
            pruned = prune(Path(folder), target.tenant, tiers, now=taken_at)
        except OSError as error:
            raise BackupError(f"backup {path.name} written and verified, but retention failed: {error}") from None
    except (BackupError, PgToolsError, OSError) as error:
        result.error = str(error)
        result.seconds = round(time.monotonic() - started, 3)
        return result
    result.ok = True
    result.path = str(path)
    result.bytes = written.bytes
    result.tables = len(contents.tables)
    result.rows = contents.rows
    result.pruned = [str(removed) for removed in pruned]
    result.seconds = round(time.monotonic() - started, 3)
    return result


def backup_many(
    inventory,
    tenants: Iterable[str],
    *,
    clock: Clock = utc_now,
    on_start: Optional[Callable[[str], None]] = None,
    on_done: Optional[Callable[[BackupResult], None]] = None,
) -> list[BackupResult]:
    """Back up tenants one after another; one tenant's failure (even a missing password) doesn't stop the others."""
    results = []
    for tenant in tenants:
        if on_start:
            on_start(tenant)
        try:
            target = backup_target(inventory, tenant)
        except Exception as error:  # noqa: BLE001 - a FleetError (no password) fails this tenant only
            result = BackupResult(tenant, ok=False, server=inventory.tenant(tenant).server_key, error=str(error))
        else:
            result = backup_one(target, inventory.backups_dir, clock=clock, pg_bin=inventory.pg_bin)
        results.append(result)
        if on_done:
            on_done(result)
    return results


def run_daily(
    job: Callable[[], bool],
    daily_at: str,
    *,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    runs: Optional[int] = None,
) -> Iterator[bool]:
    """Run `job` every day at `daily_at` (UTC), forever or `runs` times; yields each run's success."""
    done = 0
    while runs is None or done < runs:
        wait = (next_run(clock(), daily_at) - clock()).total_seconds()
        sleep(max(0.0, wait))
        yield job()
        done += 1
