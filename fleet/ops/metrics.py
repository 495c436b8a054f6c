"""`fleet metrics`: per-tenant Prometheus metrics, read fresh from the servers on every scrape.

A custom collector (prometheus_client's `Collector`) gathers everything when Prometheus scrapes: the
figures `fleet status` shows (fleet.ops.status: size, sessions, role limit, app version), each database's
counters from `pg_stat_database` and its oldest query and transaction from `pg_stat_activity`, the newest
backup (fleet.ops.backups), the newest good restore drill (fleet.ops.drills), Caddy's own metrics per tenant
hostname, and containers' CPU and memory from each app host's Docker (fleet.ops.docker_stats). Every
per-tenant series carries a `tenant` label; a source that can't be read is a `tenant_fleet_source_up`
series at 0, never an omission, and a tenant whose database can't be read keeps its
`tenant_fleet_database_up 0`. docs/observability.md lists the series.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Optional

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from fleet.model import derive
from fleet.ops import drills
from fleet.ops.backups import Clock, list_backups, utc_now
from fleet.ops.docker_stats import DockerStatsReader, TenantUsage
from fleet.ops.status import TenantStatus, fleet_status, one_line

PREFIX = "tenant_fleet"
"""Namespace of every series this exporter writes."""

CADDY_DURATION = "caddy_http_request_duration_seconds"
"""Caddy's request histogram; with per-host metrics on (Caddy 2.9+: `metrics {per_host}`) it has a `host` label."""


# ---------------------------------------------------------------- reading the sources


@dataclass(frozen=True)
class DatabaseActivity:
    """One database's counters (pg_stat_database, cumulative since the server's stats reset) and ages (pg_stat_activity)."""

    commits: int = 0
    rollbacks: int = 0
    deadlocks: int = 0
    blocks_hit: int = 0
    blocks_read: int = 0
    longest_query_seconds: float = 0.0
    """Age of the oldest query still running (0 when none runs)."""
    oldest_transaction_seconds: float = 0.0
    """Age of the oldest open transaction, idle ones included (0 when none is open)."""

    @property
    def cache_hit_ratio(self) -> Optional[float]:
        """Share of block reads served from shared buffers; None before the first read."""
        total = self.blocks_hit + self.blocks_read
        return self.blocks_hit / total if total else None


def database_activity(access, databases: Iterable[str]) -> dict[str, DatabaseActivity]:
    """Counters and ages of these databases on one server, in one connection as its admin."""
    names = sorted(set(databases))
    with access.connect() as connection:
        counters = {
            row[0]: row[1:]
            for row in connection.execute(
                "select datname, xact_commit, xact_rollback, deadlocks, blks_hit, blks_read from pg_stat_database where datname = any(%s)", [names]
            ).fetchall()
        }
        ages = {
            row[0]: row[1:]
            for row in connection.execute(
                "select datname,"
                " coalesce(extract(epoch from max(now() - query_start) filter (where state not in ('idle', 'idle in transaction'))), 0),"
                " coalesce(extract(epoch from max(now() - xact_start)), 0)"
                " from pg_stat_activity where datname = any(%s) and backend_type = 'client backend' and pid <> pg_backend_pid() group by datname",
                [names],
            ).fetchall()
        }
    found = {}
    for name, (commits, rollbacks, deadlocks, hit, read) in counters.items():
        longest, oldest = ages.get(name, (0, 0))
        found[name] = DatabaseActivity(int(commits), int(rollbacks), int(deadlocks), int(hit), int(read), float(longest), float(oldest))
    return found


@dataclass
class HostTraffic:
    """What Caddy counted for one hostname: requests, 5xx answers, and the request duration histogram."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative count per upper bound (`le`), +Inf included."""
    seconds: float = 0.0
    """Sum of request durations."""


def caddy_metrics_text(admin_url: str, *, timeout: float = 5.0) -> str:
    """Caddy's own exposition, from `<admin>/metrics`."""
    with urllib.request.urlopen(admin_url.rstrip("/") + "/metrics", timeout=timeout) as response:
        return response.read().decode("utf-8", errors="replace")


