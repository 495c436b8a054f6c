"""A plan's app as named services: each with its image, port, size, health check and hostnames, under mocks.

The default backend-plus-frontend shape is the same derivation (fleet.model.derive.services); written out as
services of the same names, it changes nothing.
"""

from __future__ import annotations

import yaml

from fleet.model.load import load_fleet
from fleet.offline.policies import check
from tests.unit.graph import CONTAINER, ROUTE, env_of, of_type
from tests.unit.test_env import edit_plan, problems_of
from tests.unit.test_lifecycle import changes, only

WEB = {
    "image": "ghcr.io/acme/web:2.4.1",
    "port": 3000,
    "health_path": "/api/health",
    "cpu": 0.5,
    "memory_mb": 512,
    "replicas": 2,
    "routes": ["app-", "api-", "domains"],
    "max": {"cpu": 1.0, "memory_mb": 1024, "replicas": 3},
}
ADMIN = {"image": "ghcr.io/acme/admin:1.0.3", "port": 8081, "cpu": 0.25, "memory_mb": 256, "replicas": 1, "routes": ["api_domains"]}
RENDERER = {"image": "ghcr.io/acme/renderer:0.9.0", "port": 9000, "cpu": 0.25, "memory_mb": 128, "replicas": 1, "health_path": "/ready"}
SITE = {"image": "ghcr.io/acme/site:2.4.1", "port": 80, "health_path": "/", "cpu": 0.25, "memory_mb": 64, "replicas": 1, "env": "frontend"}


def services_plan(workspace, plan: str = "pro", **services) -> None:
    """Replace a plan's backend, frontend and max by named services."""
    path = workspace.tenants_dir / "_plans.yaml"
    data = yaml.safe_load(path.read_text())
    for part in ("backend", "frontend", "max"):
        data["plans"][plan].pop(part, None)
    data["plans"][plan]["services"] = services
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for file in workspace.tenants_dir.glob("[!_]*.yaml"):  # backend and frontend overrides no longer apply
        spec = workspace.read(file.stem)
        if spec.get("plan") == plan and spec.pop("overrides", None) is not None:
            workspace.write(file.stem, spec)


def containers(evaluation, tenant: str) -> dict[str, object]:
    return {c.name: c for c in of_type(evaluation, CONTAINER, tenant)}


def test_each_service_runs_its_image_port_size_and_health_check_and_gets_the_hostnames_it_routes(workspace):
    services_plan(workspace, web=WEB, admin=ADMIN, renderer=RENDERER)
    workspace.edit("gurupi", api_domains=["api.gurupi.to.gov.br"], domains=["precos.gurupi.to.gov.br"])
    evaluation = workspace.evaluate()
    found = containers(evaluation, "gurupi")
    assert {"gurupi-web-0", "gurupi-web-1", "gurupi-admin-0", "gurupi-renderer-0"} <= set(found)
    assert not any("-backend-" in name or "-frontend-" in name for name in found)
    web = found["gurupi-web-0"].raw_inputs  # type: ignore[attr-defined]
    assert web["image"] == "ghcr.io/acme/web:2.4.1" and web["memory"] == 512 and web["cpus"] == "0.5"
    assert web["ports"] == [{"internal": 3000, "ip": "127.0.0.1"}]
    assert web["healthcheck"]["tests"][-1] == "http://127.0.0.1:3000/api/health"
    renderer = found["gurupi-renderer-0"].raw_inputs  # type: ignore[attr-defined]
    assert renderer["healthcheck"]["tests"][-1] == "http://127.0.0.1:9000/ready"
    assert {label["label"]: label["value"] for label in web["labels"]}["component"] == "web"

    routes = {route.name: route.raw_inputs for route in of_type(evaluation, ROUTE, "gurupi")}
    assert set(routes) == {"gurupi-route-web", "gurupi-route-admin"}  # the renderer serves no hostname
    assert routes["gurupi-route-web"]["hosts"] == ["app-gurupi.fleet.localhost", "api-gurupi.fleet.localhost", "precos.gurupi.to.gov.br"]
    assert routes["gurupi-route-admin"]["hosts"] == ["api.gurupi.to.gov.br"]
    assert routes["gurupi-route-web"]["route_id"] == "tenant-gurupi-web"
    assert len(routes["gurupi-route-web"]["upstreams"]) == 2 and len(routes["gurupi-route-admin"]["upstreams"]) == 1


