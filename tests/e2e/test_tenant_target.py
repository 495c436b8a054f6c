"""`fleet up --tenant X` on a stack that holds several tenants touches X and nothing else.

Through the front door (`run_engine_verb`, what `python -m fleet up --tenant X` calls), with the real
engine and a real Caddy: a proxy-only copy of the shipped fleet is deployed, then other tenants' files
are changed too, and every `--tenant` run must leave their routes exactly as they were.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from fleet.bench.servers import UpstreamHTTPServer, free_port
from fleet.engine import verbs as operations
from fleet.errors import FleetError
from tests.support.fixtures import running
from tests.unit.graph import FleetWorkspace, proxy_only_config

STACK = "tenanttarget"


class FrontDoorStack:
    """A project root (tenants/, Pulumi.<stack>.yaml) deployed as a proxy-only stack to a test Caddy."""

    def __init__(self, root: Path, backend: Path, caddy, upstreams: dict):
        self.root = root
        self.backend = backend
        self.caddy = caddy
        self.workspace = FleetWorkspace(root)
        self.port = free_port()
        config = proxy_only_config(self.workspace.config, caddy, upstreams, self.port)
        (root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": {f"fleet:{k}": v for k, v in config.items()}}))

    def fleet(self, verb: str, *tenants: str, yes: bool = True) -> dict:
        """Run `python -m fleet <verb> --stack tenanttarget [--tenant T ...] --json --yes`; the parsed summary."""
        out = io.StringIO()
        code = operations.run_engine_verb(
            verb, STACK, selection=list(tenants) or None, json_output=True, yes=yes, root=self.root, backend_dir=self.backend, out=out
        )
        assert code == operations.EXIT_OK
        return json.loads(out.getvalue())

    def routes(self) -> dict[str, dict]:
        return {route["@id"]: route for route in self.caddy.config("apps/http/servers/fleet/routes")}

    def status(self, host: str) -> int:
        return self.caddy.get(host, port=self.port).status


@pytest.fixture(scope="module")
def stack(tmp_path_factory, caddy_process):
    upstreams = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    with running(*upstreams.values()):
        deployed = FrontDoorStack(tmp_path_factory.mktemp("root"), tmp_path_factory.mktemp("state"), caddy_process, upstreams)
        assert deployed.fleet("up")["changes"] == {"create": 1 + 1 + 5 * 4}
        yield deployed
        deployed.fleet("destroy", yes=True)


def changed(summary: dict) -> dict:
    """The steps that did something (untargeted resources count as `same`)."""
    return {op: count for op, count in summary["changes"].items() if op != "same"}


def others_unchanged(before: dict, after: dict, tenant: str) -> None:
    for route_id, route in before.items():
        if not route_id.startswith(f"tenant-{tenant}-"):
            assert after.get(route_id) == route, f"{route_id} changed by --tenant {tenant}"


def test_tenant_up_changes_only_that_tenant_while_others_have_pending_edits(stack):
    before = stack.routes()
    stack.workspace.edit("gurupi", status="suspended")
    stack.workspace.edit("novaroma", status="suspended")  # pending, not asked for
    summary = stack.fleet("up", "gurupi")
    assert changed(summary) == {"update": 2}, summary
    assert summary["tenants"] == ["gurupi"]
    after = stack.routes()
    others_unchanged(before, after, "gurupi")
    assert len(after) == len(before) == 11
    assert stack.status("app-gurupi.fleet.localhost") == 503
    assert stack.status("app-novaroma.fleet.localhost") == 200  # its edit waits for its own `up`
    stack.workspace.edit("gurupi", status="active")
    stack.workspace.edit("novaroma", status="active")
    assert changed(stack.fleet("up", "gurupi")) == {"update": 2}
    assert set(stack.fleet("preview")["changes"]) == {"same"}


def test_tenant_preview_and_refresh_look_only_at_that_tenant(stack):
    stack.workspace.edit("novaroma", status="suspended")
    try:
        assert changed(stack.fleet("preview", "gurupi")) == {}
        assert changed(stack.fleet("refresh", "gurupi")) == {}
    finally:
        stack.workspace.edit("novaroma", status="active")


def test_adding_and_removing_one_tenant_with_tenant_touches_nothing_else(stack):
    before = stack.routes()
    stack.workspace.write("itabira", {"name": "itabira", "display_name": "Itabira", "plan": "basic", "database": {"server": "shared-1"}})
    stack.workspace.write("jaboti", {"name": "jaboti", "display_name": "Jaboti", "plan": "basic", "database": {"server": "shared-1"}})
    try:
        assert changed(stack.fleet("up", "itabira")) == {"create": 4}
        assert stack.status("app-itabira.fleet.localhost") == 200
        assert stack.status("app-jaboti.fleet.localhost") == 404  # not asked for
        others_unchanged(before, stack.routes(), "itabira")
        stack.workspace.tenant_file("itabira").unlink()
        middle = stack.routes()
        assert changed(stack.fleet("up", "itabira")) == {"delete": 4}
        assert stack.status("app-itabira.fleet.localhost") == 404
        others_unchanged(middle, stack.routes(), "itabira")
        assert len(stack.routes()) == 11
    finally:
        stack.workspace.tenant_file("jaboti").unlink(missing_ok=True)
        stack.workspace.tenant_file("itabira").unlink(missing_ok=True)


def test_destroy_of_one_tenant_keeps_every_other_tenant(stack):
    before = stack.routes()
    assert changed(stack.fleet("destroy", "pirapora", yes=True)) == {"delete": 4}
    others_unchanged(before, stack.routes(), "pirapora")
    assert stack.status("app-pirapora.fleet.localhost") == 404
    assert stack.status("app-novaroma.fleet.localhost") == 200
    assert changed(stack.fleet("up", "pirapora")) == {"create": 4}


def test_an_unknown_tenant_is_refused_and_nothing_runs(stack):
    before = stack.routes()
    with pytest.raises(FleetError, match="--tenant nobody: not declared by stack tenanttarget and not deployed in it"):
        stack.fleet("up", "nobody")
    assert stack.routes() == before


def test_tenant_on_a_stack_never_deployed_is_refused(tmp_path, caddy_process, upstream_factory):
    fresh = FrontDoorStack(tmp_path / "root", tmp_path / "state", caddy_process, {"backend": upstream_factory("b"), "frontend": upstream_factory("f")})
    with pytest.raises(FleetError, match="has never been deployed"):
        fresh.fleet("up", "gurupi")


def test_an_up_that_deletes_asks_first_and_refuses_without_a_terminal(stack, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    stack.workspace.write("jaboti", {"name": "jaboti", "display_name": "Jaboti", "plan": "basic", "database": {"server": "shared-1"}})
    try:
        assert changed(stack.fleet("up", "jaboti", yes=False)) == {"create": 4}  # creating needs no question
        stack.workspace.tenant_file("jaboti").unlink()
        before = stack.routes()
        with pytest.raises(FleetError, match="This deletes or replaces resources:\n  tenanttarget: delete 4"):
            stack.fleet("up", "jaboti", yes=False)
        assert stack.routes() == before
    finally:
        stack.workspace.tenant_file("jaboti").unlink(missing_ok=True)
        stack.fleet("up", "jaboti")
