"""Chaos: `fleet up` killed with -9 at six points, and one plain `fleet up` finishes the job, with no manual step.

A proxy-only stack of 20 tenants is deployed to a real Caddy. Each scenario starts an `up` that updates ten
tenants, creates three and deletes three, watches the engine's event stream (FLEET_ENGINE_EVENTS) and kills
either the engine or the `fleet` process early (the engine started, nothing applied), mid (updates done,
others in flight) or late (deletes in flight). Then one `fleet up --yes` must exit 0, leave Caddy's routes
equal to the tenant files (none duplicated, missing or extra), leave no pending operation in the state, and
leave no process of the killed run alive; a second `up` changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fleet.bench.servers import UpstreamHTTPServer, free_port
from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.paths import ENGINE_PATH, PROJECT_ROOT
from tests.support.fixtures import running
from tests.unit.graph import FleetWorkspace, proxy_only_config

STACK = "chaos"
TIMELINE: list[dict] = []  # one row per kill point, printed at the end (the closing note's table)


class ChaosProject:
    def __init__(self, root: Path, caddy, upstreams: dict):
        self.root, self.caddy = root, caddy
        self.backend = root / "state"
        self.workspace = FleetWorkspace(root)
        config = proxy_only_config(self.workspace.config, caddy, upstreams, free_port())
        (root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": {f"fleet:{k}": v for k, v in config.items()}}))
        self.config = config
        for index in range(15):
            self.add(f"x{index:02d}")

    def add(self, name: str) -> None:
        self.workspace.write(name, {"name": name, "display_name": name.upper(), "plan": "basic", "database": {"server": "shared-1"}})

    def env(self, events: Path | None = None) -> dict[str, str]:
        env = {**os.environ, "PULUMI_BACKEND_URL": "file://" + str(self.backend)}
        if events is not None:
            env["FLEET_ENGINE_EVENTS"] = str(events)
        return env

    def command(self) -> list[str]:
        return [sys.executable, "-m", "fleet", "up", "--stack", STACK, "--root", str(self.root), "--yes"]

    def up(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command(), *extra], env=self.env(), capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL)

    def expected_routes(self) -> dict[str, tuple]:
        fleet = load_fleet(self.workspace.tenants_dir, self.config)
        routes = {}
        for tenant in fleet.tenants:
            hosts = {"backend": [derive.api_hostname(tenant, fleet.environment)], "frontend": derive.frontend_hostnames(tenant, fleet.environment)}
            for role in derive.APP_ROLES:
                routes[derive.route_id(tenant, role)] = (sorted(hosts[role]), tenant.status == "suspended")
        return routes

    def live_routes(self) -> list[dict]:
        return [route for route in self.caddy.config("apps/http/servers/fleet/routes") if route.get("@id") != "fleet-catch-all"]

    def pending_operations(self) -> list:
        checkpoint = json.loads((self.backend / ".pulumi" / "stacks" / "tenant-fleet" / f"{STACK}.json").read_text())
        return checkpoint["checkpoint"]["latest"].get("pending_operations") or []


def _route_facts(route: dict) -> tuple:
    hosts = sorted(host for match in route.get("match", []) for host in match.get("host", []))
    maintenance = any(handler.get("handler") == "static_response" and handler.get("status_code") == 503 for handler in route.get("handle", []))
    return hosts, maintenance


def _run_processes(marker: bytes) -> list[str]:
    """Every process carrying a run's FLEET_RUN marker (its engine, workers and plugins, whatever their group)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80])
            except OSError:
                continue
    return found


def _engine_processes() -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (str(ENGINE_PATH).encode() in command or b"pulumi.dynamic" in command or b"pulumi.policy" in command) and str(PROJECT_ROOT).encode() in command:
                count += 1
    return count