def traffic_per_host(exposition: str) -> Optional[dict[str, HostTraffic]]:
    """Requests, 5xx and latency per hostname from Caddy's exposition; None when it has no `host` label
    (Caddy before 2.9, or per-host metrics off): then per-tenant HTTP figures are absent, not guessed.

    Caddy instruments every handler of a route (a subroute and the reverse_proxy inside it both count a
    request), so each host's figures are those of the handler that counted the most, not a sum."""
    # (host, handler) -> traffic, summed over status code and method
    per_handler: dict[tuple[str, str], HostTraffic] = {}
    saw_host = False
    for family in text_string_to_metric_families(exposition):
        if family.name != CADDY_DURATION:
            continue
        for sample in family.samples:
            host = sample.labels.get("host")
            if host is None:
                continue
            saw_host = True
            traffic = per_handler.setdefault((host.lower(), sample.labels.get("handler", "")), HostTraffic())
            if sample.name.endswith("_count"):
                traffic.requests += sample.value
                if sample.labels.get("code", "").startswith("5"):
                    traffic.errors += sample.value
            elif sample.name.endswith("_sum"):
                traffic.seconds += sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                traffic.buckets[bound] = traffic.buckets.get(bound, 0.0) + sample.value
    if not saw_host:
        return None
    best: dict[str, HostTraffic] = {}
    for (host, _handler), traffic in per_handler.items():
        if host not in best or traffic.requests > best[host].requests:
            best[host] = traffic
    return best


# ---------------------------------------------------------------- one scrape


@dataclass
class SourceState:
    """Whether one source of figures answered this scrape, and why not."""

    source: str
    key: str
    up: bool
    detail: str = ""


@dataclass
class TenantFigures:
    """Everything one scrape learned about a tenant."""

    status: TenantStatus
    server: str
    app_version: str
    activity: Optional[DatabaseActivity] = None
    backup_taken_at: Optional[float] = None
    """Unix time of the newest backup."""
    backup_age_seconds: Optional[float] = None
    backup_files: int = 0
    drills_passed: int = 0
    drill_started_at: Optional[float] = None
    """Unix time the newest good restore drill started."""
    drill_age_seconds: Optional[float] = None
    drill_seconds: Optional[float] = None
    """How long that drill took, restore and checks included."""
    traffic: dict[str, HostTraffic] = field(default_factory=dict)
    containers: Optional[TenantUsage] = None
    """Its containers on its Docker app host (None: not on Docker, or Docker unreadable this scrape)."""

    @property
    def database_up(self) -> bool:
        return self.status.error is None and self.status.size_bytes is not None


@dataclass
class Snapshot:
    """One scrape's figures for the fleet."""

    tenants: list[TenantFigures]
    sources: list[SourceState]
    seconds: float = 0.0


def app_version_of(entry, environment) -> str:
    """The tag its primary service's image runs (its own pin, its plan's, or the image's tag); empty when none is visible."""
    version = derive.app_version(entry.spec, entry.plan)
    if version:
        return version
    image = derive.primary_service(entry.plan, entry.spec, environment).image
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else ""


