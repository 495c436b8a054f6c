"""`fleet status`: per tenant and per server sizes, connections, containers and backup age.
"""


from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from fleet.model import derive
from fleet.model.offboarding import offboarding_timer
from fleet.ops import drills
from fleet.ops.backups import Clock, newest_backup, utc_now
from fleet.ops.docker_api import docker_containers
from fleet.ops.verify import FLAG_THRESHOLD

# ---------------------------------------------------------------- status


@dataclass
class TenantStatus:
    """One tenant's figures, as the servers report them."""

    tenant: str
    plan: str
    status: str
    server: str
    database: str
    size_bytes: Optional[int] = None
    connections: Optional[int] = None
    """Sessions of the tenant's role (what its connection limit counts)."""
    connection_limit: Optional[int] = None
    """The role's limit on the server (-1: none)."""
    planned_limit: int = 0
    containers: str = "-"
    """`running 2/2`, `none (suspended)`, `unknown (...)`, or `-` when this stack has no app layer."""
    newest_backup: Optional[str] = None
    backup_age_hours: Optional[float] = None
    app_version: Optional[str] = None
    """The image tag its plan or file sets (None: `fleet:images` as given)."""
    modules: list[str] = field(default_factory=list)
    migrations: Optional[str] = None
    """What its SQL jobs applied, from the record in its database: `12 applied, last 2026-11-30 01:00` (None: no record)."""
    last_drill: Optional[str] = None
    """When its newest successful restore drill started (fleet.ops.drills), UTC ISO; None: never."""
    offboarding: Optional[str] = None
    """An offboarded tenant's timer (fleet.model.offboarding): `offboarded ..., kept until ... (N days left)`."""
    final_backup: Optional[str] = None
    """An offboarded tenant's newest backup, the one its data would be restored from: its full path."""
    flags: list[str] = field(default_factory=list)
    error: Optional[str] = None

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ServerStatus:
    """One server's connections against its max_connections."""

    server: str
    connections: Optional[int] = None
    max_connections: Optional[int] = None
    flags: list[str] = field(default_factory=list)
    error: Optional[str] = None

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


def _share_flag(label: str, used: Optional[int], limit: Optional[int], threshold: float = FLAG_THRESHOLD) -> Optional[str]:
    if used is None or limit is None or limit <= 0:
        return None
    share = used / limit
    return f"{label} {used}/{limit} ({share:.0%})" if share >= threshold else None


def _server_figures(access, tenants) -> tuple[dict[str, int], dict[str, int], dict[str, int], int, int]:
    """(database sizes, sessions per role, role limits, all client sessions, max_connections) of one server."""
    with access.connect() as connection:
        sizes = dict(connection.execute("select datname, pg_database_size(oid) from pg_database where datname = any(%s)", [[t.database for t in tenants]]).fetchall())
        sessions = dict(
            connection.execute(
                "select usename, count(*) from pg_stat_activity where usename = any(%s) and backend_type = 'client backend' group by usename",
                [[t.role for t in tenants]],
            ).fetchall()
        )
        limits = dict(connection.execute("select rolname, rolconnlimit from pg_roles where rolname = any(%s)", [[t.role for t in tenants]]).fetchall())
        total = connection.execute("select count(*) from pg_stat_activity where backend_type = 'client backend'").fetchone()[0]
        max_connections = int(connection.execute("show max_connections").fetchone()[0])
    return sizes, sessions, limits, int(total), max_connections


def migrations_record(access, database: str) -> str:
    """What the tenant's SQL jobs applied, from `_fleet_migrations` in its database (fleet.postgres.migrations)."""
    try:
        with access.connect(database) as connection:
            count, last = connection.execute("select count(*), max(applied_at_utc) from _fleet_migrations").fetchone()
    except Exception as error:  # noqa: BLE001 - no record yet (a job never ran), or the database can't be read
        return "none recorded" if "does not exist" in str(error) else f"unknown ({one_line(error)})"
    return f"{count} applied, last {last:%Y-%m-%d %H:%M} UTC" if last else "none applied"


