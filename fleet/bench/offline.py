"""How the offline plan scales from 10 to 1,000 tenants: time, memory and resources per tenant.

Synthetic fleets (tenants spread over plans and servers) are written to scratch folders and each size
is measured in a fresh worker process.
"""


from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import yaml

from fleet.errors import FleetError
from fleet.paths import PROJECT_ROOT

SIZES = (10, 100, 1000)
BENCH_STACK = "bench"

# Targets of the issue, on a 2-core machine.
TARGET_PLAN_S_AT_1000 = 10.0
TARGET_PEAK_MB_AT_1000 = 1024.0
TARGET_PER_TENANT_RATIO = 1.2

# Modules a plan with `dns: none` must not import (they cost seconds and hundreds of MB).
HEAVY_MODULES = ("pulumi_cloudflare",)

# ---------------------------------------------------------------- synthetic fleets

PLAN_CYCLE = ("basic",) * 6 + ("pro",) * 3 + ("enterprise",)
"""Plan of tenant i is PLAN_CYCLE[i % 10]: 60 % basic, 30 % pro, 10 % enterprise."""
SHARED_SERVERS = ("shared-1", "shared-2", "shared-3")
DEDICATED_SERVERS = ("dedicated-1", "dedicated-2")
UTILIZATION = 0.6
"""Capacity is declared so that the synthetic fleet uses about this share of it (no capacity violations)."""


def tenant_name(index: int) -> str:
    """A DNS label that is never reserved: t00000, t00001, ..."""
    return f"t{index:05d}"


def synthetic_tenant(index: int) -> dict[str, Any]:
    """The content of tenant file number `index`: deterministic, varied across plans, servers and options."""
    name = tenant_name(index)
    plan = PLAN_CYCLE[index % len(PLAN_CYCLE)]
    server = DEDICATED_SERVERS[(index // 10) % len(DEDICATED_SERVERS)] if plan == "enterprise" else SHARED_SERVERS[index % len(SHARED_SERVERS)]
    data: dict[str, Any] = {
        "name": name,
        "display_name": f"Prefeitura {index}",
        "plan": plan,
        "status": "suspended" if index % 20 == 7 else "active",
        "database": {"server": server},
    }
    if index % 5 == 0:
        data["domains"] = [f"precos.{name}.example.gov.br"]
    branding: dict[str, Any] = {"color": f"#{(index * 2654435761) % 0xFFFFFF:06X}"}
    if index % 4 == 1:
        branding["logo_url"] = f"https://cdn.example.com/{name}.png"
    if index % 3 == 2:
        branding["tab_name"] = f"Cesta de Precos {index}"
    data["branding"] = branding
    if plan == "pro" and index % 7 == 0:
        data["overrides"] = {"backend": {"memory_mb": 768}}
    if index % 11 == 0:
        data["rotation"] = 1
    return data


def _plan_catalog() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "tenants" / "_plans.yaml").read_text())["plans"]


def _load(tenants: list[dict[str, Any]], plans: dict[str, Any]) -> tuple[float, float, dict[str, int]]:
    """Memory (MB) and CPUs the fleet's containers ask for, and database connections per server."""
    memory = cpus = 0.0
    connections: dict[str, int] = {}
    for tenant in tenants:
        plan = plans[tenant["plan"]]
        connections[tenant["database"]["server"]] = connections.get(tenant["database"]["server"], 0) + plan["db_connections"]
        if tenant["status"] == "suspended":
            continue
        for role in ("backend", "frontend"):
            size = {**plan[role], **((tenant.get("overrides") or {}).get(role) or {})}
            memory += size["memory_mb"] * size["replicas"]
            cpus += size["cpu"] * size["replicas"]
    return memory, cpus, connections


