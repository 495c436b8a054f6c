"""Named services routed for real: the engine, the project's Caddy routes and a live Caddy.

A proxy-only stack (apps reached through `proxy.external_upstreams`, one upstream per service) of the
shipped tenants. Writing plan `pro`'s default shape out as services of the same names changes nothing
in the engine's preview; turning it into a `web` and an `admin` service moves only that plan's tenants'
hostnames to the services that serve them.
"""

from __future__ import annotations

import pytest
import yaml

from fleet.bench.servers import UpstreamHTTPServer
from fleet.engine import driver as engine
from tests.e2e.test_fleet_proxy import ProxyStack
from tests.support.fixtures import running

SERVICES = ("backend", "frontend", "web", "admin")


@pytest.fixture(scope="module")
def upstreams():
    servers = {name: UpstreamHTTPServer(name) for name in SERVICES}
    with running(*servers.values()):
        yield servers


@pytest.fixture(scope="module")
def stack(tmp_path_factory, caddy_process, upstreams):
    proxy_stack = ProxyStack(tmp_path_factory.mktemp("fleet"), caddy_process, tmp_path_factory.mktemp("state"), upstreams)
    proxy_stack.workspace.edit("gurupi", domains=["precos.gurupi.to.gov.br"], api_domains=["api.gurupi.to.gov.br"])
    yield proxy_stack
    try:
        engine.run("destroy", proxy_stack.stack(), on_output=None)
    except engine.EngineError:
        pass


def rewrite_pro(stack: ProxyStack, services: dict) -> None:
    path = stack.workspace.tenants_dir / "_plans.yaml"
    data = yaml.safe_load(path.read_text())
    pro = data["plans"]["pro"]
    for part in ("backend", "frontend", "max"):
        pro.pop(part, None)
    pro["services"] = services
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = stack.workspace.read("santarita")  # its backend override moves under its service
    if "backend" in spec.get("overrides", {}):
        spec["overrides"] = {"services": {"backend": spec["overrides"]["backend"]}}
        stack.workspace.write("santarita", spec)


def served_by(stack: ProxyStack, host: str) -> str:
    answer = stack.get(host)
    assert answer.status == 200, (host, answer.status, answer.body)
    return answer.body.split()[0]


def size(cpu: float, memory_mb: int, replicas: int = 1) -> dict:
    return {"cpu": cpu, "memory_mb": memory_mb, "replicas": replicas}


def test_the_default_shape_is_routed_to_backend_and_frontend(stack):
    stack.run("up")
    assert served_by(stack, "api-gurupi.fleet.localhost") == "backend"
    assert served_by(stack, "api.gurupi.to.gov.br") == "backend"
    assert served_by(stack, "precos.gurupi.to.gov.br") == "frontend"


def test_the_default_shape_written_as_services_is_no_change_to_the_engine(stack):
    rewrite_pro(
        stack,
        {
            "backend": {**size(0.5, 512), "image": "nginx:1.27.3-alpine", "port": 80, "health_path": "/", "routes": ["api-", "api_domains"], "max": size(1.0, 1024, 2)},
            "frontend": {
                **size(0.25, 256), "image": "nginx:1.27.3-alpine", "port": 80, "health_path": "/", "routes": ["app-", "domains"], "env": "frontend", "max": size(0.5, 512),
            },
        },
    )
    assert set(stack.run("preview")["changes"]) == {"same"}


def test_services_take_the_hostnames_they_route_and_other_plans_tenants_are_untouched(stack):
    before = stack.route_objects()
    rewrite_pro(
        stack,
        {
            "web": {**size(0.5, 512), "image": "ghcr.io/acme/web:2.4.1", "port": 3000, "routes": ["app-", "api-", "domains"]},
            "admin": {**size(0.25, 256), "image": "ghcr.io/acme/admin:1.0.3", "routes": ["api_domains"]},
        },
    )
    spec = stack.workspace.read("santarita")
    spec.pop("overrides")
    stack.workspace.write("santarita", spec)
    stack.run("up")
    changed = stack.changed_urns()
    pro_tenants = ("gurupi", "santarita")
    assert changed and all(any(f"::{tenant}-route-" in urn for tenant in pro_tenants) for urn in changed), changed
    assert sorted(op for urn, op in changed.items() if "gurupi" in urn) == ["create", "create", "delete", "delete"]
    for host in ("app-gurupi.fleet.localhost", "api-gurupi.fleet.localhost", "precos.gurupi.to.gov.br"):
        assert served_by(stack, host) == "web"
    assert served_by(stack, "api.gurupi.to.gov.br") == "admin"
    assert served_by(stack, "api-pirapora.fleet.localhost") == "backend"  # plan enterprise: the default shape
    after = stack.route_objects()
    assert "tenant-gurupi-api" not in after and "tenant-gurupi-web" in after
    for route_id, route in before.items():
        if not route_id.startswith(("tenant-gurupi-", "tenant-santarita-")):
            assert after[route_id] == route, route_id
    assert set(stack.run("preview")["changes"]) == {"same"}
