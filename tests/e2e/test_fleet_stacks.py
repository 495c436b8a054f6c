"""A fleet of stacks: each `fleet up` runs only the stacks whose tenant changed, with the real engine and a real Caddy.

A proxy-only copy of the shipped fleet with `fleet:stacks: per-tenant` (platform stack `stk`, tenant stacks
`stk.<tenant>`) is deployed through the front door (`run_fleet_verb`, what `python -m fleet up` calls).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.bench.servers import UpstreamHTTPServer, free_port
from fleet.engine import fanout, verbs
from fleet.engine.ledger import FINGERPRINT_TAG, Ledger
from fleet.errors import EXIT_FAILED, EXIT_OK
from fleet.paths import PROJECT_ROOT
from tests.support.fixtures import running
from tests.unit.graph import FleetWorkspace, proxy_only_config

ENV = "stk"
TENANTS = ("catasaltas", "gurupi", "novaroma", "pirapora", "santarita")


class StacksProject:
    """A project root with tenants/ and Pulumi.stk.yaml (per-tenant stacks), deployed to a test Caddy."""

    def __init__(self, root: Path, caddy, upstreams: dict):
        self.root = root
        self.backend = root / "state"
        self.caddy = caddy
        self.workspace = FleetWorkspace(root)
        self.port = free_port()
        config = proxy_only_config(self.workspace.config, caddy, upstreams, self.port, stacks="per-tenant")
        self.config = config
        self.write_config()

    def write_config(self) -> None:
        (self.root / f"Pulumi.{ENV}.yaml").write_text(yaml.safe_dump({"config": {f"fleet:{k}": v for k, v in self.config.items()}}))

    def fleet(self, verb: str, *tenants: str, expect: int = EXIT_OK, **options) -> dict:
        """`python -m fleet <verb> --stack stk [--tenant T] --json --yes`, in this process; the parsed document."""
        options.setdefault("yes", True)
        out = io.StringIO()
        code = verbs.run_fleet_verb(
            verb, ENV, selection=list(tenants) or None, json_output=True, root=self.root, backend=str(self.backend), out=out, **options
        )
        document = json.loads(out.getvalue())
        assert code == expect, document
        return document

    def ran(self, document: dict) -> dict[str, str]:
        """stack -> the operation it ran."""
        return {result["stack"]: result["op"] for result in document["results"]}

    def routes(self) -> dict[str, dict]:
        return {route["@id"]: route for route in self.caddy.config("apps/http/servers/fleet/routes")}

    def status(self, host: str) -> int:
        return self.caddy.get(host, port=self.port).status


@pytest.fixture(scope="module")
def project(tmp_path_factory, caddy_process):
    upstreams = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    with running(*upstreams.values()):
        deployed = StacksProject(tmp_path_factory.mktemp("stacks"), caddy_process, upstreams)
        first = deployed.fleet("up")
        assert deployed.ran(first) == {ENV: "up", **{f"{ENV}.{tenant}": "up" for tenant in TENANTS}}
        yield deployed
        deployed.fleet("destroy")


def others_unchanged(before: dict, after: dict, tenant: str) -> None:
    for route_id, route in before.items():
        if not route_id.startswith(f"tenant-{tenant}-"):
            assert after.get(route_id) == route, f"{route_id} changed"


def test_every_tenant_answers_and_a_second_up_runs_no_stack(project):
    assert project.status("app-gurupi.fleet.localhost") == 200
    assert project.status("app-catasaltas.fleet.localhost") == 503  # suspended
    assert len(project.routes()) == 11
    again = project.fleet("up")
    assert again["results"] == [] and again["plan"]["unchanged"] == len(TENANTS)
    stacks = Ledger("file://" + str(project.backend)).read()
    assert set(stacks) == {ENV, *(f"{ENV}.{tenant}" for tenant in TENANTS)} and all(stacks.values())


def test_changing_one_tenant_runs_only_its_stack(project):
    before = project.routes()
    project.workspace.edit("gurupi", status="suspended")
    try:
        document = project.fleet("up")
        assert project.ran(document) == {f"{ENV}.gurupi": "up"}
        assert document["results"][0]["changes"] == {"same": 3, "update": 2}
        others_unchanged(before, project.routes(), "gurupi")
        assert project.status("app-gurupi.fleet.localhost") == 503
    finally:
        project.workspace.edit("gurupi", status="active")
        assert project.ran(project.fleet("up")) == {f"{ENV}.gurupi": "up"}


def test_adding_and_removing_a_tenant_creates_and_removes_only_its_stack(project):
    before = project.routes()
    project.workspace.write("itabira", {"name": "itabira", "display_name": "Itabira", "plan": "basic", "database": {"server": "shared-1"}})
    added = project.fleet("up")
    assert project.ran(added) == {f"{ENV}.itabira": "up"} and added["results"][0]["changes"] == {"create": 5}
    assert project.status("app-itabira.fleet.localhost") == 200
    others_unchanged(before, project.routes(), "itabira")
    project.workspace.tenant_file("itabira").unlink()
    removed = project.fleet("up")
    assert project.ran(removed) == {f"{ENV}.itabira": "remove"} and removed["results"][0]["changes"] == {"delete": 5}
    assert project.status("app-itabira.fleet.localhost") == 404
    assert f"{ENV}.itabira" not in Ledger("file://" + str(project.backend)).read()  # the stack itself is gone
    assert project.routes() == before


def test_tenant_runs_exactly_that_stack_even_when_others_changed(project):
    project.workspace.edit("novaroma", status="suspended")  # pending, not asked for
    try:
        document = project.fleet("up", "pirapora")
        assert project.ran(document) == {f"{ENV}.pirapora": "up"}
        assert project.status("app-novaroma.fleet.localhost") == 200
    finally:
        project.workspace.edit("novaroma", status="active")
    assert project.fleet("up")["results"] == []  # novaroma's edit was undone before anyone deployed it


def test_a_failed_stack_leaves_the_others_deployed_and_the_rerun_completes(project):
    # A stack locked by "another update" fails; the other changed stacks go on.
    lock_dir = project.backend / ".pulumi" / "locks" / "organization" / "tenant-fleet" / f"{ENV}.santarita"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_dir / "held.json"
    lock.write_text(json.dumps({"pid": 1, "username": "someone", "hostname": "elsewhere", "timestamp": "2026-11-29T00:00:00Z"}))
    for tenant in ("santarita", "gurupi"):
        project.workspace.edit(tenant, domains=[f"precos.{tenant}.example.gov.br"])
    try:
        failed = project.fleet("up", expect=EXIT_FAILED)
        assert failed["failed"] == [f"{ENV}.santarita"]
        assert {result["stack"]: result["ok"] for result in failed["results"]} == {f"{ENV}.santarita": False, f"{ENV}.gurupi": True}
        assert project.status("precos.gurupi.example.gov.br") == 200
        assert project.status("precos.santarita.example.gov.br") == 404
        lock.unlink()
        rerun = project.fleet("up")
        assert project.ran(rerun) == {f"{ENV}.santarita": "up"}  # only what was not done
        assert project.status("precos.santarita.example.gov.br") == 200
    finally:
        lock.unlink(missing_ok=True)
        for tenant in ("santarita", "gurupi"):
            project.workspace.edit(tenant, domains=[])
        project.fleet("up")


def test_changed_lists_the_stacks_for_a_ci_matrix(project):
    project.workspace.edit("pirapora", display_name="Prefeitura de Pirapora (MG)")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "fleet", "changed", "--stack", ENV, "--root", str(project.root), "--json"],
            env={**__import__("os").environ, "PULUMI_BACKEND_URL": "file://" + str(project.backend)},
            capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["stacks"] == [f"{ENV}.pirapora"]
    finally:
        project.workspace.edit("pirapora", display_name=project.workspace.read("pirapora")["display_name"])
        project.fleet("up", "pirapora")


def test_refresh_all_names_the_tenant_that_drifted(project):
    project.caddy.admin("DELETE", "/id/tenant-gurupi-app")  # a route lost behind the engine's back
    document = project.fleet("refresh", force_all=True)
    assert document["drifted"] == [f"{ENV}.gurupi"]
    assert set(project.ran(document)) == {ENV, *(f"{ENV}.{tenant}" for tenant in TENANTS)}
    assert project.ran(project.fleet("up", "gurupi")) == {f"{ENV}.gurupi": "up"}
    assert project.status("app-gurupi.fleet.localhost") == 200


def test_fingerprints_are_recorded_as_stack_tags(project):
    stacks = fanout.deployed_stacks(str(project.backend))
    tags = json.loads((project.backend / ".pulumi" / "stacks" / "tenant-fleet" / f"{ENV}.gurupi.pulumi-tags").read_text())
    assert tags["tags"][FINGERPRINT_TAG] == stacks[f"{ENV}.gurupi"]


def test_without_yes_and_without_a_terminal_nothing_is_removed(project, monkeypatch):
    from fleet.errors import FleetError

    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    project.workspace.write("itabira", {"name": "itabira", "display_name": "Itabira", "plan": "basic", "database": {"server": "shared-1"}})
    assert project.ran(project.fleet("up", yes=False)) == {f"{ENV}.itabira": "up"}  # nothing to delete: no question
    before = project.routes()
    project.workspace.tenant_file("itabira").unlink()
    with pytest.raises(FleetError, match=rf"{ENV}.itabira: destroy the stack and remove it"):
        project.fleet("up", yes=False)
    assert project.routes() == before
    project.workspace.edit("gurupi", domains=[])  # an update alone needs no question either
    assert project.ran(project.fleet("up")) == {f"{ENV}.itabira": "remove"}


def test_a_rollout_goes_in_waves_stops_when_the_canary_is_unhealthy_and_resumes(project):
    """fleet:rollout {canary: gurupi, batch: 2}: a change to four tenants, checked through the proxy after each wave."""
    from fleet.cli.deploy import _rollout_health

    project.config["rollout"] = {"canary": ["gurupi"], "batch": "2"}
    project.write_config()
    project.fleet("up")  # the config change itself, whatever stacks it reaches
    changed = ("gurupi", "novaroma", "pirapora", "santarita")
    health = _rollout_health(ENV, project.root)
    sick = {"gurupi"}

    def canary_health(tenants: list[str]) -> list[str]:
        # The real check through the proxy, plus the canary's app failing its own checks (its route answers,
        # the app behind it doesn't): what a broken new version looks like.
        return health(tenants) + [f"{name}: app answers 500 after the change" for name in tenants if name in sick]

    try:
        for tenant in changed:
            project.workspace.edit(tenant, domains=[f"v2.{tenant}.example.gov.br"])
        stopped = project.fleet("up", expect=EXIT_FAILED, health=canary_health)
        assert project.ran(stopped) == {f"{ENV}.gurupi": "up"}  # the canary alone
        assert "stopped in wave 1: gurupi: app answers 500" in stopped["stopped"]
        assert "3 tenant(s) not reached (novaroma, pirapora, santarita)" in stopped["stopped"]
        assert project.status("v2.gurupi.example.gov.br") == 200 and project.status("v2.pirapora.example.gov.br") == 404
        sick.clear()
        resumed = project.fleet("up", health=canary_health)  # the fix: the same command resumes
        assert [result["stack"] for result in resumed["results"]] == [f"{ENV}.novaroma", f"{ENV}.pirapora", f"{ENV}.santarita"]
        assert all(project.status(f"v2.{tenant}.example.gov.br") == 200 for tenant in changed)
    finally:
        project.config.pop("rollout")
        project.write_config()
        for tenant in changed:
            project.workspace.edit(tenant, domains=[])
        project.fleet("up")