def test_a_service_gets_the_backends_env_or_the_frontends_and_its_own_port(workspace):
    services_plan(workspace, web=WEB, admin=ADMIN, site={**SITE, "routes": []})
    edit_plan(workspace, "pro", secrets={"backend": {"NEXTAUTH_SECRET": {"generate": 48}}}, env={"frontend": {"PUBLIC_API": "${urls.api}/v1"}})
    evaluation = workspace.evaluate()
    found = containers(evaluation, "gurupi")
    web, site = env_of(found["gurupi-web-0"]), env_of(found["gurupi-site-0"])
    assert web["PORT"] == "3000" and web["DATABASE_URL"].startswith("postgresql://") and "NEXTAUTH_SECRET" in web
    assert web["REACT_APP_COLOR"] == "#F29F05" and web["PUBLIC_API"] == "http://api-gurupi.fleet.localhost/v1"  # it serves app-: the pages too
    assert env_of(found["gurupi-admin-0"])["PORT"] == "8081" and "REACT_APP_COLOR" not in env_of(found["gurupi-admin-0"])
    assert "DATABASE_URL" not in site and "NEXTAUTH_SECRET" not in site and "JWT_SECRET" not in site  # public: no secret
    assert site["REACT_APP_COLOR"] == "#F29F05"


def test_the_default_shape_written_as_services_changes_nothing(workspace):
    before = workspace.evaluate()
    path = workspace.tenants_dir / "_plans.yaml"
    data = yaml.safe_load(path.read_text())
    pro = data["plans"]["pro"]
    image, port = workspace.config["images"]["backend"], workspace.config["images"]["backend_port"]
    pro["services"] = {
        "backend": {**pro.pop("backend"), "image": image, "port": port, "health_path": "/", "routes": ["api-", "api_domains"], "max": pro["max"]["backend"]},
        "frontend": {**pro.pop("frontend"), "image": image, "port": port, "health_path": "/", "routes": ["app-", "domains"], "env": "frontend", "max": pro["max"]["frontend"]},
    }
    pro.pop("max")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for tenant in ("gurupi", "santarita"):  # santarita has a backend override: it moves under overrides.services
        spec = workspace.read(tenant)
        if "overrides" in spec:
            spec["overrides"] = {"services": spec["overrides"]}
            workspace.write(tenant, spec)
    after = workspace.evaluate()
    assert changes(before, after) == {"create": set(), "delete": set(), "update": set()}


def test_services_are_checked_by_the_policies_and_an_override_moves_only_that_tenants_service(workspace):
    services_plan(workspace, web=WEB, admin=ADMIN)
    before = workspace.evaluate()
    assert [v for v in check(before, load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent)) if v.enforcement == "mandatory"] == []
    workspace.edit("gurupi", overrides={"services": {"web": {"memory_mb": 1024}}})
    after = workspace.evaluate()
    found = only("gurupi", changes(before, after))
    assert found["create"] == found["delete"] == set()
    assert found["update"] == {(CONTAINER, "gurupi-web-0"), (CONTAINER, "gurupi-web-1")}
    fleet = load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent)
    assert [v for v in check(after, fleet) if v.enforcement == "mandatory"] == []


def test_an_impossible_shape_is_named_with_every_problem_at_once(workspace):
    services_plan(
        workspace,
        web={**WEB, "routes": ["app-", "domains", "app-"]},
        admin={**ADMIN, "routes": ["api-"], "env": "frontend", "replicas": 0},
        worker={**RENDERER},
    )
    edit_plan(workspace, "basic", services={"web": WEB})  # and still its backend and frontend
    problems = "\n".join(problems_of(workspace))
    assert "plans.pro.services.web: a route is listed twice" in problems
    assert "plans.pro.services.admin: replicas 0 would leave api- unserved" in problems
    assert "plans.pro.services.worker.[key]: 'worker' is reserved" in problems
    assert "services replace backend, frontend and their max (each service has its own max; a services plan's max holds only database): " \
        "drop backend, frontend, max.backend, max.frontend" in problems


def test_a_shape_that_leaves_a_hostname_unserved_or_serves_one_twice_is_refused(workspace):
    services_plan(workspace, web={**WEB, "routes": ["app-", "domains"]}, site={**SITE, "routes": ["app-", "api_domains"]})
    problems = "\n".join(problems_of(workspace))
    assert "no service routes api-" in problems
    assert "app- routed to web and site: one service each" in problems


