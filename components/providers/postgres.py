"""A tenant's database placement (and its move between servers), and the purge: PostgreSQL done by the fleet itself.

`DatabasePlacement` records which server holds the tenant's database; changing its server moves the data
(block, dump, restore, verify, switch; the source is reopened on any failure). `TenantPurge` alone drops a
tenant's database and role, after a verified final backup (docs/architecture.md, step by step).
"""

from __future__ import annotations

import concurrent.futures
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import psycopg
import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.providers import (
    RESOURCE_NAME_KEY,
    FleetDynamicResource,
    failure_context,
    is_unknown,
    resource_label,
)
from components.providers.live_move import move_live
from components.providers.move_records import (
    BLOCKED_MARKER,
    MOVED_MARKER,
    MoveError,
    MoveReport,
    blocked_comment,
    finish_verification,
    moved_comment,
    parse_blocked_comment,
    parse_moved_comment,
)
from components.providers.move_records import iso as _iso
from components.providers.move_records import utc_now as _utc_now
from fleet.postgres import catalog, drops, dumps, privileges, replication, sessions
from fleet.postgres.access import (
    PgToolsError,
    ServerAccess,
    check_tool_versions,
    system_identifier,
    tool_major_version,
)

__all__ = [
    "DatabasePlacement",
    "DatabasePlacementArgs",
    "DatabasePlacementProvider",
    "TenantPurge",
    "TenantPurgeArgs",
    "TenantPurgeProvider",
    "MoveError",
    "MoveReport",
    "PurgeReport",
    "MOVED_MARKER",
    "BLOCKED_MARKER",
    "move_database",
    "declared_dump_reason",
    "MOVE_METHODS",
    "moved_comment",
    "parse_moved_comment",
    "blocked_comment",
    "parse_blocked_comment",
    "reopen_interrupted",
    "purge_tenant",
    "final_backup_name",
]

_ADMIN_FIELDS = ("host", "port", "admin_user", "sslmode")


# ---------------------------------------------------------------- the move


def reopen_interrupted(access: ServerAccess, database: str) -> Optional[dict[str, Any]]:
    """Reopen a database a move or purge left blocked when its process died (connection limit, the role's
    LOGIN and the COMMENT as they were before); returns what the marker said, or None when there was none.

    For operators and status commands, and run by the next move of the same database.
    """
    marker = parse_blocked_comment(catalog.database_comment(access, database))
    if marker is not None:
        sessions.reopen(access, marker["state"])
    return marker