def gather(
    inventory,
    *,
    clock: Clock = utc_now,
    caddy_text: Optional[Callable[[str], str]] = None,
    docker_stats: Optional[DockerStatsReader] = None,
) -> Snapshot:
    """Read every source once; a source that fails is recorded as down and the rest still reported.

    `docker_stats` keeps containers' CPU samples from one scrape to the next (FleetCollector holds one);
    without it, CPU is absent (a first scrape has nothing to compare with)."""
    started = time.monotonic()
    chosen = inventory.select()
    rows, servers = fleet_status(inventory, clock=clock)
    by_name = {entry.name: entry for entry in chosen}
    figures = {row.tenant: TenantFigures(row, by_name[row.tenant].server_key, app_version_of(by_name[row.tenant], inventory.environment)) for row in rows}
    sources: list[SourceState] = []

    for server in servers:
        entries = [entry for entry in chosen if entry.server_key == server.server]
        if server.error is not None:
            sources.append(SourceState("postgres", server.server, False, one_line(Exception(server.error))))
            continue
        try:
            activity = database_activity(inventory.admin_access(server.server), [entry.database for entry in entries])
        except Exception as error:  # noqa: BLE001 - the server went away between two queries: say so, keep the rest
            sources.append(SourceState("postgres", server.server, False, one_line(error)))
            continue
        sources.append(SourceState("postgres", server.server, True))
        for entry in entries:
            figures[entry.name].activity = activity.get(entry.database)

    now = clock()
    backups_readable = inventory.backups_dir.is_dir()
    sources.append(SourceState("backups", str(inventory.backups_dir), backups_readable, "" if backups_readable else "folder missing"))
    for entry in chosen:
        listed = list_backups(inventory.backups_dir, entry.name)  # oldest first, as newest_backup reads it
        if listed:
            tenant = figures[entry.name]
            tenant.backup_taken_at = listed[-1].taken_at.timestamp()
            tenant.backup_age_seconds = max(0.0, listed[-1].age(now).total_seconds())
            tenant.backup_files = len(listed)
        read_drill_figures(figures[entry.name], inventory.backups_dir, entry.name, now)

    proxy = inventory.environment.proxy
    try:
        text = (caddy_text or caddy_metrics_text)(proxy.admin_url)
    except (OSError, urllib.error.URLError) as error:
        sources.append(SourceState("caddy", proxy.admin_url, False, one_line(error)))
    else:
        sources.append(SourceState("caddy", proxy.admin_url, True))
        hosts = traffic_per_host(text)
        if hosts is None:
            sources.append(SourceState("caddy_per_host", proxy.admin_url, False, "Caddy's metrics have no host label (needs Caddy 2.9+ with per_host metrics)"))
        else:
            sources.append(SourceState("caddy_per_host", proxy.admin_url, True))
            for entry in chosen:
                figures[entry.name].traffic = {host: hosts[host] for host in entry.hostnames if host.lower() in hosts}

    if inventory.environment.manages("app"):
        _read_containers(inventory, chosen, figures, sources, docker_stats or DockerStatsReader())
    return Snapshot([figures[entry.name] for entry in chosen], sources, round(time.monotonic() - started, 6))


def _read_containers(inventory, chosen, figures: dict[str, TenantFigures], sources: list[SourceState], reader: DockerStatsReader) -> None:
    """CPU and memory of each tenant's containers, per Docker app host (tenants on a Kubernetes cluster have none here)."""
    for key, host in sorted(inventory.environment.app_hosts().items()):
        try:
            reading = reader.read(host.url)
        except Exception as error:  # noqa: BLE001 - no Docker here: the CPU and memory series are absent, and this says why
            sources.append(SourceState("docker", key, False, one_line(error)))
            continue
        sources.append(SourceState("docker", key, True))
        detail = f"{len(reading.failures)} of {reading.containers} running containers unread: {reading.failures[0]}" if reading.failures else ""
        sources.append(SourceState("docker_stats", key, not reading.failures, detail))
        for entry in chosen:
            if entry.spec.app.host == key:
                figures[entry.name].containers = reading.tenants.get(entry.name, TenantUsage())


def read_drill_figures(tenant: TenantFigures, folder, name: str, now) -> None:
    """The tenant's passed drills, and when the newest one ran and how long it took (fleet.ops.drills' log)."""
    passed = drills.passed_drills(folder, name)
    tenant.drills_passed = len(passed)
    if passed:
        newest = passed[-1]
        started = drills.drill_started_at(newest)
        assert started is not None  # passed_drills keeps only dated lines
        tenant.drill_started_at = started.timestamp()
        tenant.drill_age_seconds = max(0.0, (now - started).total_seconds())
        seconds = newest.get("seconds")
        tenant.drill_seconds = float(seconds) if isinstance(seconds, (int, float)) else 0.0