def synthetic_config(
    tenants: list[dict[str, Any]], *, layers: Optional[list[str]] = None, proxy: Optional[dict[str, Any]] = None, stacks: Optional[str] = None
) -> dict[str, Any]:
    """`fleet:` config values for a synthetic fleet: the dev stack's, with servers and capacity sized to the fleet."""
    plans = _plan_catalog()
    memory, cpus, connections = _load(tenants, plans)
    headroom = 15
    usable = UTILIZATION * (1 - headroom / 100)
    servers = {}
    for index, key in enumerate(SHARED_SERVERS + DEDICATED_SERVERS):
        reserved = 10
        servers[key] = {
            "host": "127.0.0.1",
            "port": 5432 + index,
            "admin_user": "postgres",
            "max_connections": max(100, math.ceil(connections.get(key, 0) / UTILIZATION) + reserved),
            "reserved_connections": reserved,
            "sslmode": "disable",
        }
    config: dict[str, Any] = {
        "base_domain": "fleet.localhost",
        "dns": {"mode": "none"},
        "servers": servers,
        "docker_host": {
            "url": "unix:///var/run/docker.sock",
            "memory_mb": max(256, math.ceil(memory / usable)),
            "cpus": max(1, math.ceil(cpus / usable)),
            "headroom_percent": headroom,
        },
        "images": {"backend": "nginx:1.27.3-alpine", "frontend": "nginx:1.27.3-alpine", "backend_port": 80, "frontend_port": 80, "health_path": "/"},
        "proxy": proxy or {"admin_url": "http://127.0.0.1:2019", "server": "fleet", "listen": ["127.0.0.1:8080"], "automatic_https": False},
    }
    if layers is not None:
        config["layers"] = list(layers)
    if stacks is not None:
        config["stacks"] = stacks
    return config


SCRATCH_MARKER = ".fleet-bench-scratch"
"""Written into every folder the benchmark fills: only such a folder's tenants are ever replaced."""


def write_fleet(root: Path, size: int, *, stack: str = BENCH_STACK, **config_options: Any) -> dict[str, Any]:
    """Write `size` tenant files and the plan catalog to root/tenants (replacing any the benchmark wrote) and
    root/Pulumi.<stack>.yaml; return the `fleet:` config. Refuses a folder the benchmark did not make its own."""
    root = Path(root)
    tenants_dir = root / "tenants"
    if root.resolve() == PROJECT_ROOT.resolve():
        raise FleetError(f"bench: {root} is the project itself; synthetic fleets go to a scratch folder, never over real tenant files")
    if tenants_dir.exists() and not (root / SCRATCH_MARKER).exists():
        raise FleetError(f"bench: {tenants_dir} holds tenant files the benchmark did not write; not replacing them")
    root.mkdir(parents=True, exist_ok=True)
    (root / SCRATCH_MARKER).write_text("synthetic fleets of `python -m fleet bench`; safe to delete\n")
    if tenants_dir.exists():
        shutil.rmtree(tenants_dir)
    tenants_dir.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "tenants" / "_plans.yaml", tenants_dir / "_plans.yaml")
    tenants = [synthetic_tenant(index) for index in range(size)]
    for tenant in tenants:
        (tenants_dir / f"{tenant['name']}.yaml").write_text(yaml.safe_dump(tenant, sort_keys=False))
    config = synthetic_config(tenants, **config_options)
    stack_file = {"config": {f"fleet:{key}": value for key, value in config.items()}}
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(stack_file, sort_keys=False))
    return config


def add_tenant(root: Path, index: int) -> str:
    """Write one more synthetic tenant file; returns its name."""
    tenant = synthetic_tenant(index)
    (root / "tenants" / f"{tenant['name']}.yaml").write_text(yaml.safe_dump(tenant, sort_keys=False))
    return tenant["name"]


# ---------------------------------------------------------------- the offline plan, measured in this process


