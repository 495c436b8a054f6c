"""Containers' CPU and memory per tenant, from the Docker Engine API of each app host (for `fleet metrics`).

Per running fleet container (label managed-by=tenant-fleet), a scrape reads
`GET /containers/{id}/stats?stream=false&one-shot=true` and `GET /containers/{id}/json` (its CPU limit), a
few containers at a time, within a deadline. The figures are those `docker stats` shows:

- memory used = `memory_stats.usage` less the inactive page cache (`stats.total_inactive_file` on
  cgroup v1, `stats.inactive_file` on cgroup v2), as the docker CLI counts it; limit = `memory_stats.limit`;
- CPU used, in cores = Δ`cpu_usage.total_usage` / Δ`system_cpu_usage` × `online_cpus`, as the docker CLI
  counts it, divided by the CPUs the container may use (HostConfig `NanoCpus`, else `CpuQuota`/`CpuPeriod`,
  else every online CPU of the host).

A one-shot read is fast (no two-second wait for the daemon's own previous sample) but carries no
`precpu_stats`: the previous sample is the one this reader took of the same container at the previous
scrape. So a container's CPU is absent at the first scrape after the exporter starts (or after the
container starts), never guessed. Per tenant, figures are summed over its running containers (services,
workers, jobs, its Redis and backup containers): absent when any one of them could not be read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Optional

from fleet.ops.docker_api import docker_containers, docker_get
from fleet.ops.status import one_line

TENANT_LABEL = "tenant"
"""The container label that names its tenant (fleet.model.derive.labels / worker_labels)."""
COMPONENT_LABEL = "component"
DEFAULT_CPU_PERIOD_US = 100_000
"""CFS period Docker uses when HostConfig.CpuPeriod is 0."""

# ---------------------------------------------------------------- the arithmetic of one container


@dataclass(frozen=True)
class CpuSample:
    """A container's cumulative CPU time and the host's, at one read (nanoseconds)."""

    container_ns: int
    system_ns: int
    online_cpus: int


def cpu_sample(cpu_stats: Optional[dict]) -> Optional[CpuSample]:
    """The sample in a stats document's `cpu_stats` (or `precpu_stats`); None when it is empty, as a one-shot
    read's `precpu_stats` is, or a stopped container's."""
    if not cpu_stats:
        return None
    usage = cpu_stats.get("cpu_usage") or {}
    total, system = usage.get("total_usage"), cpu_stats.get("system_cpu_usage")
    if not total and not system:
        return None
    # Older daemons (and cgroup v1) may leave online_cpus out: the docker CLI counts percpu_usage instead.
    online = cpu_stats.get("online_cpus") or len(usage.get("percpu_usage") or ())
    if system is None or not online:
        return None
    return CpuSample(int(total or 0), int(system), int(online))


def cpu_cores_used(current: CpuSample, previous: Optional[CpuSample]) -> Optional[float]:
    """Cores the container used between two samples (docker CLI: cpu Δ / system Δ × online CPUs).

    None without a previous sample, or when the counters went back (the container restarted)."""
    if previous is None:
        return None
    cpu_delta = current.container_ns - previous.container_ns
    system_delta = current.system_ns - previous.system_ns
    if cpu_delta < 0 or system_delta <= 0:
        return None
    return cpu_delta / system_delta * current.online_cpus


def cpu_limit_cores(host_config: Optional[dict], online_cpus: int) -> float:
    """The CPUs a container may use: `--cpus` (NanoCpus), else a CFS quota, else every online CPU of its host."""
    host_config = host_config or {}
    nano = host_config.get("NanoCpus") or 0
    if nano > 0:
        return nano / 1e9
    quota = host_config.get("CpuQuota") or 0
    if quota > 0:
        return quota / (host_config.get("CpuPeriod") or DEFAULT_CPU_PERIOD_US)
    return float(online_cpus)


def memory_used_bytes(memory_stats: Optional[dict]) -> Optional[float]:
    """Memory in use, without the inactive page cache, as the docker CLI counts it; None when not reported."""
    if not memory_stats or memory_stats.get("usage") is None:
        return None
    usage = memory_stats["usage"]
    stats = memory_stats.get("stats") or {}
    inactive = stats.get("total_inactive_file")  # cgroup v1
    if inactive is not None and inactive < usage:
        return float(usage - inactive)
    inactive = stats.get("inactive_file")  # cgroup v2
    if inactive is not None and inactive < usage:
        return float(usage - inactive)
    return float(usage)


def memory_limit_bytes(memory_stats: Optional[dict]) -> Optional[float]:
    """The memory limit the kernel enforces (the host's memory when the container has none); None when not reported."""
    limit = (memory_stats or {}).get("limit")
    return float(limit) if limit else None


@dataclass(frozen=True)
class ContainerUsage:
    """One running container's figures at one scrape (None: not known this scrape)."""

    container_id: str
    tenant: str
    component: str
    cpu_cores: Optional[float]
    cpu_limit_cores: float
    memory_bytes: Optional[float]
    memory_limit_bytes: Optional[float]


def container_usage(listed: dict, stats: dict, inspected: dict, previous: Optional[CpuSample]) -> tuple[ContainerUsage, Optional[CpuSample]]:
    """A container's figures from its listing, its stats and its inspection, and the CPU sample to keep for the next scrape."""
    labels = listed.get("Labels") or {}
    current = cpu_sample(stats.get("cpu_stats"))
    # A daemon that ignores one-shot (API < 1.41) still sends its own previous sample: it is the better one.
    previous = cpu_sample(stats.get("precpu_stats")) or previous
    cores = cpu_cores_used(current, previous) if current is not None else None
    online = current.online_cpus if current is not None else 0
    usage = ContainerUsage(
        container_id=listed.get("Id", ""),
        tenant=labels.get(TENANT_LABEL, ""),
        component=labels.get(COMPONENT_LABEL, ""),
        cpu_cores=cores,
        cpu_limit_cores=cpu_limit_cores(inspected.get("HostConfig"), online),
        memory_bytes=memory_used_bytes(stats.get("memory_stats")),
        memory_limit_bytes=memory_limit_bytes(stats.get("memory_stats")),
    )
    return usage, current


# ---------------------------------------------------------------- per tenant


@dataclass
class TenantUsage:
    """A tenant's running containers summed: CPU as a share of the CPU they may use, memory against its limit."""

    running: int = 0
    cpu_ratio: Optional[float] = None
    """Cores used / cores allowed, over all its running containers (1.0: every allowed CPU busy)."""
    memory_bytes: Optional[float] = None
    memory_limit_bytes: Optional[float] = None


def per_tenant(usages: Iterable[ContainerUsage], running: dict[str, int], unread: Iterable[str] = ()) -> dict[str, TenantUsage]:
    """Sum each tenant's containers. `running` counts each tenant's running containers; a tenant with one of
    them in `unread` (its stats failed), or whose CPU has no previous sample, gets None, not a partial sum."""
    by_tenant: dict[str, list[ContainerUsage]] = {}
    for usage in usages:
        by_tenant.setdefault(usage.tenant, []).append(usage)
    incomplete = set(unread)
    found: dict[str, TenantUsage] = {}
    for tenant, count in running.items():
        mine = by_tenant.get(tenant, [])
        figures = TenantUsage(running=count)
        found[tenant] = figures
        if not count or tenant in incomplete or len(mine) != count:
            continue
        if all(usage.cpu_cores is not None for usage in mine):
            allowed = sum(usage.cpu_limit_cores for usage in mine)
            if allowed > 0:
                figures.cpu_ratio = sum(usage.cpu_cores or 0.0 for usage in mine) / allowed
        if all(usage.memory_bytes is not None and usage.memory_limit_bytes is not None for usage in mine):
            figures.memory_bytes = sum(usage.memory_bytes or 0.0 for usage in mine)
            figures.memory_limit_bytes = sum(usage.memory_limit_bytes or 0.0 for usage in mine)
    return found


# ---------------------------------------------------------------- reading a host


@dataclass
class HostReading:
    """What one app host's Docker gave at one scrape."""

    tenants: dict[str, TenantUsage] = field(default_factory=dict)
    """Per tenant with a fleet container on this host (running or not)."""
    containers: int = 0
    """Running fleet containers whose stats were asked for."""
    failures: list[str] = field(default_factory=list)
    """One line per running container whose stats could not be read (or not within the deadline)."""


class DockerStatsReader:
    """Reads the fleet's containers on app hosts, keeping each container's last CPU sample between scrapes.

    One reader lives as long as the exporter (FleetCollector); it is safe to use from concurrent scrapes."""

    def __init__(self, *, workers: int = 4, timeout: float = 5.0, deadline: float = 5.0) -> None:
        self.workers = workers
        self.timeout = timeout
        """Seconds for each API call."""
        self.deadline = deadline
        """Seconds for all the stats of one host; containers not read by then are failures of this scrape."""
        self._previous: dict[tuple[str, str], CpuSample] = {}
        self._lock = threading.Lock()

    def read(self, url: str) -> HostReading:
        """The host's per-tenant figures; raises (ConnectionError, DockerAPIError, ...) when its containers can't be listed."""
        listed = docker_containers(url, timeout=self.timeout)
        fleet = [container for container in listed if (container.get("Labels") or {}).get(TENANT_LABEL)]
        running_containers = [container for container in fleet if container.get("State") == "running"]
        running: dict[str, int] = {}
        for container in fleet:
            tenant = container["Labels"][TENANT_LABEL]
            running[tenant] = running.get(tenant, 0) + (container.get("State") == "running")

        reading = HostReading(containers=len(running_containers))
        usages: list[ContainerUsage] = []
        unread: set[str] = set()
        pool = ThreadPoolExecutor(max_workers=max(1, self.workers), thread_name_prefix="docker-stats")
        try:
            futures = {pool.submit(self._one, url, container): container for container in running_containers}
            done, pending = wait(futures, timeout=self.deadline)
            for future in done:
                container = futures[future]
                error = future.exception()
                if error is not None:
                    unread.add(container["Labels"][TENANT_LABEL])
                    reading.failures.append(f"{_name(container)}: {one_line(error)}")
                else:
                    usages.append(future.result())
            for future in pending:
                container = futures[future]
                unread.add(container["Labels"][TENANT_LABEL])
                reading.failures.append(f"{_name(container)}: not read within {self.deadline:g} s")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a hung call ends at its own timeout, not the scrape's

        with self._lock:  # forget containers that are gone, so the samples don't grow with every replacement
            alive = {(url, container.get("Id", "")) for container in running_containers}
            for key in [key for key in self._previous if key[0] == url and key not in alive]:
                del self._previous[key]
        reading.tenants = per_tenant(usages, running, unread)
        reading.failures.sort()
        return reading

    def _one(self, url: str, container: dict) -> ContainerUsage:
        container_id = container.get("Id", "")
        stats = docker_get(url, f"/containers/{container_id}/stats?stream=false&one-shot=true", timeout=self.timeout)
        inspected = docker_get(url, f"/containers/{container_id}/json", timeout=self.timeout)
        with self._lock:
            previous = self._previous.get((url, container_id))
        usage, current = container_usage(container, stats, inspected, previous)
        if current is not None:
            with self._lock:
                self._previous[(url, container_id)] = current
        return usage


def _name(container: dict) -> str:
    names = container.get("Names") or []
    return names[0].lstrip("/") if names else container.get("Id", "?")[:12]