def fleet_status(
    inventory,
    tenants=None,
    *,
    clock: Clock = utc_now,
    containers: Optional[Callable[[], list[dict]]] = None,
) -> tuple[list[TenantStatus], list[ServerStatus]]:
    """Figures per tenant and per server; a server or Docker that can't be read shows as an error, not a crash."""
    chosen = inventory.select(tenants)
    now = clock()
    rows = {
        entry.name: TenantStatus(
            entry.name, entry.plan_name, entry.spec.status, entry.server_key, entry.database, planned_limit=entry.connection_limit,
            app_version=derive.app_version(entry.spec, entry.plan), modules=list(entry.spec.modules),
        )
        for entry in chosen
    }
    servers: list[ServerStatus] = []
    by_server: dict[str, list] = {}
    for entry in chosen:
        by_server.setdefault(entry.server_key, []).append(entry)
    for server_key, entries in sorted(by_server.items()):
        server_row = ServerStatus(server_key)
        servers.append(server_row)
        try:
            sizes, sessions, limits, total, max_connections = _server_figures(inventory.admin_access(server_key), entries)
        except Exception as error:  # noqa: BLE001
            server_row.error = str(error)
            for entry in entries:
                rows[entry.name].error = f"server {server_key}: {error}"
            continue
        server_row.connections, server_row.max_connections = total, max_connections
        flag = _share_flag("connections", total, max_connections)
        if flag:
            server_row.flags.append(flag)
        for entry in entries:
            row = rows[entry.name]
            row.size_bytes = sizes.get(entry.database)
            row.connections = int(sessions.get(entry.role, 0))
            row.connection_limit = limits.get(entry.role)
            if row.size_bytes is None:
                row.error = f"database {entry.database} not found on {server_key}"
            flag = _share_flag("connections", row.connections, row.connection_limit, entry.plan.alerts.connections_percent / 100)  # as its alert
            if flag:
                row.flags.append(flag)
            if row.size_bytes is not None and (entry.plan.migrations or entry.spec.modules):
                row.migrations = migrations_record(inventory.admin_access(server_key), entry.database)

    if inventory.environment.manages("app"):
        _container_states(inventory, chosen, rows, containers)

    for entry in chosen:
        row = rows[entry.name]
        backup = newest_backup(inventory.backups_dir, entry.name)
        _drill_status(inventory, entry, row, now)
        timer = offboarding_timer(entry.spec, entry.plan)
        if timer is not None:
            row.offboarding = timer.describe(now.date())
            row.final_backup = str(backup.path) if backup is not None else None
            if timer.ended(now.date()):
                row.flags.append(f"retention ended {timer.ends.isoformat()}: purge proposed")
        if backup is None:
            row.flags.append("no backup")
            continue
        row.newest_backup = backup.path.name
        row.backup_age_hours = round(backup.age(now).total_seconds() / 3600, 1)
        if row.backup_age_hours > entry.plan.alerts.backup_age_hours:  # the plan's alert threshold
            row.flags.append(f"backup {row.backup_age_hours:.0f}h old")
    return [rows[entry.name] for entry in chosen], servers


def _drill_status(inventory, entry, row: TenantStatus, now) -> None:
    """The last good drill, flagged when older than the plan's `drills.every` (or missing while a schedule is set)."""
    record = drills.last_good_drill(inventory.backups_dir, entry.name)
    row.last_drill = record["started_at"] if record else None
    schedule = entry.plan.drills
    if schedule is None or not entry.active:
        return
    age = drills.drill_age_days(record, now)
    if age is None:
        row.flags.append(f"no restore drill (plan: every {schedule.every})")
    elif age > schedule.days:
        row.flags.append(f"restore drill {age:.0f}d old (plan: every {schedule.every})")


def _container_states(inventory, chosen, rows: dict[str, TenantStatus], containers: Optional[Callable[[], list[dict]]]) -> None:
    """Each tenant's containers as its app host's Docker lists them (`containers`: one listing for every host, for tests)."""
    hosts = inventory.environment.app_hosts()
    by_host: dict[str, list] = {}
    for entry in chosen:
        by_host.setdefault(entry.spec.app.host, []).append(entry)
    for host_key, entries in sorted(by_host.items()):
        if host_key in inventory.environment.kubernetes_hosts:  # pods, not containers: not counted here (yet)
            for entry in entries:
                rows[entry.name].containers = f"pods on cluster {host_key}"
            continue
        try:
            listed = containers() if containers is not None else docker_containers(hosts[host_key].url)
        except Exception as error:  # noqa: BLE001 - no Docker here: say so in the column
            for entry in entries:
                rows[entry.name].containers = f"unknown ({one_line(error)})"
            continue
        _count_containers(entries, listed, rows, inventory.environment)


def _count_containers(entries, listed: list[dict], rows: dict[str, TenantStatus], environment) -> None:
    for entry in entries:
        services = [service.name for service in derive.services(entry.plan, entry.spec, environment)]
        expected = sum(derive.replica_count(entry.plan, entry.spec, service) for service in services)
        expected += sum(derive.worker_count(entry.plan, entry.spec, worker) for worker in entry.plan.workers)
        app_components = (*services, derive.WORKER_ROLE)
        mine = [c for c in listed if (c.get("Labels") or {}).get("tenant") == entry.name and (c.get("Labels") or {}).get("component") in app_components]
        running = sum(1 for c in mine if c.get("State") == "running")
        other = sorted({c.get("State", "?") for c in mine if c.get("State") != "running"})
        if expected == 0 and not mine:
            text = "none (suspended)"
        else:
            text = f"running {running}/{expected}" + (f", {', '.join(other)}" if other else "")
        rows[entry.name].containers = text
        if running < expected:
            rows[entry.name].flags.append(f"containers {running}/{expected} running")


def one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:80]
