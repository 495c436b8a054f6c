"""The real program through the real engine, for the resources the project implements itself.

A stack that manages only the proxy layer (`fleet:layers: [proxy]`, apps reached through
`proxy.external_upstreams`) is deployed with `fleet_program` by the engine built in ./scripts/setup,
against a real Caddy started by the test. Every step is checked on the live Caddy and in the
engine's own event stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.bench.servers import UpstreamHTTPServer, free_port
from fleet.engine import driver as engine
from fleet.offline.plan import evaluate
from fleet.program import fleet_program
from tests.support.fixtures import running
from tests.unit.graph import FleetWorkspace, proxy_only_config

ROUTE_TYPE = "pulumi-python:dynamic/caddy:CaddyRoute"


class ProxyStack:
    """A proxy-only stack of the shipped tenants, deployed to a test Caddy on a file backend."""

    def __init__(self, root: Path, caddy, backend: Path, upstreams: dict):
        self.workspace = FleetWorkspace(root)
        self.caddy = caddy
        self.port = free_port()
        config = proxy_only_config(self.workspace.config, caddy, upstreams, self.port)
        self.config = config
        self.backend = backend
        self.events: list = []

    def stack(self):
        config = {f"fleet:{key}": value for key, value in self.config.items() if key != "server_passwords"}
        tenants_dir = self.workspace.tenants_dir

        def program() -> None:
            fleet_program(None, tenants_dir)  # the engine ignores a program's result

        return engine.stack_for("e2e", program, backend_dir=self.backend, config=config)

    def run(self, op: str, **options):
        self.events = []
        return engine.run(op, self.stack(), on_output=None, on_event=self.events.append, **options)

    def changed_urns(self) -> dict[str, str]:
        """URN -> operation for every step the engine took that was not `same`."""
        steps = {}
        for event in self.events:
            pre = event.resource_pre_event
            if pre is not None and pre.metadata.op.value != "same":
                steps[pre.metadata.urn] = pre.metadata.op.value
        return steps

    def get(self, host: str):
        return self.caddy.get(host, port=self.port)

    def status(self, host: str):
        """The HTTP status for a host, or None when nothing listens (the fleet's server is gone)."""
        try:
            return self.get(host).status
        except ConnectionError:
            return None

    def route_objects(self) -> dict[str, dict]:
        routes = self.caddy.config("apps/http/servers/fleet/routes")
        return {route.get("@id"): route for route in routes}


@pytest.fixture(scope="module")
def upstreams():
    servers = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    with running(*servers.values()):
        yield servers


@pytest.fixture(scope="module")
def proxy_stack(tmp_path_factory, caddy_process, upstreams):
    stack = ProxyStack(tmp_path_factory.mktemp("fleet"), caddy_process, tmp_path_factory.mktemp("state"), upstreams)
    yield stack
    try:
        engine.run("destroy", stack.stack(), on_output=None)
    except engine.EngineError:
        pass


def test_up_creates_every_tenant_route_and_each_hostname_answers(proxy_stack):
    summary = proxy_stack.run("up")
    assert summary["changes"] == {"create": 1 + 1 + 5 * 4}  # stack, proxy server, per tenant: Tenant, TenantRoutes, 2 routes
    santarita_app = proxy_stack.get("precos.santarita.mg.gov.br")
    assert (santarita_app.status, santarita_app.body.split()[0]) == (200, "frontend")
    assert "host=precos.santarita.mg.gov.br" in santarita_app.body
    api = proxy_stack.get("api-pirapora.fleet.localhost")
    assert (api.status, api.body.split()[0]) == (200, "backend")
    assert proxy_stack.get("app-catasaltas.fleet.localhost").status == 503  # suspended: maintenance page
    unknown = proxy_stack.get("app-nobody.fleet.localhost")
    assert (unknown.status, unknown.body.strip()) == (404, "tenant not found")
    ids = list(proxy_stack.route_objects())
    assert ids[-1] == "fleet-catch-all" and len(ids) == 11


def test_engine_urns_are_the_ones_the_contract_test_predicts(proxy_stack):
    deployed = {resource["urn"] for resource in proxy_stack.stack().export_stack().deployment["resources"]}
    predicted = evaluate(proxy_stack.config, stack="e2e", tenants_dir=proxy_stack.workspace.tenants_dir)
    routes = [r for r in predicted.resources if r.type == ROUTE_TYPE]
    assert len(routes) == 10
    for route in routes:
        assert predicted.engine_urn(route) in deployed


def test_second_preview_shows_no_changes(proxy_stack):
    summary = proxy_stack.run("preview")
    assert set(summary["changes"]) == {"same"}


def test_changing_one_tenant_touches_only_its_routes(proxy_stack):
    before = proxy_stack.route_objects()
    proxy_stack.workspace.edit("gurupi", status="suspended", domains=["precos.gurupi.to.gov.br"])
    summary = proxy_stack.run("up")
    assert summary["changes"].get("update") == 2 and "create" not in summary["changes"] and "delete" not in summary["changes"]
    changed = proxy_stack.changed_urns()
    assert set(changed.values()) == {"update"} and len(changed) == 2
    assert all(urn.endswith(("::gurupi-route-backend", "::gurupi-route-frontend")) for urn in changed)
    after = proxy_stack.route_objects()
    for route_id, route in before.items():
        if not route_id.startswith("tenant-gurupi-"):
            assert after[route_id] == route, route_id
    assert proxy_stack.get("precos.gurupi.to.gov.br").status == 503
    proxy_stack.workspace.edit("gurupi", status="active")
    proxy_stack.run("up")
    assert proxy_stack.get("precos.gurupi.to.gov.br").status == 200


def test_adding_and_removing_a_tenant_creates_and_deletes_only_its_routes(proxy_stack):
    proxy_stack.workspace.write("itabira", {"name": "itabira", "display_name": "Itabira", "plan": "basic", "database": {"server": "shared-1"}})
    proxy_stack.run("up")
    changed = proxy_stack.changed_urns()
    assert set(changed.values()) == {"create"} and all("itabira" in urn for urn in changed) and len(changed) == 4
    assert proxy_stack.get("app-itabira.fleet.localhost").status == 200
    proxy_stack.workspace.tenant_file("itabira").unlink()
    proxy_stack.run("up")
    changed = proxy_stack.changed_urns()
    assert set(changed.values()) == {"delete"} and all("itabira" in urn for urn in changed) and len(changed) == 4
    assert proxy_stack.get("app-itabira.fleet.localhost").status == 404
    assert proxy_stack.get("app-novaroma.fleet.localhost").status == 200


def test_a_failure_in_the_middle_of_an_update_leaves_state_and_caddy_consistent(proxy_stack):
    for name in ("alpha", "bravo", "charlie"):
        proxy_stack.workspace.write(name, {"name": name, "display_name": name, "plan": "basic", "database": {"server": "shared-1"}})
    created = []

    def stop_caddy_after_first_route(event):
        out = event.res_outputs_event
        if out is not None and out.metadata.type == ROUTE_TYPE and out.metadata.op.value == "create":
            created.append(out.metadata.urn)
            if len(created) == 1:
                proxy_stack.caddy.crash()

    with pytest.raises(engine.EngineError) as failure:
        engine.run("up", proxy_stack.stack(), on_output=None, on_event=stop_caddy_after_first_route, parallel=1)
    assert "route" in str(failure.value).lower()
    # Caddy comes back with what it had saved; the engine's state lists exactly what was created.
    proxy_stack.caddy.start(resume=True)
    state = {r["urn"] for r in proxy_stack.stack().export_stack().deployment["resources"]}
    assert created[0] in state
    assert proxy_stack.run("up")["changes"].get("create", 0) >= 1
    ids = list(proxy_stack.route_objects())
    assert len(ids) == len(set(ids)) == 11 + 6  # no duplicates, nothing lost
    for name in ("alpha", "bravo", "charlie"):
        assert proxy_stack.get(f"app-{name}.fleet.localhost").status == 200
        proxy_stack.workspace.tenant_file(name).unlink()
    proxy_stack.run("up")
    assert len(proxy_stack.route_objects()) == 11


def test_refresh_notices_routes_lost_by_a_caddy_restart_and_up_restores_them(proxy_stack):
    proxy_stack.caddy.restart(resume=False)  # no --resume: every route is gone from Caddy
    assert proxy_stack.status("app-novaroma.fleet.localhost") is None
    proxy_stack.run("refresh")
    summary = proxy_stack.run("up")
    assert summary["changes"].get("create", 0) == 11  # the server and the ten routes
    assert proxy_stack.get("app-novaroma.fleet.localhost").status == 200
    assert set(proxy_stack.run("preview")["changes"]) == {"same"}


def test_destroy_removes_every_route_and_the_server(proxy_stack):
    proxy_stack.run("destroy")
    servers = proxy_stack.caddy.config("apps/http/servers") or {}
    assert "fleet" not in servers