def move_database(
    source: ServerAccess,
    target: ServerAccess,
    database: str,
    role: str,
    *,
    source_key: str,
    target_key: str,
    owner: Optional[str] = None,
    pg_bin: Optional[str] = None,
    checksum_max_bytes: int = catalog.CHECKSUM_MAX_BYTES,
    work_dir: Optional[str] = None,
    terminate_timeout: float = 30.0,
    on_phase: Optional[Callable[[str], None]] = None,
    method: str = "auto",
    dump_reason: Optional[str] = None,
) -> MoveReport:
    """Copy `database` from `source` to the empty database of the same name on `target`, verified.

    `method`: `logical` copies while the tenant keeps writing and blocks the source only for the cutover
    (components/providers/live_move.py); `dump` blocks the source from the first write-refusal to the end;
    `auto` (the default) takes `logical` when both servers and the database allow it, else `dump` with the
    reason in `report.method_reason`. `dump_reason` (e.g. a server's config says it can't replicate) makes
    `auto` take `dump` for that reason without asking the servers.

    `role` is the app's login role (blocked on the source meanwhile); everything restored is owned by `owner`
    (`role` for a tenant placed before the owner/app split).

    Raises MoveError when anything fails; by then the source is reopened as it was and the target emptied
    again (the error says if either of those failed too). `on_phase(name)` is called as each phase starts
    (tests use it to inject failures and to observe the blocked window).
    """
    report = MoveReport(database, source_key, target_key, _iso(_utc_now()))
    owner = owner or role
    phase_started = time.monotonic()

    def phase(name: str) -> None:
        nonlocal phase_started
        now = time.monotonic()
        if report.phases:
            last = next(reversed(report.phases))
            report.phases[last] = round(now - phase_started, 3)
        report.phases[name] = 0.0
        phase_started = now
        if on_phase is not None:
            on_phase(name)

    def end_phases() -> None:
        if report.phases:
            last = next(reversed(report.phases))
            report.phases[last] = round(time.monotonic() - phase_started, 3)

    where = f"{database!r} from {source_key} ({source.label}) to {target_key} ({target.label})"

    # 1. Preflight: nothing is changed until every check has passed, so a failure here costs nothing.
    phase("preflight")
    try:
        _preflight_servers(source, target, source_key, target_key)
        if not catalog.database_exists(target, database):
            raise MoveError(f"target database {database!r} does not exist on {target_key} ({target.label}); its Database resource creates it before the move")
        for needed, what in ((owner, "owner role"), (role, "login role")):
            if not catalog.role_exists(target, needed):
                raise MoveError(f"{what} {needed!r} does not exist on {target_key} ({target.label}); its Role resource creates it before the move")
        if not catalog.database_exists(source, database):
            raise MoveError(f"source database {database!r} does not exist on {source_key} ({source.label}): nothing to move")
        tools = check_tool_versions(pg_bin, source, target)
        # An earlier live move that died leaves its subscription, slot and publication: remove them first
        # (an orphaned slot would hold the source's WAL forever), then whatever it copied to the target.
        live_leftovers = replication.find_leftovers(source, target, database)
        receiving = replication.receiving_from(target, database) == source_key
        if live_leftovers.any or receiving:
            not_removed = replication.teardown(source, target, database)
            if not_removed:
                raise MoveError("an earlier live move left replication objects that could not be removed: " + "; ".join(not_removed))
            left = drops.drop_owned_objects(target, database, owner, keep_extensions=catalog.extensions(target, database))
            if not left:
                replication.unmark_receiving(target, database)
            found = [kind for kind in ("publication", "slot", "subscription") if getattr(live_leftovers, kind)]
            report.recovered = (
                f"removed an earlier live move's {', '.join(found) + ' and ' if found else ''}unverified copy on {target_key}"
                + (f" (still there: {', '.join(left[:5])})" if left else "")
            )
        interrupted = reopen_interrupted(source, database)
        if interrupted is not None:
            # An earlier attempt died while the source was blocked. The app never used the target (that
            # happens only after a verified move), so whatever that attempt restored there can go.
            earlier = f"; {report.recovered}" if report.recovered else ""
            report.recovered = f"reopened the source, blocked for {interrupted['purpose']} since {interrupted['at']}{earlier}"
            if interrupted["purpose"] == f"move to {target_key}":
                drops.drop_owned_objects(target, database, owner, keep_extensions=catalog.extensions(target, database))
                report.recovered += f", and emptied {target_key} of its unverified copy"
        marker = parse_moved_comment(catalog.database_comment(source, database))
        leftovers = catalog.user_objects(target, database)
        if marker is not None:
            if marker["server"] == target_key and leftovers:
                return _adopt(report, source, target, database, role, checksum_max_bytes, phase, end_phases)
            raise MoveError(
                f"source database {database!r} on {source_key} is marked as already moved to {marker['server']} "
                f"at {marker['at']}; the state and the servers disagree: inspect both before moving it again"
            )
        if leftovers:
            raise MoveError(
                f"target database {database!r} on {target_key} ({target.label}) is not empty "
                f"({', '.join(leftovers[:5])}{', ...' if len(leftovers) > 5 else ''}); a move only restores into an empty database"
            )
        pending = sessions.prepared_transactions(source, database)
        if pending:
            raise MoveError(f"source database {database!r} has prepared transactions pending ({', '.join(pending)}); commit or roll them back first")
        target_extensions = catalog.extensions(target, database)
        report.method, report.method_reason = _choose_method(method, dump_reason, source, target, database)
    except PgToolsError as error:
        raise MoveError(f"move of {where} refused before anything changed: {error}") from error
    except MoveError as error:
        raise MoveError(f"move of {where} refused before anything changed: {error}") from error

    if report.method == "logical":
        return move_live(
            report, source, target, database, role, owner=owner, tools=tools, where=where, phase=phase, end_phases=end_phases,
            target_extensions=target_extensions, checksum_max_bytes=checksum_max_bytes, terminate_timeout=terminate_timeout, work_dir=work_dir,
        )

    # 2.-5. From here on the source is blocked: every failure reopens it and empties the target.
    phase("block")
    blocked_at = time.monotonic()
    try:
        block = sessions.block_connections(
            source, database, role, comment=lambda state: blocked_comment(f"move to {target_key}", _utc_now(), state)
        )
    except PgToolsError as error:
        raise MoveError(f"move of {where} failed while blocking the source: {error}") from error
    restored = False
    try:
        phase("terminate")
        report.sessions_ended = sessions.terminate_sessions(source, database, timeout=terminate_timeout)
        pending = sessions.prepared_transactions(source, database)
        if pending:
            raise MoveError(f"prepared transactions appeared on the source ({', '.join(pending)})")

        phase("copy")
        # The source is frozen now: collect its facts while it is being dumped and restored. On a failure
        # the pool is not waited for (the reopen must not wait on a read-only scan; it ends on its own).
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="source-facts")
        try:
            source_facts_future = pool.submit(catalog.collect_facts, source, database, max_checksum_bytes=checksum_max_bytes)
            with tempfile.TemporaryDirectory(prefix="tenant-fleet-move-", dir=work_dir) as scratch:
                # Uncompressed: the file lives for seconds, and compressing would only lengthen the blocked window.
                dump_file = dumps.dump(source, database, Path(scratch) / f"{database}.dump", pg_bin=tools, compress=0)
                report.dump_bytes = dump_file.bytes
                restored = True  # from its first statement on, the target may hold something of ours
                dumps.restore(target, database, dump_file.path, owner, pg_bin=tools)
                if owner != role:
                    # The restore carries no privileges: the app role's come from the model, as on the source.
                    privileges.apply_tenant_access(target, database, owner, role)
            source_facts = source_facts_future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

        phase("verify")
        target_facts = catalog.collect_facts(target, database, checksum_tables=list(source_facts.checksums))
        problems = catalog.compare_facts(source_facts, target_facts, source_key, target_key)
        finish_verification(report, problems, source_facts, source, database, "the move")

        phase("finish")
        catalog.set_database_comment(source, database, moved_comment(target_key, target, _utc_now(), block.comment))
    except BaseException as error:  # noqa: BLE001 - whatever happened, put the source back
        end_phases()
        raise _undo(error, where, source, target, database, owner, block, restored, target_extensions) from error
    end_phases()
    report.blocked_seconds = round(time.monotonic() - blocked_at, 3)
    report.copy_seconds = report.phases.get("copy", 0.0)
    return report