def _wait_for(events: Path, predicate, process: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        lines = events.read_text().splitlines() if events.exists() else []
        for line in lines[seen:]:
            event = json.loads(line)
            if predicate(event, lines):
                return event
        seen = len(lines)
        if process.poll() is not None:
            raise AssertionError(f"the up ended (exit {process.returncode}) before the kill point: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.02)
    raise AssertionError("the kill point never came")


def _engine_of(session: int) -> tuple[int, bytes]:
    """The engine running `up` in a session, and its run's FLEET_RUN marker."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                if os.getsid(int(entry.name)) == session and command[0] == str(ENGINE_PATH).encode() and b"up" in command:
                    marker = next(item for item in (entry / "environ").read_bytes().split(b"\0") if item.startswith(b"FLEET_RUN="))
                    return int(entry.name), marker
            except (OSError, StopIteration):
                continue
    raise AssertionError("no engine process in the run's session")


KILL_POINTS = {
    "early": lambda event, _lines: event["kind"] == "prelude_event",
    "mid": lambda event, lines: event["kind"] == "res_outputs_event" and event.get("op") == "update"
    and sum('"res_outputs_event"' in line and '"update"' in line for line in lines) >= 3,
    "late": lambda event, _lines: event["kind"] == "resource_pre_event" and event.get("op") == "delete",
}


@pytest.fixture(scope="module")
def chaos(tmp_path_factory, caddy_process):
    upstreams = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    with running(*upstreams.values()):
        project = ChaosProject(tmp_path_factory.mktemp("chaos"), caddy_process, upstreams)
        first = project.up()
        assert first.returncode == 0, first.stderr
        yield project
    if TIMELINE:
        print("\nkill point | in flight | recovery up | seconds | engine processes before -> after")
        for row in TIMELINE:
            print(f"{row['who']} {row['point']} | {row['in_flight']} | {row['recovery']} | {row['seconds']:.1f} | {row['before']} -> {row['after']}")


@pytest.mark.parametrize(("who", "point"), [(who, point) for who in ("engine", "fleet") for point in ("early", "mid", "late")])
def test_a_killed_up_is_finished_by_the_next_plain_up(chaos, who, point, tmp_path):
    scenario = len(TIMELINE)
    # The change: ten status flips (updates), three tenants added (creates), three removed (deletes).
    fleet_names = sorted(p.stem for p in chaos.workspace.tenants_dir.glob("[!_]*.yaml"))
    for name in [n for n in fleet_names if n.startswith("x")][:10]:
        data = chaos.workspace.read(name)
        chaos.workspace.edit(name, status="active" if data.get("status") == "suspended" else "suspended")
    removable = [n for n in fleet_names if n.startswith(("x1", "c"))][:3] or [n for n in fleet_names if n.startswith("x")][-3:]
    for name in removable:
        chaos.workspace.tenant_file(name).unlink()
    for letter in "abc":
        chaos.add(f"c{scenario}{letter}")

    before = _engine_processes()
    events = tmp_path / "events.jsonl"
    run = subprocess.Popen(
        chaos.command(), env=chaos.env(events), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=PROJECT_ROOT, start_new_session=True, stdin=subprocess.DEVNULL,
    )
    try:
        event = _wait_for(events, KILL_POINTS[point], run)
        in_flight = f"{event['kind']} {event.get('op', '')} {event.get('urn', '').rsplit('::', 1)[-1]}".strip()
        engine, marker = _engine_of(run.pid)
        os.kill(engine if who == "engine" else run.pid, signal.SIGKILL)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    if who == "engine":
        assert run.returncode == 1 and "was killed (signal 9)" in stderr and "The next `python -m fleet up` recovers" in stderr, stderr

    started = time.monotonic()
    recovered = chaos.up()
    seconds = time.monotonic() - started
    assert recovered.returncode == 0, recovered.stderr
    # Converged: every route once, as the tenant files say; nothing pending; nothing of the killed run alive.
    live = chaos.live_routes()
    ids = [route["@id"] for route in live]
    assert len(ids) == len(set(ids)), "duplicated routes"
    assert {route["@id"]: _route_facts(route) for route in live} == chaos.expected_routes()
    assert chaos.pending_operations() == []
    assert _run_processes(marker) == []  # the killed run's engine, workers and plugins are all gone
    again = chaos.up("--json")
    assert again.returncode == 0 and "pending" not in again.stderr.lower(), again.stderr
    assert set(json.loads(again.stdout)["changes"]) == {"same"}, again.stdout
    recovery = [line for line in recovered.stderr.splitlines() if any(word in line for word in ("released", "resolved", "ended"))]
    TIMELINE.append(
        {"who": who, "point": point, "in_flight": in_flight, "recovery": " / ".join(recovery) or "plain up", "seconds": seconds,
         "before": before, "after": _engine_processes()}
    )