def test_a_tenant_override_names_a_service_of_its_plan_within_its_max(workspace):
    services_plan(workspace, web=WEB, admin=ADMIN)
    workspace.edit("gurupi", overrides={"services": {"web": {"memory_mb": 4096}, "api": {"cpu": 1}, "admin": {"replicas": 0}}})
    workspace.edit("santarita", overrides={"backend": {"memory_mb": 768}})
    problems = "\n".join(problems_of(workspace))
    assert "gurupi.yaml: tenant gurupi: overrides.services.web.memory_mb: 4096 exceeds plan pro's max 1024" in problems
    assert "overrides.services.api: plan pro has no service 'api' (it has web, admin)" in problems
    assert "overrides.services.admin.replicas: 0 would leave api_domains unserved" in problems
    assert "santarita.yaml: tenant santarita: overrides.backend: plan pro declares services (web, admin)" in problems
    # a service without `max` takes no override above its own size
    workspace.edit("gurupi", overrides={"services": {"admin": {"memory_mb": 512}}})
    workspace.edit("santarita", overrides={})
    assert "overrides.services.admin.memory_mb: 512 exceeds plan pro's max 256" in "\n".join(problems_of(workspace))


def test_a_plans_app_version_retags_every_service_and_workers_follow_the_primary_service(workspace):
    services_plan(workspace, web=WEB, admin=ADMIN)
    edit_plan(workspace, "pro", app_version="2.5.0", workers={"queue": {"command": ["node", "worker.js"], "cpu": 0.25, "memory_mb": 128}})
    evaluation = workspace.evaluate()
    found = containers(evaluation, "gurupi")
    assert found["gurupi-web-0"].raw_inputs["image"] == "ghcr.io/acme/web:2.5.0"  # type: ignore[attr-defined]
    assert found["gurupi-admin-0"].raw_inputs["image"] == "ghcr.io/acme/admin:2.5.0"  # type: ignore[attr-defined]
    queue = next(c for name, c in found.items() if "worker-queue" in name)
    assert queue.raw_inputs["image"] == "ghcr.io/acme/web:2.5.0"  # type: ignore[attr-defined]
    assert env_of(queue)["DATABASE_URL"] == env_of(found["gurupi-web-0"])["DATABASE_URL"]


def test_a_service_routing_only_custom_domains_the_tenant_lacks_gets_no_route(workspace):
    services_plan(workspace, web=WEB, admin=ADMIN)
    evaluation = workspace.evaluate()
    assert sorted(route.name for route in of_type(evaluation, ROUTE, "santarita")) == ["santarita-route-web"]  # no api_domains
    assert "santarita-admin-0" in containers(evaluation, "santarita")  # the service still runs


def test_a_services_plans_max_bounds_the_database_limits_a_tenant_may_raise(workspace):
    services_plan(workspace, web=WEB, admin=ADMIN)
    bounds = {"statement_timeout_s": 120, "idle_in_transaction_timeout_s": 60, "work_mem_mb": 16, "temp_file_limit_mb": 4096, "jobs_statement_timeout_s": 1800}
    edit_plan(workspace, "pro", max={"database": bounds})
    workspace.edit("gurupi", overrides={"database": {"statement_timeout_s": 120, "work_mem_mb": 8}})
    workspace.edit("santarita", overrides={"database": {"work_mem_mb": 32}})
    problems = problems_of(workspace)
    assert problems == ["tenants/santarita.yaml: tenant santarita: overrides.database.work_mem_mb: 32 exceeds plan pro's max 16 (max.database, else its database_limits)"]
    workspace.edit("santarita", overrides={})
    fleet = load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent)
    from fleet.model.db_limits import database_limits

    limits = database_limits(fleet.tenant("gurupi"), fleet.plans["pro"])
    assert (limits.statement_timeout_s, limits.work_mem_mb) == (120, 8)


def test_a_default_shape_plan_needs_both_parts_of_its_max(workspace):
    edit_plan(workspace, "basic", max={"backend": {"cpu": 1, "memory_mb": 1024, "replicas": 2}})
    assert any("basic" in problem and "max.frontend missing" in problem for problem in problems_of(workspace))
