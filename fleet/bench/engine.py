"""What the real engine takes on proxy-only fleets with a real Caddy: one stack per tenant beside one stack for all.

For each size: create every tenant from nothing, `fleet up` with nothing changed, and one-tenant changes
(suspend one, add one, remove one), with the peak memory of every process. Measurements, not timed tests.
"""


from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from fleet.bench.offline import TreeMemory, add_tenant, tenant_name, write_fleet
from fleet.bench.servers import CaddyServerProcess, UpstreamHTTPServer, free_port
from fleet.engine import driver, verbs
from fleet.engine.ledger import Ledger
from fleet.errors import FleetError

# ---------------------------------------------------------------- a fleet of stacks beside one stack


def run_layouts(
    *, sizes: Iterable[int] = (10, 300, 1000), layouts: Iterable[str] = ("per-tenant", "single"), parallel: Optional[int] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> list[dict[str, Any]]:
    """For each layout and size: create_all_s, noop_up_s, one_tenant_up_s (a suspend), add_one_s, remove_one_s, peak_rss_mb."""
    driver.check_engine()
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="fleet-bench-layouts-"))
    caddy = CaddyServerProcess()
    upstreams = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    try:
        caddy.start()
        for server in upstreams.values():
            server.start()
        for layout in layouts:
            for size in sorted(set(sizes)):
                caddy.restart(resume=False)  # each run starts from an empty Caddy
                proxy = {
                    "admin_url": caddy.admin_url,
                    "server": "fleet",
                    "listen": [f"127.0.0.1:{free_port()}"],
                    "automatic_https": False,
                    "external_upstreams": {role: server.address for role, server in upstreams.items()},
                }
                if progress:
                    progress(f"{layout}: {size} tenants")
                results.append(_measure_layout(scratch / f"{layout}-{size}", layout, size, proxy, parallel, progress, caddy))
    finally:
        for server in upstreams.values():
            server.stop()
        caddy.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _measure_layout(
    root: Path, layout: str, size: int, proxy: dict[str, Any], parallel: Optional[int], progress, caddy: CaddyServerProcess
) -> dict[str, Any]:
    environment = f"bench{size}"
    backend = str(root / "state")
    write_fleet(root, size, stack=environment, layers=["proxy"], proxy=proxy, stacks=layout)

    def fleet_up() -> float:
        out = io.StringIO()
        started = time.perf_counter()
        if layout == "per-tenant":
            code = verbs.run_fleet_verb("up", environment, root=root, backend=backend, parallel=parallel, json_output=True, yes=True, out=out)
        else:  # --yes, as CI runs it: no preview before the up
            code = verbs.run_engine_verb("up", environment, root=root, backend_dir=Path(backend), json_output=True, yes=True, out=out)
        if code != 0:
            raise FleetError(f"bench: fleet up of {environment} ({layout}) failed: {out.getvalue()[-2000:]}")
        return round(time.perf_counter() - started, 2)

    figures: dict[str, Any] = {"layout": layout, "tenants": size}
    with TreeMemory(os.getpid(), interval=0.2) as memory:
        caddy_before = caddy.cpu_seconds()
        figures["create_all_s"] = fleet_up()
        figures["caddy_cpu_create_s"] = round(caddy.cpu_seconds() - caddy_before, 1)
        if progress:
            progress(f"  created {size} tenants in {figures['create_all_s']} s")
        figures["noop_up_s"] = fleet_up()
        first = root / "tenants" / f"{tenant_name(0)}.yaml"
        original = first.read_text()
        first.write_text(original.replace("status: active", "status: suspended") if "status: active" in original else original + "status: suspended\n")
        figures["one_tenant_up_s"] = fleet_up()
        first.write_text(original)
        add_tenant(root, size)
        figures["add_one_s"] = fleet_up()
        (root / "tenants" / f"{tenant_name(size)}.yaml").unlink()
        figures["remove_one_s"] = fleet_up()
    figures["stacks"] = len(Ledger(driver.backend_url(backend)).read())
    figures["peak_rss_mb"] = round(memory.peak_process_kb / 1024, 1)
    figures["peak_tree_rss_mb"] = round(memory.peak_kb / 1024, 1)
    if progress:
        progress(f"  {figures}")
    return figures


def format_layouts(results: list[dict[str, Any]]) -> str:
    """The layouts side by side, as a table."""
    header = f"{'layout':<11} {'tenants':>7} {'stacks':>6} {'create all':>10} {'no-op up':>8} {'1 tenant':>8} {'add 1':>6} {'remove 1':>8} {'peak MB':>7}"
    lines = ["Real engine, proxy-only fleets against a real Caddy (seconds; peak = largest single process):", header]
    for row in results:
        lines.append(
            f"{row['layout']:<11} {row['tenants']:>7} {row['stacks']:>6} {row['create_all_s']:>10.1f} {row['noop_up_s']:>8.1f} "
            f"{row['one_tenant_up_s']:>8.1f} {row['add_one_s']:>6.1f} {row['remove_one_s']:>8.1f} {row['peak_rss_mb']:>7.0f}"
        )
    return "\n".join(lines)