def _rusage_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KB


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_plan(root: Path, *, policies: bool = True, workers: Optional[int] = None) -> dict[str, Any]:
    """Run the offline plan of the bench stack in `root` in this process, as `fleet plan` does
    (`plan_stack`, then `policy_check.check_stack` unless `policies` is off), and return its figures."""
    started = time.perf_counter()
    # Imported here, inside the measured start-up, as a `fleet plan` process pays for them.
    from fleet.offline import plan as plan_module
    from fleet.offline import policies as policy_check

    tenants_dir = root / "tenants"
    # Startup, paid once per process and not per tenant: imports, and one tenant's plan (the program imports
    # its components and provider SDKs on first use).
    plan_module.plan_stack(BENCH_STACK, root, tenants_dir=tenants_dir, selection=[tenant_name(0)])
    startup_s = time.perf_counter() - started

    cpu = _cpu_s()
    started = time.perf_counter()
    options: dict[str, Any] = {"workers": workers} if workers is not None else {}
    evaluation = plan_module.plan_stack(BENCH_STACK, root, tenants_dir=tenants_dir, **options)
    evaluate_s = time.perf_counter() - started
    evaluate_cpu_s = _cpu_s() - cpu

    policy_s: Optional[float] = None
    violations: Optional[dict[str, int]] = None
    if policies:
        started = time.perf_counter()
        found = policy_check.check_stack(evaluation, BENCH_STACK, root, tenants_dir)
        policy_s = time.perf_counter() - started
        violations = {"mandatory": sum(1 for v in found if v.mandatory), "advisory": sum(1 for v in found if not v.mandatory)}

    tenants = len(evaluation.specs)
    plan_s = evaluate_s + (policy_s or 0.0)
    return {
        "tenants": tenants,
        "resources": len(evaluation.resources),
        "custom_resources": len(evaluation.custom_resources()),
        "startup_s": round(startup_s, 3),
        "evaluate_s": round(evaluate_s, 3),
        "evaluate_cpu_s": round(evaluate_cpu_s, 3),
        "policy_s": round(policy_s, 3) if policy_s is not None else None,
        "plan_s": round(plan_s, 3),
        "per_tenant_ms": round(1000 * plan_s / tenants, 3) if tenants else None,
        "evaluate_per_tenant_ms": round(1000 * evaluate_s / tenants, 3) if tenants else None,
        "violations": violations,
        "max_rss_mb": round(_rusage_mb(resource.RUSAGE_SELF), 1),
        "max_worker_rss_mb": round(_rusage_mb(resource.RUSAGE_CHILDREN), 1),
        "heavy_imports": sorted(name for name in HEAVY_MODULES if name in sys.modules),
    }


class TreeMemory:
    """Samples the summed resident memory of a process and all its descendants (Linux /proc), keeping the peak."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self.peak_process_kb = 0
        """The largest resident memory of any one process of the tree."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self._tree_rss_kb())
            self._stop.wait(self.interval)

    def _tree_rss_kb(self) -> int:
        total, pending = 0, [self.pid]
        while pending:
            pid = pending.pop()
            try:
                with open(f"/proc/{pid}/status") as status:
                    rss = next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
                    total += rss
                    self.peak_process_kb = max(self.peak_process_kb, rss)
                with open(f"/proc/{pid}/task/{pid}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
            except (OSError, ValueError):
                continue
        return total


def run_size(size: int, *, policies: bool = True, workers: Optional[int] = None, python: str = sys.executable, keep: Optional[Path] = None) -> dict[str, Any]:
    """Write a fleet of `size` tenants and measure its plan in a fresh process (its own peak memory, workers included)."""
    scratch = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=f"fleet-bench-{size}-"))
    try:
        write_fleet(scratch, size)
        command = [python, "-m", "fleet.bench.offline", "--worker", str(scratch)]
        if not policies:
            command.append("--no-policies")
        if workers is not None:
            command += ["--workers", str(workers)]
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env())
        sampler = TreeMemory(proc.pid) if Path("/proc").is_dir() else None
        if sampler:
            with sampler:
                stdout, stderr = proc.communicate()
        else:
            stdout, stderr = proc.communicate()
        process_s = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"bench worker for {size} tenants failed (exit {proc.returncode}):\n{stderr[-4000:]}")
        result = json.loads(stdout.strip().splitlines()[-1])
        result["size"] = size
        result["process_s"] = round(process_s, 3)
        # Peak of everything the plan ran at once: the process and its shard workers (summed RSS, sampled).
        result["peak_rss_mb"] = round(sampler.peak_kb / 1024, 1) if sampler and sampler.peak_kb else max(result["max_rss_mb"], result["max_worker_rss_mb"])
        return result
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)])
    return env