MOVE_METHODS = ("auto", "logical", "dump")
"""What `move_database(method=...)` takes."""


def _choose_method(method: str, dump_reason: Optional[str], source: ServerAccess, target: ServerAccess, database: str) -> tuple[str, str]:
    """(`logical` or `dump`, why in one line); `logical` asked for but impossible refuses the move, naming why."""
    if method not in MOVE_METHODS:
        raise MoveError(f"unknown move method {method!r}: one of {', '.join(MOVE_METHODS)}")
    if method == "dump":
        return "dump", dump_reason or "dump and restore asked for"
    if method == "auto" and dump_reason:
        return "dump", dump_reason
    blockers = replication.server_blockers(source, target) + replication.database_blockers(source, database)
    if blockers:
        if method == "logical":
            raise MoveError("a live move (logical replication) is not possible: " + "; ".join(blockers))
        return "dump", "; ".join(blockers)
    return "logical", "both servers allow logical replication"


def declared_dump_reason(servers: Mapping[str, Mapping[str, Any]], source_key: str, target_key: str) -> Optional[str]:
    """Why the stack config rules out a live move between two servers (`logical_replication: false`), or None."""
    declined = [key for key in (source_key, target_key) if (servers.get(key) or {}).get("logical_replication") is False]
    if not declined:
        return None
    return " and ".join(f"server {key}" for key in declined) + " declare" + ("s" if len(declined) == 1 else "") + " logical_replication: false"


def _preflight_servers(source: ServerAccess, target: ServerAccess, source_key: str, target_key: str) -> None:
    if source_key == target_key:
        raise MoveError("source and target are the same server key")
    same_address = (source.host, int(source.port)) == (target.host, int(target.port))
    source_id, target_id = system_identifier(source), system_identifier(target)
    if same_address or (source_id is not None and source_id == target_id):
        raise MoveError(f"{source_key} and {target_key} are the same PostgreSQL cluster; a move needs two")