# ---------------------------------------------------------------- the series


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of one snapshot, named by Prometheus conventions (base units, `_total` counters)."""
    tenant_labels = ["tenant"]

    def gauge(name: str, help_text: str, labels: Optional[list[str]] = None) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_{name}", help_text, labels=labels or tenant_labels)

    def counter(name: str, help_text: str, labels: Optional[list[str]] = None) -> CounterMetricFamily:
        return CounterMetricFamily(f"{PREFIX}_{name}", help_text, labels=labels or tenant_labels)

    info = InfoMetricFamily(f"{PREFIX}_tenant", "A tenant as its YAML declares it: plan, status, server, app version.", labels=tenant_labels)
    up = gauge("database_up", "1 when the tenant's database was read this scrape, 0 when its server or database can't be reached.")
    size = gauge("database_size_bytes", "Size of the tenant's database (pg_database_size).")
    connections = gauge("database_connections", "Sessions of the tenant's login role (what its connection limit counts).")
    limit = gauge("database_connection_limit", "The login role's connection limit on the server (absent when it has none).")
    planned = gauge("database_connection_limit_planned", "The connection limit its plan sets (db_connections).")
    transactions = counter("database_transactions", "Transactions ended in the tenant's database, by outcome (pg_stat_database).", ["tenant", "outcome"])
    deadlocks = counter("database_deadlocks", "Deadlocks detected in the tenant's database.")
    hit_ratio = gauge("database_cache_hit_ratio", "Share of block reads served from shared buffers, since the server's stats reset.")
    longest = gauge("database_longest_query_seconds", "Age of the oldest query still running in the tenant's database (0: none).")
    oldest = gauge("database_oldest_transaction_seconds", "Age of the oldest open transaction in the tenant's database, idle ones included (0: none).")
    backup_age = gauge("backup_age_seconds", "Age of the tenant's newest backup (absent when it has none: see tenant_fleet_backup_files).")
    backup_time = gauge("backup_last_success_timestamp_seconds", "When the tenant's newest backup was taken (Unix time).")
    backup_files = gauge("backup_files", "Backups of the tenant on disk.")
    drills_passed = gauge("drills_passed", "Restore drills of the tenant that passed, as its drill log records them (fleet drill).")
    drill_age = gauge("drill_age_seconds", "Age of the tenant's newest passed restore drill (absent when none passed: see tenant_fleet_drills_passed).")
    drill_time = gauge("drill_last_success_timestamp_seconds", "When the tenant's newest passed restore drill started (Unix time).")
    drill_duration = gauge("drill_duration_seconds", "How long the tenant's newest passed restore drill took, restore and checks included.")
    requests = counter("http_requests", "Requests Caddy served for the tenant's hostname.", ["tenant", "host"])
    errors = counter("http_errors", "Requests Caddy answered with a 5xx status for the tenant's hostname.", ["tenant", "host"])
    latency = HistogramMetricFamily(f"{PREFIX}_http_request_duration_seconds", "How long Caddy took to answer, per tenant hostname.", labels=["tenant", "host"])

    for tenant in snapshot.tenants:
        row = tenant.status
        name = [row.tenant]
        info.add_metric(name, {"plan": row.plan, "status": row.status, "server": tenant.server, "app_version": tenant.app_version})
        up.add_metric(name, 1.0 if tenant.database_up else 0.0)
        planned.add_metric(name, row.planned_limit)
        if tenant.database_up:
            size.add_metric(name, float(row.size_bytes or 0))
            connections.add_metric(name, float(row.connections or 0))
            if row.connection_limit is not None and row.connection_limit >= 0:
                limit.add_metric(name, float(row.connection_limit))
        activity = tenant.activity
        if tenant.database_up and activity is not None:
            transactions.add_metric([row.tenant, "commit"], activity.commits)
            transactions.add_metric([row.tenant, "rollback"], activity.rollbacks)
            deadlocks.add_metric(name, activity.deadlocks)
            ratio = activity.cache_hit_ratio
            if ratio is not None:
                hit_ratio.add_metric(name, ratio)
            longest.add_metric(name, activity.longest_query_seconds)
            oldest.add_metric(name, activity.oldest_transaction_seconds)
        backup_files.add_metric(name, tenant.backup_files)
        if tenant.backup_age_seconds is not None and tenant.backup_taken_at is not None:
            backup_age.add_metric(name, tenant.backup_age_seconds)
            backup_time.add_metric(name, tenant.backup_taken_at)
        drills_passed.add_metric(name, tenant.drills_passed)
        if tenant.drill_age_seconds is not None and tenant.drill_started_at is not None:
            drill_age.add_metric(name, tenant.drill_age_seconds)
            drill_time.add_metric(name, tenant.drill_started_at)
            drill_duration.add_metric(name, tenant.drill_seconds or 0.0)
        for host, traffic in sorted(tenant.traffic.items()):
            requests.add_metric([row.tenant, host], traffic.requests)
            errors.add_metric([row.tenant, host], traffic.errors)
            buckets = sorted(traffic.buckets.items())
            if buckets:
                latency.add_metric([row.tenant, host], [(_le(bound), count) for bound, count in buckets], traffic.seconds)

    sources = gauge("source_up", "1 when a source of figures answered this scrape; 0 names what is absent (docker: no container CPU or memory).", ["source", "key"])
    for source in snapshot.sources:
        sources.add_metric([source.source, source.key], 1.0 if source.up else 0.0)
    duration = GaugeMetricFamily(f"{PREFIX}_scrape_duration_seconds", "How long this scrape took to read every source.", value=snapshot.seconds)
    yield from (info, up, size, connections, limit, planned, transactions, deadlocks, hit_ratio, longest, oldest)
    yield from (backup_age, backup_time, backup_files, drills_passed, drill_age, drill_time, drill_duration)
    yield from (requests, errors, latency, sources, duration)
    yield from container_families(snapshot)


def container_families(snapshot: Snapshot) -> tuple[Metric, ...]:
    """Containers' CPU and memory per tenant (fleet.ops.docker_stats), summed over its running containers; the
    TenantCPUHigh and TenantMemoryHigh rules (fleet.ops.alert_rules) read exactly these."""
    running = GaugeMetricFamily(
        f"{PREFIX}_containers_running", "The tenant's running containers on its Docker app host (absent: Docker unreadable, or the tenant is on Kubernetes).", labels=["tenant"]
    )
    cpu = GaugeMetricFamily(
        f"{PREFIX}_containers_cpu_ratio",
        "CPU its running containers used since the previous scrape, as a share of the CPU they may use (1 = all of the plan's CPU). "
        "Absent with no running container (stopped, suspended), at the first scrape, or when one container's stats can't be read.",
        labels=["tenant"],
    )
    memory = GaugeMetricFamily(
        f"{PREFIX}_containers_memory_bytes",
        "Memory its running containers use, less inactive page cache (as docker stats counts it). Absent with no running container or unreadable stats.",
        labels=["tenant"],
    )
    memory_limit = GaugeMetricFamily(
        f"{PREFIX}_containers_memory_limit_bytes", "Sum of its running containers' memory limits. Absent with no running container or unreadable stats.", labels=["tenant"]
    )
    for tenant in snapshot.tenants:
        usage = tenant.containers
        if usage is None:
            continue
        name = [tenant.status.tenant]
        running.add_metric(name, usage.running)
        if usage.cpu_ratio is not None:
            cpu.add_metric(name, usage.cpu_ratio)
        if usage.memory_bytes is not None and usage.memory_limit_bytes is not None:
            memory.add_metric(name, usage.memory_bytes)
            memory_limit.add_metric(name, usage.memory_limit_bytes)
    return running, cpu, memory, memory_limit


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class FleetCollector(Collector):
    """Reads the fleet's figures at every scrape (only containers' previous CPU samples are kept, to compute CPU use
    between two scrapes): `registry.register(FleetCollector(inventory))`."""

    def __init__(self, inventory, **gather_options) -> None:
        self.inventory = inventory
        self.gather_options = {"docker_stats": DockerStatsReader(), **gather_options}  # CPU samples live from scrape to scrape
        self.last: Optional[Snapshot] = None

    def describe(self) -> list[Metric]:
        return []  # nothing is read at registration: the first scrape does the work

    def collect(self) -> Iterator[Metric]:
        self.last = gather(self.inventory, **self.gather_options)
        yield from families(self.last)


def registry_for(inventory, **gather_options) -> tuple[CollectorRegistry, FleetCollector]:
    """A registry holding only the fleet's collector (no process or Python series of the exporter itself)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = FleetCollector(inventory, **gather_options)
    registry.register(collector)
    return registry, collector


def exposition(inventory, **gather_options) -> tuple[str, Snapshot]:
    """One scrape as Prometheus text, and what it read (for `--once` and tests)."""
    registry, collector = registry_for(inventory, **gather_options)
    text = generate_latest(registry).decode("utf-8")
    assert collector.last is not None
    return text, collector.last