def run_plans(
    sizes: Iterable[int] = SIZES,
    *,
    policies: bool = True,
    workers: Optional[int] = None,
    repeat: int = 1,
    progress: Optional[Callable[[str], None]] = None,
) -> list[dict[str, Any]]:
    """Measure each size (the fastest of `repeat` runs, each in a fresh process)."""
    results = []
    for size in sizes:
        runs = []
        for attempt in range(repeat):
            if progress:
                progress(f"plan of {size} tenants" + (f" (run {attempt + 1}/{repeat})" if repeat > 1 else ""))
            runs.append(run_size(size, policies=policies, workers=workers))
        best = min(runs, key=lambda r: r["plan_s"])
        best["runs"] = [r["plan_s"] for r in runs]
        results.append(best)
    return results


def verdict(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, checked on the largest and smallest sizes measured."""
    by_size = {r["size"]: r for r in results}
    out: dict[str, Any] = {}
    if 1000 in by_size:
        big = by_size[1000]
        out["plan_1000_under_10s"] = big["plan_s"] < TARGET_PLAN_S_AT_1000
        out["peak_1000_under_1gb"] = big["peak_rss_mb"] < TARGET_PEAK_MB_AT_1000
    if by_size:
        small, large = by_size[min(by_size)], by_size[max(by_size)]
        if small is not large and small["per_tenant_ms"]:
            ratio = large["per_tenant_ms"] / small["per_tenant_ms"]
            out["per_tenant_ratio"] = round(ratio, 3)
            out["per_tenant_ratio_ok"] = ratio <= TARGET_PER_TENANT_RATIO
    out["no_heavy_imports"] = all(not r["heavy_imports"] for r in results)
    return out


def format_verdict(targets: dict[str, Any]) -> str:
    """The targets as one line."""
    parts = []
    if "plan_1000_under_10s" in targets:
        parts.append(f"1,000 tenants under {TARGET_PLAN_S_AT_1000:g} s: {'yes' if targets['plan_1000_under_10s'] else 'NO'}")
        parts.append(f"under {TARGET_PEAK_MB_AT_1000:g} MB: {'yes' if targets['peak_1000_under_1gb'] else 'NO'}")
    if "per_tenant_ratio" in targets:
        parts.append(
            f"time per tenant, largest/smallest: {targets['per_tenant_ratio']:.2f} "
            f"(target <= {TARGET_PER_TENANT_RATIO:g}: {'yes' if targets['per_tenant_ratio_ok'] else 'NO'})"
        )
    parts.append(f"heavy imports ({', '.join(HEAVY_MODULES)}) avoided: {'yes' if targets['no_heavy_imports'] else 'NO'}")
    return "Targets: " + "; ".join(parts) + "."


def format_table(results: list[dict[str, Any]]) -> str:
    """The figures as a plain-text table."""
    header = ("tenants", "resources", "evaluate s", "policies s", "plan s", "ms/tenant", "CPU ms/tenant", "peak MB", "startup s", "violations")
    rows = []
    for r in results:
        violations = r.get("violations")
        rows.append(
            (
                str(r["tenants"]),
                f"{r['resources']} ({r['custom_resources']} custom)",
                f"{r['evaluate_s']:.2f}",
                f"{r['policy_s']:.2f}" if r.get("policy_s") is not None else "n/a",
                f"{r['plan_s']:.2f}",
                f"{r['per_tenant_ms']:.1f}",
                f"{1000 * r['evaluate_cpu_s'] / r['tenants']:.1f}" if r["tenants"] else "n/a",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['startup_s']:.2f}",
                f"{violations['mandatory']}+{violations['advisory']}" if violations else "n/a",
            )
        )
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(header))]
    lines += ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- worker entry point


def _worker(argv: list[str]) -> int:

    parser = argparse.ArgumentParser(prog="python -m fleet.bench.offline")
    parser.add_argument("--worker", required=True, help="folder with Pulumi.bench.yaml and tenants/")
    parser.add_argument("--no-policies", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    result = measure_plan(Path(args.worker), policies=not args.no_policies, workers=args.workers)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
