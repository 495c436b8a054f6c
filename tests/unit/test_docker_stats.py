"""Containers' CPU and memory in `fleet metrics`: the docker CLI's arithmetic on recorded Docker API documents
(cgroup v1 and v2), the sum per tenant, `gather()` against a Docker-API-speaking test double on a unix socket,
and the alert rules reading exactly the series the exporter writes (promtool firing them from its output)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import socketserver
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.ops import alert_rules
from fleet.ops.docker_stats import (
    ContainerUsage,
    CpuSample,
    DockerStatsReader,
    TenantUsage,
    container_usage,
    cpu_cores_used,
    cpu_limit_cores,
    cpu_sample,
    memory_limit_bytes,
    memory_used_bytes,
    per_tenant,
)
from fleet.ops.inventory import load_inventory
from fleet.ops.metrics import Snapshot, TenantFigures, families, gather
from fleet.ops.secrets import StaticSecrets
from fleet.ops.status import TenantStatus
from tests.unit.graph import FleetWorkspace
from tests.unit.test_alert_rules import assert_promtool_test_passes, require_promtool, shipped_plans
from tests.unit.test_metrics_units import render

# ---------------------------------------------------------------- recorded Docker API documents
# Shapes of Docker Engine API 1.43+ (GET /containers/{id}/stats, /containers/{id}/json, /containers/json).

NO_THROTTLING = {"periods": 0, "throttled_periods": 0, "throttled_time": 0}

V2_ONE_SHOT: dict[str, Any] = {
    # cgroup v2 host, `stream=false&one-shot=true`: no previous sample (precpu_stats zeroed), no percpu_usage
    "read": "2026-11-30T06:00:00.123456789Z",
    "preread": "0001-01-01T00:00:00Z",
    "pids_stats": {"current": 7, "limit": 18446744073709551615},
    "blkio_stats": {"io_service_bytes_recursive": [{"major": 8, "minor": 0, "op": "read", "value": 4096000}], "io_serviced_recursive": None},
    "num_procs": 0,
    "storage_stats": {},
    "cpu_stats": {
        "cpu_usage": {"total_usage": 9_157_200_000, "usage_in_kernelmode": 2_161_400_000, "usage_in_usermode": 6_995_800_000},
        "system_cpu_usage": 5_103_660_000_000,
        "online_cpus": 8,
        "throttling_data": {"periods": 1520, "throttled_periods": 12, "throttled_time": 930_000_000},
    },
    "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": NO_THROTTLING},
    "memory_stats": {
        "usage": 157_286_400,
        "stats": {
            "active_anon": 0, "active_file": 4_096_000, "anon": 98_304_000, "anon_thp": 0, "file": 52_428_800, "file_dirty": 0,
            "file_mapped": 10_485_760, "file_writeback": 0, "inactive_anon": 98_304_000, "inactive_file": 48_332_800,
            "kernel_stack": 229_376, "pgactivate": 0, "pgdeactivate": 0, "pgfault": 31_547, "pglazyfree": 0, "pglazyfreed": 0,
            "pgmajfault": 12, "pgrefill": 0, "pgscan": 0, "pgsteal": 0, "shmem": 0, "slab": 2_000_000, "slab_reclaimable": 1_500_000,
            "slab_unreclaimable": 500_000, "sock": 0, "thp_collapse_alloc": 0, "thp_fault_alloc": 0, "unevictable": 0,
            "workingset_activate": 0, "workingset_nodereclaim": 0, "workingset_refault": 0,
        },
        "limit": 536_870_912,
    },
    "name": "/santarita-backend-0-5f1c2a7",
    "id": "a1" * 32,
    "networks": {"eth0": {"rx_bytes": 5338, "rx_dropped": 0, "rx_errors": 0, "rx_packets": 36, "tx_bytes": 648, "tx_dropped": 0, "tx_errors": 0, "tx_packets": 8}},
}

V1_WITH_PRECPU: dict[str, Any] = {
    # cgroup v1 host, a daemon that sends its own previous sample (no one-shot); online_cpus left out, as older daemons do
    "read": "2026-11-30T06:00:01.000000000Z",
    "preread": "2026-11-30T06:00:00.000000000Z",
    "pids_stats": {"current": 12},
    "blkio_stats": {"io_service_bytes_recursive": [], "io_serviced_recursive": []},
    "cpu_stats": {
        "cpu_usage": {"total_usage": 100_215_355_000, "percpu_usage": [25_000_000_000, 25_215_355_000, 25_000_000_000, 25_000_000_000],
                      "usage_in_kernelmode": 30_000_000_000, "usage_in_usermode": 50_000_000_000},
        "system_cpu_usage": 739_306_594_000_000_000,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 99_615_355_000, "percpu_usage": [24_850_000_000, 25_065_355_000, 24_850_000_000, 24_850_000_000],
                      "usage_in_kernelmode": 29_800_000_000, "usage_in_usermode": 49_800_000_000},
        "system_cpu_usage": 739_306_590_000_000_000,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "memory_stats": {
        "usage": 209_715_200,
        "max_usage": 230_686_720,
        "failcnt": 0,
        "stats": {
            "active_anon": 125_829_120, "active_file": 10_485_760, "cache": 73_400_320, "dirty": 0, "hierarchical_memory_limit": 1_073_741_824,
            "inactive_anon": 0, "inactive_file": 62_914_560, "mapped_file": 8_388_608, "pgfault": 964, "pgmajfault": 0, "rss": 125_829_120,
            "rss_huge": 0, "total_active_anon": 125_829_120, "total_active_file": 10_485_760, "total_cache": 73_400_320,
            "total_inactive_anon": 0, "total_inactive_file": 62_914_560, "total_rss": 125_829_120, "unevictable": 0,
        },
        "limit": 1_073_741_824,
    },
    "name": "/pirapora-backend-0-77aa01",
    "id": "b1" * 32,
}

STOPPED_ONE_SHOT: dict[str, Any] = {
    # what a one-shot read of a container that is not running gives: zeroes, no memory figures
    "read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z", "pids_stats": {}, "blkio_stats": {}, "num_procs": 0, "storage_stats": {},
    "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": NO_THROTTLING},
    "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": NO_THROTTLING},
    "memory_stats": {}, "name": "/catasaltas-backend-0-0d9e3b", "id": "c1" * 32,
}


def one_shot(base: dict, *, cpu_ns: int, system_ns: int, memory: int, inactive: int, limit: int, online: int = 8) -> dict:
    """A cgroup v2 one-shot document like V2_ONE_SHOT with other figures."""
    document = copy.deepcopy(base)
    document["cpu_stats"]["cpu_usage"]["total_usage"] = cpu_ns
    document["cpu_stats"]["system_cpu_usage"] = system_ns
    document["cpu_stats"]["online_cpus"] = online
    document["memory_stats"].update(usage=memory, limit=limit)
    document["memory_stats"]["stats"]["inactive_file"] = inactive
    return document


def listed(container_id: str, tenant: str, component: str, state: str = "running", **extra_labels: str) -> dict:
    """One entry of GET /containers/json, labelled as fleet.model.derive.labels labels a container."""
    return {
        "Id": container_id,
        "Names": [f"/{tenant}-{component}-0-{container_id[:6]}"],
        "Image": "nginx:1.27.3-alpine",
        "ImageID": "sha256:" + "0" * 64,
        "Command": "/docker-entrypoint.sh nginx -g 'daemon off;'",
        "Created": 1_764_460_800,
        "State": state,
        "Status": "Up 2 hours (healthy)" if state == "running" else "Exited (0) 3 hours ago",
        "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 49153, "Type": "tcp"}],
        "Labels": {"tenant": tenant, "plan": "pro", "component": component, "managed-by": "tenant-fleet", **extra_labels},
        "HostConfig": {"NetworkMode": f"{tenant}-net"},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [],
    }


def inspected(container_id: str, *, nano_cpus: int = 0, cpu_quota: int = 0, cpu_period: int = 0, memory: int = 0) -> dict:
    """The parts of GET /containers/{id}/json the reader uses, in their real place."""
    return {
        "Id": container_id,
        "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False, "Pid": 4242, "ExitCode": 0},
        "HostConfig": {"NanoCpus": nano_cpus, "CpuQuota": cpu_quota, "CpuPeriod": cpu_period, "CpuShares": 0, "Memory": memory, "MemorySwap": memory},
        "Config": {"Labels": {}},
    }


# ---------------------------------------------------------------- one container: the docker CLI's arithmetic


def test_memory_is_usage_less_inactive_file_on_cgroup_v2():
    assert memory_used_bytes(V2_ONE_SHOT["memory_stats"]) == 157_286_400 - 48_332_800
    assert memory_limit_bytes(V2_ONE_SHOT["memory_stats"]) == 536_870_912


def test_memory_is_usage_less_total_inactive_file_on_cgroup_v1_not_less_cache():
    # the docker CLI subtracts total_inactive_file (not `cache`, which also holds active page cache)
    assert memory_used_bytes(V1_WITH_PRECPU["memory_stats"]) == 209_715_200 - 62_914_560
    assert memory_limit_bytes(V1_WITH_PRECPU["memory_stats"]) == 1_073_741_824


def test_a_stopped_container_has_no_figures_not_zeros():
    assert memory_used_bytes(STOPPED_ONE_SHOT["memory_stats"]) is None
    assert memory_limit_bytes(STOPPED_ONE_SHOT["memory_stats"]) is None
    assert cpu_sample(STOPPED_ONE_SHOT["cpu_stats"]) is None
    # an inactive_file larger than usage (a race in the kernel's counters) is not subtracted, as the CLI does
    assert memory_used_bytes({"usage": 1000, "stats": {"inactive_file": 4000}, "limit": 9000}) == 1000.0


def test_a_one_shot_read_has_no_previous_sample_so_its_cpu_waits_for_the_next_scrape():
    assert cpu_sample(V2_ONE_SHOT["precpu_stats"]) is None
    current = cpu_sample(V2_ONE_SHOT["cpu_stats"])
    assert current == CpuSample(9_157_200_000, 5_103_660_000_000, 8)
    assert cpu_cores_used(current, None) is None
    # 10 s later on 8 CPUs: the container used 1.2 s of CPU = 0.12 cores (docker stats: 12 %)
    later = CpuSample(9_157_200_000 + 1_200_000_000, 5_103_660_000_000 + 80_000_000_000, 8)
    assert cpu_cores_used(later, current) == pytest.approx(0.12)


def test_cpu_from_the_daemons_own_previous_sample_with_online_cpus_counted_from_percpu_usage():
    current, previous = cpu_sample(V1_WITH_PRECPU["cpu_stats"]), cpu_sample(V1_WITH_PRECPU["precpu_stats"])
    assert current is not None and current.online_cpus == 4  # len(percpu_usage), as the CLI does without online_cpus
    # 0.6 s of CPU over 4 s of host CPU time (1 s on 4 CPUs): 0.6 cores, docker stats' 60 %
    assert cpu_cores_used(current, previous) == pytest.approx(0.6)
    usage, kept = container_usage(listed("b1" * 32, "pirapora", "backend"), V1_WITH_PRECPU, inspected("b1" * 32, cpu_quota=150_000, cpu_period=100_000), None)
    assert kept == current
    assert usage.cpu_cores == pytest.approx(0.6) and usage.cpu_limit_cores == 1.5
    assert (usage.tenant, usage.component, usage.memory_bytes) == ("pirapora", "backend", 209_715_200 - 62_914_560)


def test_counters_that_went_back_mean_a_restart_and_give_no_figure():
    before = CpuSample(9_000_000_000, 5_000_000_000_000, 8)
    assert cpu_cores_used(CpuSample(100_000_000, 5_010_000_000_000, 8), before) is None
    assert cpu_cores_used(CpuSample(9_100_000_000, 5_000_000_000_000, 8), before) is None  # no host time passed
    assert cpu_cores_used(CpuSample(9_000_000_000, 5_010_000_000_000, 8), before) == 0.0  # idle is a real zero


def test_the_cpu_limit_is_the_plans_cpus_else_a_quota_else_the_host():
    assert cpu_limit_cores({"NanoCpus": 500_000_000, "CpuQuota": 0, "CpuPeriod": 0}, 8) == 0.5  # pulumi-docker `cpus`
    assert cpu_limit_cores({"NanoCpus": 0, "CpuQuota": 50_000, "CpuPeriod": 0}, 8) == 0.5  # default 100 ms period
    assert cpu_limit_cores({"NanoCpus": 0, "CpuQuota": 150_000, "CpuPeriod": 200_000}, 8) == 0.75
    assert cpu_limit_cores({"NanoCpus": 0, "CpuQuota": -1, "CpuPeriod": 0}, 8) == 8.0  # unlimited: the host's CPUs
    assert cpu_limit_cores(None, 4) == 4.0


# ---------------------------------------------------------------- per tenant


def usage(tenant: str, cores: float | None, allowed: float, memory: float | None, limit: float | None, component: str = "backend") -> ContainerUsage:
    return ContainerUsage(f"{tenant}-{component}", tenant, component, cores, allowed, memory, limit)


def test_a_tenants_containers_are_summed_cpu_against_the_cpu_they_may_use():
    found = per_tenant(
        [
            usage("santarita", 0.12, 0.5, 100e6, 512e6),
            usage("santarita", 0.03, 0.25, 20e6, 256e6, "frontend"),
            usage("santarita", 0.3, 1.0, 50e6, 256e6, "worker"),
            usage("gurupi", 0.5, 0.5, 500e6, 512e6),
        ],
        {"santarita": 3, "gurupi": 1, "catasaltas": 0},
    )
    assert found["santarita"].running == 3
    assert found["santarita"].cpu_ratio == pytest.approx(0.45 / 1.75)
    assert (found["santarita"].memory_bytes, found["santarita"].memory_limit_bytes) == (170e6, 1024e6)
    assert found["gurupi"].cpu_ratio == pytest.approx(1.0)
    # stopped (suspended): counted as 0 running, and no CPU or memory at all
    assert (found["catasaltas"].running, found["catasaltas"].cpu_ratio, found["catasaltas"].memory_bytes) == (0, None, None)


def test_one_unknown_container_makes_its_tenants_sum_absent_not_partial():
    found = per_tenant(
        [usage("santarita", None, 0.5, 100e6, 512e6), usage("santarita", 0.03, 0.25, 20e6, 256e6, "frontend"), usage("gurupi", 0.1, 0.5, 10e6, 512e6)],
        {"santarita": 2, "gurupi": 2, "novaroma": 1},
        unread=["gurupi"],
    )
    assert found["santarita"].cpu_ratio is None  # first scrape for its backend
    assert found["santarita"].memory_bytes == 120e6  # memory needs no previous sample
    assert (found["gurupi"].cpu_ratio, found["gurupi"].memory_bytes) == (None, None)  # one of its two containers unread
    assert (found["novaroma"].running, found["novaroma"].memory_bytes) == (1, None)  # listed running, its stats missing


# ---------------------------------------------------------------- gather() against a Docker API test double


class FakeDocker:
    """A Docker daemon's API as the reader uses it, on a unix socket: the container listing (honouring the label
    filter), inspection, and stats documents served in order (the last one repeats). Records every path asked."""

    def __init__(self, socket_path: Path) -> None:
        self.containers: list[dict] = []
        self.inspections: dict[str, dict] = {}
        self.stats: dict[str, list[dict]] = {}
        self.broken: set[str] = set()
        self.slow: dict[str, float] = {}
        self.asked: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                fake.asked.append(self.path)
                status, body = fake.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

            def address_string(self) -> str:
                return "unix"

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(str(socket_path), Handler)
        self.url = f"unix://{socket_path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str) -> tuple[int, Any]:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path == "/containers/json":
            wanted = json.loads(query["filters"][0])["label"]
            assert wanted == ["managed-by=tenant-fleet"] and query["all"] == ["1"]
            return 200, [c for c in self.containers if all(c["Labels"].get(k) == v for k, v in (item.split("=", 1) for item in wanted))]
        match = re.fullmatch(r"/containers/([0-9a-f]+)/(json|stats)", parts.path)
        if not match or match.group(1) not in self.inspections:
            return 404, {"message": f"No such container: {path}"}
        container_id, what = match.groups()
        if what == "json":
            return 200, self.inspections[container_id]
        assert query == {"stream": ["false"], "one-shot": ["true"]}, path
        if container_id in self.broken:
            return 500, {"message": "cgroup read failed"}
        time.sleep(self.slow.get(container_id, 0.0))
        documents = self.stats[container_id]
        return 200, documents.pop(0) if len(documents) > 1 else documents[0]

    def add(self, entry: dict, inspection: dict, *documents: dict) -> None:
        self.containers.append(entry)
        self.inspections[entry["Id"]] = inspection
        self.stats[entry["Id"]] = list(documents)

    def stats_asked(self) -> set[str]:
        return {path.split("/")[2] for path in self.asked if "/stats?" in path}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def docker_dir() -> Iterator[Path]:
    # a short path: a unix socket's path must stay under 108 bytes, and pytest's tmp_path may not
    folder = Path(tempfile.mkdtemp(prefix="fleet-docker-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def docker(docker_dir: Path) -> Iterator[FakeDocker]:
    fake = FakeDocker(docker_dir / "docker.sock")
    yield fake
    fake.close()


SANTARITA_BACKEND, SANTARITA_FRONTEND, SANTARITA_JOB = "a1" * 32, "a2" * 32, "a3" * 32
PIRAPORA_BACKEND, CATASALTAS_BACKEND = "b1" * 32, "c1" * 32
SYSTEM_0 = 5_103_660_000_000
TEN_SECONDS_ON_8 = 80_000_000_000


def populate(docker: FakeDocker) -> None:
    """santarita: backend + frontend running (cgroup v2, one-shot) and a finished job; pirapora: a backend on a
    daemon that sends precpu_stats (cgroup v1); catasaltas (suspended): its backend stopped."""
    docker.add(
        listed(SANTARITA_BACKEND, "santarita", "backend"), inspected(SANTARITA_BACKEND, nano_cpus=500_000_000, memory=536_870_912),
        one_shot(V2_ONE_SHOT, cpu_ns=9_157_200_000, system_ns=SYSTEM_0, memory=157_286_400, inactive=48_332_800, limit=536_870_912),
        one_shot(V2_ONE_SHOT, cpu_ns=9_157_200_000 + 1_200_000_000, system_ns=SYSTEM_0 + TEN_SECONDS_ON_8, memory=167_772_160, inactive=48_332_800, limit=536_870_912),
    )
    docker.add(
        listed(SANTARITA_FRONTEND, "santarita", "frontend"), inspected(SANTARITA_FRONTEND, nano_cpus=250_000_000, memory=268_435_456),
        one_shot(V2_ONE_SHOT, cpu_ns=400_000_000, system_ns=SYSTEM_0, memory=20_971_520, inactive=4_194_304, limit=268_435_456),
        one_shot(V2_ONE_SHOT, cpu_ns=400_000_000 + 300_000_000, system_ns=SYSTEM_0 + TEN_SECONDS_ON_8, memory=20_971_520, inactive=4_194_304, limit=268_435_456),
    )
    docker.add(listed(SANTARITA_JOB, "santarita", "job", state="exited", job="migrate"), inspected(SANTARITA_JOB), STOPPED_ONE_SHOT)
    docker.add(listed(PIRAPORA_BACKEND, "pirapora", "backend"), inspected(PIRAPORA_BACKEND, cpu_quota=150_000, cpu_period=100_000), V1_WITH_PRECPU)
    docker.add(listed(CATASALTAS_BACKEND, "catasaltas", "backend", state="exited"), inspected(CATASALTAS_BACKEND), STOPPED_ONE_SHOT)
    # not the fleet's: the label filter leaves it out
    other = listed("d1" * 32, "santarita", "backend")
    other["Labels"]["managed-by"] = "someone-else"
    docker.add(other, inspected("d1" * 32), V2_ONE_SHOT)


@pytest.fixture
def inventory(workspace: FleetWorkspace, docker: FakeDocker, docker_dir: Path):
    """The dev fleet with the default app host on the test double; novaroma on `vps-2`, whose Docker is not
    there; gurupi on a Kubernetes cluster. No PostgreSQL answers (closed loopback ports)."""
    config = workspace.config
    for server in config["servers"].values():
        server["port"] = 9  # discard: nothing listens
    config["docker_host"] = {**config["docker_host"], "url": docker.url}
    config["docker_hosts"] = {"vps-2": {"url": f"unix://{docker_dir / 'absent.sock'}", "memory_mb": 8192, "cpus": 4, "upstream_host": "127.0.0.2"}}
    config["kubernetes_hosts"] = {"k8s-1": {"kubeconfig": "/etc/fleet/k8s-1.kubeconfig", "cpus": 16, "memory_mb": 32768, "routing": "pods", "proxy_sources": ["10.88.0.1/32"]}}
    workspace.edit("novaroma", app={"host": "vps-2"})
    workspace.edit("gurupi", app={"host": "k8s-1"})
    return load_inventory(
        "dev", root=workspace.tenants_dir.parent, tenants_dir=workspace.tenants_dir, config=config,
        secrets=StaticSecrets({"shared-1": "x", "dedicated-1": "x"}), backups_dir=docker_dir / "backups",
    )


def no_caddy(url: str) -> str:
    raise ConnectionRefusedError("no Caddy in this test")


def container_series(text: str) -> dict[tuple[str, str], float]:
    """(series, tenant) -> value of the exposition's container series."""
    return {
        (sample.name, sample.labels["tenant"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("tenant_fleet_containers_")
    }


def test_gather_reads_running_containers_and_exports_cpu_from_the_second_scrape(inventory, docker: FakeDocker):
    populate(docker)
    reader = DockerStatsReader()
    first = render(gather(inventory, caddy_text=no_caddy, docker_stats=reader))
    # memory from the first scrape; CPU absent until there is a previous sample (pirapora's daemon sent its own)
    assert container_series(first) == pytest.approx({
        ("tenant_fleet_containers_cpu_ratio", "pirapora"): 0.6 / 1.5,
        ("tenant_fleet_containers_memory_bytes", "pirapora"): 209_715_200 - 62_914_560,
        ("tenant_fleet_containers_memory_limit_bytes", "pirapora"): 1_073_741_824,
        ("tenant_fleet_containers_memory_bytes", "santarita"): 157_286_400 - 48_332_800 + 20_971_520 - 4_194_304,
        ("tenant_fleet_containers_memory_limit_bytes", "santarita"): 536_870_912 + 268_435_456,
        ("tenant_fleet_containers_running", "catasaltas"): 0,
        ("tenant_fleet_containers_running", "pirapora"): 1,
        ("tenant_fleet_containers_running", "santarita"): 2,
    })
    # stopped containers (santarita's finished job, suspended catasaltas) and others' containers are never asked for stats
    assert docker.stats_asked() == {SANTARITA_BACKEND, SANTARITA_FRONTEND, PIRAPORA_BACKEND}
    assert 'tenant_fleet_source_up{key="default",source="docker"} 1.0' in first
    assert 'tenant_fleet_source_up{key="default",source="docker_stats"} 1.0' in first
    # vps-2 has no Docker: named absent, and its tenant has no container series at all
    assert 'tenant_fleet_source_up{key="vps-2",source="docker"} 0.0' in first
    assert all(tenant != "novaroma" for _name, tenant in container_series(first))
    # gurupi runs on a Kubernetes cluster: not read here, nothing broken
    assert all(tenant != "gurupi" for _name, tenant in container_series(first))
    assert 'key="k8s-1"' not in first

    second = gather(inventory, caddy_text=no_caddy, docker_stats=reader)
    santarita = next(tenant for tenant in second.tenants if tenant.status.tenant == "santarita")
    assert santarita.containers is not None
    # backend 0.12 cores of 0.5, frontend 0.03 of 0.25: 0.15 of 0.75 = 20 % of the CPU its plan gives
    assert santarita.containers.cpu_ratio == pytest.approx(0.2)
    assert santarita.containers.memory_bytes == 167_772_160 - 48_332_800 + 20_971_520 - 4_194_304
    assert container_series(render(second))[("tenant_fleet_containers_cpu_ratio", "santarita")] == pytest.approx(0.2)


def test_a_container_whose_stats_fail_leaves_its_tenant_absent_and_is_named(inventory, docker: FakeDocker):
    populate(docker)
    docker.broken.add(SANTARITA_FRONTEND)
    snapshot = gather(inventory, caddy_text=no_caddy, docker_stats=DockerStatsReader())
    text = render(snapshot)
    assert 'tenant_fleet_containers_memory_bytes{tenant="santarita"}' not in text  # not the backend's half
    assert 'tenant_fleet_containers_running{tenant="santarita"} 2.0' in text
    assert 'tenant_fleet_containers_memory_bytes{tenant="pirapora"}' in text  # the others are still read
    stats_source = next(source for source in snapshot.sources if source.source == "docker_stats")
    assert not stats_source.up
    assert stats_source.detail.startswith("1 of 3 running containers unread: santarita-frontend-0-a2a2a2: docker API answered 500")


def test_a_slow_daemon_is_bounded_by_the_deadline(inventory, docker: FakeDocker):
    populate(docker)
    docker.slow[PIRAPORA_BACKEND] = 3.0
    started = time.monotonic()
    snapshot = gather(inventory, caddy_text=no_caddy, docker_stats=DockerStatsReader(deadline=0.5))
    assert time.monotonic() - started < 2.5
    stats_source = next(source for source in snapshot.sources if source.source == "docker_stats")
    assert "pirapora-backend-0-b1b1b1: not read within 0.5 s" in stats_source.detail
    text = render(snapshot)
    assert 'tenant_fleet_containers_memory_bytes{tenant="pirapora"}' not in text
    assert 'tenant_fleet_containers_memory_bytes{tenant="santarita"}' in text


def test_without_docker_the_container_series_are_absent_and_docker_is_named(inventory, docker: FakeDocker):
    docker.close()
    (Path(docker.url.removeprefix("unix://"))).unlink()
    snapshot = gather(inventory, caddy_text=no_caddy, docker_stats=DockerStatsReader())
    text = render(snapshot)
    assert container_series(text) == {}
    assert 'tenant_fleet_source_up{key="default",source="docker"} 0.0' in text
    assert next(source for source in snapshot.sources if source.key == "default" and source.source == "docker").detail.startswith("no Docker at unix://")
    assert all(source.source != "docker_stats" for source in snapshot.sources)


# ---------------------------------------------------------------- the rules read what the exporter writes


def exported_series_names() -> set[str]:
    """Every sample name the exporter can write, from its families (whatever the data)."""
    names: set[str] = set()
    for family in families(Snapshot([], [], 0.0)):
        suffixes = {"counter": ("_total",), "info": ("_info",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_every_series_an_alert_rule_reads_is_one_the_exporter_writes():
    exported = exported_series_names()
    assert {"tenant_fleet_containers_cpu_ratio", "tenant_fleet_containers_memory_bytes", "tenant_fleet_containers_memory_limit_bytes"} <= exported
    read = set()
    for plan_name, plan in shipped_plans().items():
        for rule in alert_rules.plan_alerts(plan_name, plan):
            names = set(re.findall(r"\btenant_fleet_[a-z0-9_]+", rule.expr))
            assert names, rule.expr
            assert names <= exported, f"{plan_name} {rule.alert} reads {sorted(names - exported)}, which the exporter does not write"
            read |= names
    assert {"tenant_fleet_containers_cpu_ratio", "tenant_fleet_containers_memory_bytes", "tenant_fleet_containers_memory_limit_bytes"} <= read


PROMTOOL_CONTAINERS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
{series}
    alert_rule_test:
      - eval_time: 3m
        alertname: TenantCPUHigh
        exp_alerts: []
      - eval_time: 8m
        alertname: TenantCPUHigh
        exp_alerts:
          - exp_labels: {{tenant: busy, plan: basic, severity: warning}}
            exp_annotations:
              summary: 'Tenant busy: CPU at 90% of its plan (basic alerts above 80%)'
              description: 'The containers of tenant busy have used more than 80% of the CPU its plan gives for 5 minutes.'
      - eval_time: 8m
        alertname: TenantMemoryHigh
        exp_alerts:
          - exp_labels: {{tenant: busy, plan: basic, severity: warning}}
            exp_annotations:
              summary: 'Tenant busy: memory at 95% of its limit (basic alerts above 90%)'
              description: 'The containers of tenant busy have used more than 90% of their memory limit for 5 minutes.'
"""


def test_promtool_fires_cpu_and_memory_alerts_from_the_exporters_own_output(tmp_path: Path):
    require_promtool()

    def tenant(name: str, usage: TenantUsage) -> TenantFigures:
        return TenantFigures(TenantStatus(name, "basic", "active", "shared-1", f"tenant_{name}"), "shared-1", "v1", containers=usage)

    snapshot = Snapshot(
        [
            tenant("busy", TenantUsage(running=2, cpu_ratio=0.9, memory_bytes=950_000_000, memory_limit_bytes=1_000_000_000)),
            tenant("calm", TenantUsage(running=2, cpu_ratio=0.3, memory_bytes=500_000_000, memory_limit_bytes=1_000_000_000)),
            tenant("stopped", TenantUsage(running=0)),
        ],
        [],
    )
    series = []
    for family in text_string_to_metric_families(render(snapshot)):
        for sample in family.samples:
            if sample.name.startswith("tenant_fleet_containers_") or sample.name == "tenant_fleet_tenant_info":
                labels = ", ".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
                series.append(f"      - series: '{sample.name}{{{labels}}}'\n        values: '{sample.value!r}x12'")
    assert any("containers_cpu_ratio{tenant=\"busy\"}" in line for line in series)
    assert_promtool_test_passes(shipped_plans(), tmp_path, PROMTOOL_CONTAINERS, series="\n".join(series))