def _adopt(report: MoveReport, source, target, database, role, checksum_max_bytes, phase, end_phases) -> MoveReport:
    """An earlier move finished on the servers but not in the state: verify it and take it as done."""
    phase("verify")
    source_facts = catalog.collect_facts(source, database, max_checksum_bytes=checksum_max_bytes)
    target_facts = catalog.collect_facts(target, database, checksum_tables=list(source_facts.checksums))
    problems = catalog.compare_facts(source_facts, target_facts, report.source, report.target)
    if problems:
        raise MoveError(
            "the source is marked as moved to the target, but the copy there differs: " + "; ".join(problems[:10])
        )
    sessions.block_connections(source, database, role)  # idempotent: make sure it is still blocked
    end_phases()
    report.adopted = True
    report.tables, report.rows, report.checksummed_tables = len(source_facts.counts), source_facts.rows, len(source_facts.checksums)
    return report


def _undo(error, where, source, target, database, role, block, restored, target_extensions) -> MoveError:
    """Reopen the source (first: the tenant is down meanwhile), then empty the target; describe all of it."""
    reopened, clean, notes = True, True, []
    try:
        sessions.reopen(source, block)
    except Exception as reopen_error:  # noqa: BLE001
        reopened = False
        notes.append(f"COULD NOT REOPEN THE SOURCE ({reopen_error}); it is still blocked: run the move again or reopen it by hand")
    if restored:
        try:
            left = drops.drop_owned_objects(target, database, role, keep_extensions=target_extensions)
            if left:
                clean = False
                notes.append(f"the target still holds {', '.join(left[:5])}")
        except Exception as clean_error:  # noqa: BLE001
            clean = False
            notes.append(f"could not empty the target ({clean_error})")
    cause = str(error) or type(error).__name__
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        cause = f"interrupted ({type(error).__name__})"
    outcome = "source reopened" if reopened else "source NOT reopened"
    outcome += ", target emptied" if restored and clean else (", target untouched" if not restored else ", target NOT emptied")
    message = f"move of {where} failed: {cause}; {outcome}; the app keeps using the source"
    if notes:
        message += "; " + "; ".join(notes)
    return MoveError(message, reopened, clean)


# ---------------------------------------------------------------- shared by both providers


def _servers(value: Any) -> dict[str, dict[str, Any]]:
    return {str(key): dict(entry) for key, entry in (value or {}).items()}


def _access(props: Mapping[str, Any], key: str) -> ServerAccess:
    servers = _servers(props.get("servers"))
    if key not in servers:
        raise LookupError(f"server {key!r} is not in `servers` (fleet:servers): known {', '.join(sorted(servers)) or 'none'}")
    return ServerAccess.from_mapping(servers[key])


