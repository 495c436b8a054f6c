"""What the real engine takes on a proxy-only stack with a real Caddy: create, no-change preview, one-tenant up.
"""


from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from fleet.bench.offline import add_tenant, write_fleet
from fleet.bench.servers import CaddyServerProcess, UpstreamHTTPServer, free_port
from fleet.engine import driver, plugins, verbs
from fleet.offline.plan import plan_stack
from fleet.program import fleet_program

# ---------------------------------------------------------------- the real engine (proxy-only stack)


def run_engine(*, fleet_sizes: Iterable[int] = (3, 20), progress: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """Time the real engine on proxy-only stacks (layers [proxy], apps reached through `proxy.external_upstreams`)
    against a real Caddy: `fleet up` of each size from nothing; then, on the largest, `pulumi preview` with no
    changes and `pulumi up` adding one tenant. Each stack lives on its own scratch backend and is destroyed after."""

    driver.check_engine()
    sizes = sorted(set(fleet_sizes))
    results: dict[str, Any] = {"fleet_up": {}}
    scratch = Path(tempfile.mkdtemp(prefix="fleet-bench-engine-"))
    caddy = CaddyServerProcess()
    upstreams = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    try:
        caddy.start()
        for server in upstreams.values():
            server.start()
        proxy = {
            "admin_url": caddy.admin_url,
            "server": "fleet",
            "listen": [f"127.0.0.1:{free_port()}"],
            "automatic_https": False,
            "external_upstreams": {role: server.address for role, server in upstreams.items()},
        }
        for size in sizes:
            stack = _EngineStack(scratch / f"fleet-{size}", scratch / f"state-{size}", f"bench{size}")
            write_fleet(stack.root, size, stack=stack.name, layers=["proxy"], proxy=proxy)
            if progress:
                progress(f"fleet up of {size} tenants (proxy layer, real engine)")
            results["fleet_up"][str(size)] = stack.fleet_up()
            if size == sizes[-1]:
                if progress:
                    progress(f"pulumi preview with no changes on {size} tenants")
                results["preview_no_change"] = stack.engine("preview")
                name = add_tenant(stack.root, size)
                if progress:
                    progress(f"pulumi up adding one tenant ({name}) to {size}")
                results["up_add_one"] = stack.engine("up")
                results["up_add_one"]["fleet_size"] = size
            if progress:
                progress(f"destroy of the {size}-tenant stack")
            stack.engine("destroy")
    finally:
        for server in upstreams.values():
            server.stop()
        caddy.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


class _EngineStack:
    """A proxy-only stack of a synthetic fleet, its Pulumi.<name>.yaml in `root`, its state on a scratch backend."""

    def __init__(self, root: Path, backend: Path, name: str):
        self.root, self.backend, self.name = root, backend, name

    def engine(self, op: str) -> dict[str, Any]:
        """One engine operation through the Automation API (what `pulumi <op>` does), timed end to end."""

        tenants_dir = self.root / "tenants"

        def program() -> None:
            fleet_program(None, tenants_dir)  # the engine ignores a program's result (the offline plan reads it)

        started = time.perf_counter()
        with verbs.stack_workspace(self.name, self.root) as work_dir:
            stack = driver.stack_for(self.name, program, work_dir=work_dir, backend_dir=self.backend)
            select_s = time.perf_counter() - started
            summary = driver.run(op, stack, on_output=None)
        return {
            "wall_s": round(time.perf_counter() - started, 3),
            "select_s": round(select_s, 3),
            "engine_s": summary["duration_s"],
            "changes": summary["changes"],
        }

    def fleet_up(self) -> dict[str, Any]:
        """What `python -m fleet up --stack <name>` does (fleet.engine.verbs.run_engine_verb): the offline plan
        (validation), the provider-plugin check, then the engine's up; here on this stack's own tenants folder
        and backend."""

        started = time.perf_counter()
        evaluation = plan_stack(self.name, self.root, tenants_dir=self.root / "tenants")
        plan_s = time.perf_counter() - started
        missing = plugins.missing_plugins(plugins.required_plugin_versions(sorted(plugins.required_packages(evaluation))))
        if missing:
            raise RuntimeError(f"provider plugins missing for a proxy-only stack: {missing}")
        checks_s = time.perf_counter() - started - plan_s
        result = self.engine("up")
        result.update(
            {
                "wall_s": round(time.perf_counter() - started, 3),
                "plan_s": round(plan_s, 3),
                "plugin_check_s": round(checks_s, 3),
                "resources": len(evaluation.resources),
                "tenants": len(evaluation.specs),
            }
        )
        return result


def format_engine(results: dict[str, Any]) -> str:
    """The engine figures as lines."""
    lines = ["Real engine, proxy-only stack (layers [proxy]) against a real Caddy:"]
    for size, figures in results.get("fleet_up", {}).items():
        lines.append(
            f"  fleet up, {size} tenants ({figures['resources']} resources): {figures['wall_s']:.1f} s "
            f"(offline plan {figures['plan_s']:.2f} s, plugin check {figures['plugin_check_s']:.2f} s, engine up {figures['engine_s']:.1f} s) {_changes(figures)}"
        )
    if "preview_no_change" in results:
        figures = results["preview_no_change"]
        lines.append(f"  pulumi preview, no changes: {figures['wall_s']:.1f} s (engine {figures['engine_s']:.1f} s) {_changes(figures)}")
    if "up_add_one" in results:
        figures = results["up_add_one"]
        lines.append(f"  pulumi up adding one tenant to {figures['fleet_size']}: {figures['wall_s']:.1f} s (engine {figures['engine_s']:.1f} s) {_changes(figures)}")
    return "\n".join(lines)


def _changes(figures: dict[str, Any]) -> str:
    return "[" + ", ".join(f"{kind} {count}" for kind, count in sorted(figures["changes"].items())) + "]"