def _admin_coordinates(props: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The current server's admin coordinates without the password (what the state shows)."""
    servers = props.get("servers")
    if not isinstance(servers, Mapping) or props.get("server") not in servers:
        return None
    entry = servers[props["server"]]
    return {key: (int(entry.get(key) or 5432) if key == "port" else entry.get(key)) for key in _ADMIN_FIELDS}


def _check_common(news: Mapping[str, Any], failures: list[CheckFailure]) -> None:
    for key in ("tenant", "database", "role", "server"):
        value = news.get(key)
        if is_unknown(value):
            continue
        if not isinstance(value, str) or not value or len(value.encode()) > 63:
            failures.append(CheckFailure(key, f"{key} must be a non-empty name of at most 63 bytes (got {value!r})"))
    servers, server = news.get("servers"), news.get("server")
    if not is_unknown(servers) and not is_unknown(server) and (not isinstance(servers, Mapping) or server not in servers):
        known = ", ".join(sorted(servers)) if isinstance(servers, Mapping) else "none"
        failures.append(CheckFailure("servers", f"servers has no entry for server {server!r} (known: {known})"))


# ---------------------------------------------------------------- DatabasePlacement


@dataclass(frozen=True)
class DatabasePlacementArgs:
    """Inputs of DatabasePlacement."""

    tenant: pulumi.Input[str]
    """Tenant name (for messages)."""
    database: pulumi.Input[str]
    """The tenant's database name, the same on every server; pass the target `Database.name` so the placement comes after it."""
    role: pulumi.Input[str]
    """The tenant's login role (blocked while a move copies the data)."""
    server: pulumi.Input[str]
    """Key of the server the database is on (`database.server`); changing it MOVES the data (an update, never a replacement)."""
    host: pulumi.Input[str]
    """Address the app uses for that server (`app_host` or `host`); an output, so dependents switch only after a move."""
    port: pulumi.Input[int]
    """Port the app uses for that server."""
    servers: pulumi.Input[dict[str, Any]]
    """Admin access per server key: {host, port, admin_user, admin_password, sslmode}. Secret. Both the old and
    the new server's entries are read from the current config at move time (so a rotated admin password is used)."""
    pg_bin: pulumi.Input[Optional[str]] = None
    """Folder with pg_dump/pg_restore (Backups.pg_bin); default: found on the machine running `pulumi up`."""
    checksum_max_bytes: pulumi.Input[int] = catalog.CHECKSUM_MAX_BYTES
    """Tables up to this size get a content checksum in the move's verification (all get exact row counts)."""
    owner: pulumi.Input[Optional[str]] = None
    """The tenant's owner role: owns everything a move restores. None (tenants placed before the owner/app split): `role`."""


class DatabasePlacementProvider(ResourceProvider):
    """Records where a tenant's database lives; an update to another server moves it (see the module docstring)."""

    _TRACKED = ("tenant", "database", "role", "owner", "server", "host", "port")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        _check_common(news, failures)
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A server change is an update (the move), never a replacement: a replacement would create a new
        # placement (which copies nothing) and delete the old one. The admin password and other servers'
        # entries are not compared: rotating a password must not look like a change to every tenant.
        changed = [key for key in self._TRACKED if is_unknown(news.get(key)) or _normal(key, olds.get(key)) != _normal(key, news.get(key))]
        if is_unknown(news.get("servers")) or _admin_coordinates(news) != olds.get("admin"):
            changed.append("admin")
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with failure_context(resource_label("DatabasePlacement", props), f"create on {props.get('server')!r}"):
            current = _access(props, props["server"])
            database = props["database"]
            if not catalog.database_exists(current, database):
                raise LookupError(f"database {database!r} does not exist on {props['server']} ({current.label})")
            if not catalog.user_objects(current, database, limit=1):
                self._refuse_if_data_elsewhere(props, database)
            outs = self._outputs(props, moves=[], moved_at=None)
        return CreateResult(f"{props['tenant']}:{database}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old_server, new_server = olds.get("server"), news["server"]
        action = f"move from {old_server!r} to {new_server!r}" if old_server != new_server else "update"
        with failure_context(resource_label("DatabasePlacement", news), action):
            for key in ("database", "role"):
                if olds.get(key) != news.get(key):
                    raise ValueError(f"{key} cannot change ({olds.get(key)!r} -> {news.get(key)!r}): it names the tenant's data on every server")
            moves = list(olds.get("moves") or [])
            moved_at = olds.get("moved_at")
            if old_server != new_server:
                if old_server not in _servers(news.get("servers")):
                    raise LookupError(
                        f"server {old_server!r}, which holds the database now, is no longer in fleet:servers; "
                        "put its entry back (the move reads it) and run again"
                    )
                report = move_database(
                    _access(news, old_server),
                    _access(news, new_server),
                    news["database"],
                    news["role"],
                    source_key=old_server,
                    target_key=new_server,
                    owner=news.get("owner") or None,
                    pg_bin=news.get("pg_bin") or None,
                    checksum_max_bytes=int(news.get("checksum_max_bytes") or catalog.CHECKSUM_MAX_BYTES),
                    dump_reason=declared_dump_reason(_servers(news.get("servers")), old_server, new_server),
                )
                moves.append(report.summary())
                moved_at = report.started_at
            return UpdateResult(self._outputs(news, moves=moves, moved_at=moved_at))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # The placement is a record, not a server object: refresh keeps it as it is.
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Deliberately nothing: the databases stay where they are (removing a tenant never drops data).
        return None

    @staticmethod
    def _outputs(props: Mapping[str, Any], *, moves: list, moved_at: Optional[str]) -> dict[str, Any]:
        return {
            RESOURCE_NAME_KEY: props.get(RESOURCE_NAME_KEY),
            "tenant": props["tenant"],
            "database": props["database"],
            "role": props["role"],
            "owner": props.get("owner"),
            "server": props["server"],
            "host": props["host"],
            "port": int(props["port"]),
            "admin": _admin_coordinates(props),
            "moved_at": moved_at,
            "moves": moves,
        }

    @staticmethod
    def _refuse_if_data_elsewhere(props: Mapping[str, Any], database: str) -> None:
        """A new placement on an empty database while another server holds the tenant's data would switch
        the app to an empty database (placement introduced in the same `up` as a server change). Refuse.
        Unreachable servers are skipped: a new tenant must not depend on every server being up."""
        for key, entry in sorted(_servers(props.get("servers")).items()):
            if key == props["server"]:
                continue
            other = ServerAccess.from_mapping({**entry, "connect_timeout": 5})
            try:
                if not catalog.database_exists(other, database):
                    continue
                if parse_moved_comment(catalog.database_comment(other, database)):
                    continue
                found = catalog.user_objects(other, database, limit=3)
            except PgToolsError:
                continue
            if found:
                raise RuntimeError(
                    f"database {database!r} is empty on {props['server']} but holds data on {key} ({', '.join(found)}); "
                    f"deploy once with database.server: {key} so the placement records it, then change the server to move it"
                )


def _normal(key: str, value: Any) -> Any:
    if key == "port" and value is not None and not is_unknown(value):
        return int(value)
    return value


class DatabasePlacement(FleetDynamicResource, module="postgres", name="DatabasePlacement"):
    """Where a tenant's database lives; changing `server` moves the data, verified, before anything depends on it."""

    tenant: pulumi.Output[str]
    database: pulumi.Output[str]
    role: pulumi.Output[str]
    server: pulumi.Output[str]
    """Key of the server that holds the tenant's data."""
    host: pulumi.Output[str]
    """Address the app connects to."""
    port: pulumi.Output[int]
    """Port the app connects to."""
    admin: pulumi.Output[dict]
    """Admin coordinates of that server (no password)."""
    moved_at: pulumi.Output[Optional[str]]
    """When the last move started (UTC), or None."""
    moves: pulumi.Output[list]
    """Every move's report (source, target, rows, phases, blocked_seconds)."""

    def __init__(self, name: str, args: DatabasePlacementArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            RESOURCE_NAME_KEY: name,
            "tenant": args.tenant,
            "database": args.database,
            "role": args.role,
            "server": args.server,
            "host": args.host,
            "port": args.port,
            "servers": pulumi.Output.secret(args.servers),
            "pg_bin": args.pg_bin,
            "checksum_max_bytes": args.checksum_max_bytes,
            "owner": args.owner,
            "admin": None,
            "moved_at": None,
            "moves": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["servers"]))
        super().__init__(DatabasePlacementProvider(), name, props, opts)


# ---------------------------------------------------------------- the purge


@dataclass
class PurgeReport:
    """What a purge backed up and dropped."""

    tenant: str
    database: str
    role: str
    purged_at: str
    backups: list[dict[str, Any]] = field(default_factory=list)
    """Per server: server, path, bytes, sha256, tables, rows (or `absent` when there was nothing to back up)."""
    dropped_databases: list[str] = field(default_factory=list)
    """Server keys the database was dropped on."""
    dropped_roles: list[str] = field(default_factory=list)
    """Server keys the login role was dropped on."""
    dropped_owner_roles: list[str] = field(default_factory=list)
    """Server keys the owner role was dropped on."""
    dropped_jobs_roles: list[str] = field(default_factory=list)
    """Server keys the jobs' role was dropped on (plans with container jobs)."""
    kept: list[str] = field(default_factory=list)
    """Things deliberately left alone, with why."""


def final_backup_name(tenant: str, at: datetime, server: Optional[str] = None) -> str:
    """`<tenant>-final-<UTC>.dump` for the current server, `<tenant>-final-<server>-<UTC>.dump` for a former one."""
    stamp = at.strftime("%Y%m%dT%H%M%SZ")
    return f"{tenant}-final-{server}-{stamp}.dump" if server else f"{tenant}-final-{stamp}.dump"


def purge_tenant(
    servers: Mapping[str, ServerAccess],
    current_server: str,
    tenant: str,
    database: str,
    role: str,
    backup_dir: str | Path,
    *,
    owner: Optional[str] = None,
    jobs_role: Optional[str] = None,
    reason: str = "",
    pg_bin: Optional[str] = None,
    on_phase: Optional[Callable[[str], None]] = None,
) -> PurgeReport:
    """Final backups first (blocked, dumped, read back end to end), then drops; no drop unless every backup is good.

    Former copies (databases named `database` on other servers that carry the moved-away marker) are
    backed up and dropped too; a same-named database without the marker is not ours and is left alone.
    Every other server must be reachable to check for such copies, or nothing happens. The login `role` is
    dropped, then the `owner` role (tenants created before the owner/app split have none).
    """
    at = _utc_now()
    report = PurgeReport(tenant, database, role, _iso(at))
    folder = Path(backup_dir) / tenant
    if current_server not in servers:
        raise LookupError(f"server {current_server!r} is not in fleet:servers")

    def phase(name: str) -> None:
        if on_phase is not None:
            on_phase(name)

    # Which copies exist: the current server's, and marked former copies elsewhere.
    phase("survey")
    copies: list[tuple[str, ServerAccess, bool]] = []
    for key in [current_server, *sorted(key for key in servers if key != current_server)]:
        access = servers[key]
        try:
            exists = catalog.database_exists(access, database)
            comment = catalog.database_comment(access, database) if exists else None
        except PgToolsError as error:
            raise PgToolsError(f"cannot check server {key} ({access.label}) for the tenant's database: {error}; nothing was dropped") from error
        if key == current_server:
            if exists:
                copies.append((key, access, True))
            else:
                report.backups.append({"server": key, "absent": True})
        elif exists:
            if parse_moved_comment(comment):
                copies.append((key, access, False))
            else:
                report.kept.append(f"{key}: database {database!r} without tenant-fleet's moved marker (not known to be this tenant's copy)")

    # Backups: block each copy so nothing is written after its dump, dump, read it all back.
    blocks: list[tuple[ServerAccess, sessions.BlockState]] = []
    try:
        if copies:
            tools = check_tool_versions(pg_bin, *[access for _, access, _ in copies])
        for key, access, current in copies:
            phase(f"backup {key}")
            blocks.append((access, sessions.block_connections(access, database, role, comment=lambda state: blocked_comment("purge", at, state))))
            sessions.terminate_sessions(access, database)
            counts = catalog.table_counts(access, database)
            path = folder / final_backup_name(tenant, at, None if current else key)
            dump_file = dumps.dump(access, database, path, pg_bin=tools)
            try:
                toc = dumps.verify_dump(dump_file.path, pg_bin=tools)
                missing = sorted(set(counts) - {entry.qualified for entry in toc if entry.has_data})
                if missing:
                    raise PgToolsError(f"the final backup {path} lacks the data of {', '.join(missing)}")
            except BaseException:
                dump_file.path.unlink(missing_ok=True)  # a file that failed its check must not pass for a backup
                raise
            entry = {
                "server": key,
                "address": access.label,
                "path": str(dump_file.path),
                "bytes": dump_file.bytes,
                "sha256": dump_file.sha256,
                "tables": len(counts),
                "rows": sum(counts.values()),
            }
            sidecar = {
                "tenant": tenant,
                "database": database,
                "role": role,
                "reason": reason,
                "current_server": current,
                "created_at": report.purged_at,
                "pg_dump_version": tool_major_version(tools / "pg_dump"),
                "counts": dict(sorted(counts.items())),
                **entry,
            }
            dumps.write_private(dump_file.path.with_suffix(".json"), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
            report.backups.append(entry)
    except BaseException as error:  # noqa: BLE001 - nothing is dropped: reopen what was blocked
        problems = []
        for access, state in reversed(blocks):
            try:
                sessions.reopen(access, state)
            except Exception as reopen_error:  # noqa: BLE001
                problems.append(f"could not reopen {state.database!r} on {access.label}: {reopen_error}")
        detail = f"final backup failed, nothing was dropped: {error}"
        if problems:
            detail += "; " + "; ".join(problems)
        raise PgToolsError(detail) from error

    # Drops: former copies first, the current database last; then the roles.

    phase("drop")
    for key, access, _current in sorted(copies, key=lambda copy: copy[2]):
        if drops.drop_database(access, database):
            report.dropped_databases.append(key)
    for key in [key for key, _, current in copies if not current] + [current_server]:
        access = servers[key]
        others = [*(((jobs_role, report.dropped_jobs_roles),) if jobs_role else ()), *(((owner, report.dropped_owner_roles),) if owner else ())]
        for name, dropped in ((role, report.dropped_roles), *others):
            try:
                if drops.drop_role(access, name):
                    dropped.append(key)
            except psycopg.errors.DependentObjectsStillExist as error:
                if key == current_server:
                    raise PgToolsError(f"role {name!r} on {key} still owns or may use other objects: {error}") from error
                report.kept.append(f"{key}: role {name!r} kept, it still owns or may use other objects there")
    return report


@dataclass(frozen=True)
class TenantPurgeArgs:
    """Inputs of TenantPurge."""

    tenant: pulumi.Input[str]
    """Tenant name."""
    confirm: pulumi.Input[str]
    """The tenant's name typed again (the file's `purge.confirm`); the provider refuses to run unless it matches."""
    database: pulumi.Input[str]
    """The tenant's database name."""
    role: pulumi.Input[str]
    """The tenant's login role name."""
    server: pulumi.Input[str]
    """Key of the server the database is on now."""
    servers: pulumi.Input[dict[str, Any]]
    """Admin access per server key, as for DatabasePlacement (every server is checked for former copies). Secret."""
    backup_dir: pulumi.Input[str]
    """Absolute folder for final backups; the dump goes to `<backup_dir>/<tenant>/`."""
    reason: pulumi.Input[str] = ""
    """Why (`purge.reason`), written next to the backup."""
    pg_bin: pulumi.Input[Optional[str]] = None
    """Folder with pg_dump/pg_restore; default: found on the machine."""
    owner: pulumi.Input[Optional[str]] = None
    """The tenant's owner role name, dropped after the login role."""
    jobs_role: pulumi.Input[Optional[str]] = None
    """The tenant's jobs role name (plans with container jobs), dropped before the owner role; absent is fine."""


class TenantPurgeProvider(ResourceProvider):
    """Create = final verified backups, then DROP DATABASE and DROP ROLE. Nothing else, ever."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        _check_common(news, failures)
        tenant, confirm = news.get("tenant"), news.get("confirm")
        if not is_unknown(tenant) and not is_unknown(confirm) and tenant != confirm:
            failures.append(CheckFailure("confirm", f"confirm must be the tenant's name {tenant!r} typed out (got {confirm!r})"))
        backup_dir = news.get("backup_dir")
        if not is_unknown(backup_dir) and (not isinstance(backup_dir, str) or not Path(backup_dir).is_absolute()):
            failures.append(CheckFailure("backup_dir", f"backup_dir must be an absolute path (got {backup_dir!r})"))
        return CheckResult(news, failures)

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        # A purge happens once. Editing the reason or the servers afterwards changes nothing.
        return DiffResult(changes=False, replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with failure_context(resource_label("TenantPurge", props), f"purge of {props.get('database')!r}"):
            if props.get("confirm") != props.get("tenant"):
                raise ValueError("confirm does not match the tenant's name: refusing to purge")
            servers = {key: ServerAccess.from_mapping(entry) for key, entry in _servers(props.get("servers")).items()}
            report = purge_tenant(
                servers,
                props["server"],
                props["tenant"],
                props["database"],
                props["role"],
                props["backup_dir"],
                owner=props.get("owner") or None,
                jobs_role=props.get("jobs_role") or None,
                reason=props.get("reason") or "",
                pg_bin=props.get("pg_bin") or None,
            )
        outs = {
            RESOURCE_NAME_KEY: props.get(RESOURCE_NAME_KEY),
            "tenant": props["tenant"],
            "confirm": props["confirm"],
            "database": props["database"],
            "role": props["role"],
            "server": props["server"],
            "backup_dir": props["backup_dir"],
            "reason": props.get("reason") or "",
            "purged_at": report.purged_at,
            "backups": report.backups,
            "dropped_databases": report.dropped_databases,
            "dropped_roles": report.dropped_roles,
            "dropped_owner_roles": report.dropped_owner_roles,
            "kept": report.kept,
        }
        return CreateResult(f"{props['tenant']}:purged:{report.purged_at}", outs)

    def update(self, _id: str, olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(olds)  # never reached: diff reports no changes

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Nothing: the backups stay, and there is nothing left to drop.
        return None


class TenantPurge(FleetDynamicResource, module="postgres", name="TenantPurge"):
    """The final backup and the drop of a tenant's database and role (the only way they are ever dropped)."""

    purged_at: pulumi.Output[str]
    backups: pulumi.Output[list]
    """Per server: path, bytes, sha256, tables, rows of the final backup."""
    dropped_databases: pulumi.Output[list]
    dropped_roles: pulumi.Output[list]
    dropped_owner_roles: pulumi.Output[list]
    kept: pulumi.Output[list]

    def __init__(self, name: str, args: TenantPurgeArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            RESOURCE_NAME_KEY: name,
            "tenant": args.tenant,
            "confirm": args.confirm,
            "database": args.database,
            "role": args.role,
            "owner": args.owner,
            "jobs_role": args.jobs_role,
            "server": args.server,
            "servers": pulumi.Output.secret(args.servers),
            "backup_dir": args.backup_dir,
            "reason": args.reason,
            "pg_bin": args.pg_bin,
            "purged_at": None,
            "backups": None,
            "dropped_databases": None,
            "dropped_roles": None,
            "dropped_owner_roles": None,
            "kept": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["servers"]))
        super().__init__(TenantPurgeProvider(), name, props, opts)

