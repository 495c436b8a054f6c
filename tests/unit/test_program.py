"""The declared graph: sizing, env, isolation, data safety, DNS modes, proxy routes, blast radius."""

from __future__ import annotations

import subprocess
import sys

from fleet.paths import PROJECT_ROOT
from tests.unit.graph import (
    CONTAINER,
    DATABASE,
    DNS_RECORD,
    GRANT,
    PASSWORD,
    ROLE,
    ROUTE,
    env_of,
    of_type,
    tenant_fingerprint,
)


def containers(evaluation, tenant, role):
    return sorted(
        (c for c in of_type(evaluation, CONTAINER, tenant) if {"label": "component", "value": role} in c.raw_inputs["labels"]),
        key=lambda c: c.name,
    )


def test_containers_are_sized_by_plan_with_overrides(dev_plan):
    # pro backend 0.5 CPU / 512 MB, santarita overrides memory to 768
    (backend,) = containers(dev_plan, "santarita", "backend")
    assert (backend.raw_inputs["cpus"], backend.raw_inputs["memory"], backend.raw_inputs["memorySwap"]) == ("0.5", 768, 768)
    (frontend,) = containers(dev_plan, "santarita", "frontend")
    assert (frontend.raw_inputs["cpus"], frontend.raw_inputs["memory"]) == ("0.25", 256)
    # enterprise: two replicas of each, 1.0 CPU / 1024 MB backends
    backends = containers(dev_plan, "pirapora", "backend")
    assert [(c.name, c.raw_inputs["cpus"], c.raw_inputs["memory"]) for c in backends] == [("pirapora-backend-0", "1", 1024), ("pirapora-backend-1", "1", 1024)]
    assert len(containers(dev_plan, "pirapora", "frontend")) == 2


def test_every_container_has_limits_labels_restart_and_health_check(dev_plan):
    all_containers = of_type(dev_plan, CONTAINER)
    assert len(all_containers) == 2 * 3 + 4  # gurupi, novaroma, santarita: 1+1 each; pirapora: 2+2; catasaltas suspended
    for container in all_containers:
        inputs = container.raw_inputs
        labels = {label["label"]: label["value"] for label in inputs["labels"]}
        assert labels["tenant"] == container.tenant and labels["plan"] == dev_plan.specs[container.tenant].plan
        assert inputs["memory"] > 0 and float(inputs["cpus"]) > 0
        assert inputs["restart"] == "unless-stopped"
        assert inputs["healthcheck"]["tests"][0] == "CMD"
        assert "name" not in inputs  # Pulumi names containers, so a replacement starts the new one first
        assert inputs["ports"] == [{"internal": 80, "ip": "127.0.0.1"}]


def test_backend_env_carries_database_url_secrets_and_plan_limits(dev_plan):
    (backend,) = containers(dev_plan, "novaroma", "backend")
    assert "envs" in backend.secret_inputs
    env = env_of(backend)
    assert env["USER_LIMIT"] == "3" and env["CONNECTIONS_LIMIT"] == "2"
    assert env["DATABASE_URL"].startswith("postgresql://tenant_novaroma_app:mock-novaroma-db-password-")
    assert env["DATABASE_URL"].endswith("@127.0.0.1:5432/tenant_novaroma?sslmode=disable")
    assert env["JWT_SECRET"].startswith("mock-novaroma-jwt-secret-") and env["JWT_REFRESH_SECRET"].startswith("mock-novaroma-jwt-refresh-secret-")
    assert env["BACKEND_URL"] == "http://api-novaroma.fleet.localhost"
    assert env["FRONTEND_URL"] == "http://app-novaroma.fleet.localhost"


def test_frontend_env_carries_white_label(dev_plan):
    (frontend,) = containers(dev_plan, "santarita", "frontend")
    env = env_of(frontend)
    assert env["REACT_APP_COLOR"] == "#682EE3"
    assert env["REACT_APP_TAB_NAME"] == "Santa Rita - Cesta de Preços"
    assert env["STACK_NAME"] == "santarita"
    assert "DATABASE_URL" not in env and "JWT_SECRET" not in env  # the browser-facing app gets no secrets
    (gurupi_frontend,) = containers(dev_plan, "gurupi", "frontend")
    assert env_of(gurupi_frontend)["REACT_APP_TAB_NAME"] == "Gurupi - Cesta de Preços"


def test_secrets_are_generated_long_and_rotatable(dev_plan):
    passwords = of_type(dev_plan, PASSWORD)
    assert len(passwords) == 3 * 5
    for password in passwords:
        assert password.raw_inputs["length"] >= 32
        assert password.raw_inputs["keepers"] == {"rotation": "0"}


def test_each_tenant_has_role_database_and_public_revoked_on_its_server(dev_plan):
    for tenant, spec in dev_plan.specs.items():
        server = spec.database.server
        (role,) = of_type(dev_plan, ROLE, tenant)
        (database,) = of_type(dev_plan, DATABASE, tenant)
        (grant,) = of_type(dev_plan, GRANT, tenant)
        stem = tenant.replace("-", "_")
        assert (role.name, role.raw_inputs["name"]) == (f"{tenant}-role-{server}", f"tenant_{stem}_app")
        assert role.raw_inputs["connectionLimit"] == {"basic": 5, "pro": 10, "enterprise": 40}[spec.plan]
        assert "password" in role.secret_inputs
        assert (database.name, database.raw_inputs["name"], database.raw_inputs["owner"]) == (f"{tenant}-db-{server}", f"tenant_{stem}", f"tenant_{stem}_app")
        assert database.raw_inputs["template"] == "template0" and database.raw_inputs["encoding"] == "UTF8"
        assert database.raw_inputs["lcCollate"] == database.raw_inputs["lcCtype"] == "C.UTF-8"
        assert grant.raw_inputs == {"database": f"tenant_{stem}", "role": "public", "objectType": "database", "privileges": []}
        assert grant.options["deleteBeforeReplace"]
        for resource in (role, database, grant):
            assert f"::pg-{server}::" in resource.provider


def test_removing_a_tenant_can_never_drop_its_data(dev_plan):
    for database in of_type(dev_plan, DATABASE):
        assert database.options["retainOnDelete"], database.name
    for role in of_type(dev_plan, ROLE):
        assert role.options["retainOnDelete"], role.name
        assert role.raw_inputs["skipDropRole"] and role.raw_inputs["skipReassignOwned"]


def test_suspended_tenant_keeps_data_but_runs_nothing_and_cannot_log_in(dev_plan):
    assert dev_plan.specs["catasaltas"].status == "suspended"
    assert of_type(dev_plan, CONTAINER, "catasaltas") == []
    (role,) = of_type(dev_plan, ROLE, "catasaltas")
    assert role.raw_inputs["login"] is False
    assert len(of_type(dev_plan, DATABASE, "catasaltas")) == 1
    routes = of_type(dev_plan, ROUTE, "catasaltas")
    assert routes and all(route.raw_inputs["maintenance"] is True for route in routes)


def test_routes_send_each_hostname_to_its_own_tenants_containers(dev_plan):
    routes = {route.name: route.raw_inputs for route in of_type(dev_plan, ROUTE, "pirapora")}
    api, app = routes["pirapora-route-backend"], routes["pirapora-route-frontend"]
    assert api["hosts"] == ["api-pirapora.fleet.localhost"] and api["route_id"] == "tenant-pirapora-api"
    assert app["hosts"] == ["app-pirapora.fleet.localhost", "compras.pirapora.mg.gov.br", "precos.pirapora.mg.gov.br"]
    ports = {c.name: c for c in of_type(dev_plan, CONTAINER, "pirapora")}
    assert len(api["upstreams"]) == 2 and len(app["upstreams"]) == 2  # one per replica
    assert api["admin_url"] == "http://127.0.0.1:2019" and api["server"] == "fleet"
    all_upstreams = [u for route in of_type(dev_plan, ROUTE) for u in route.raw_inputs["upstreams"]]
    assert len(all_upstreams) == len(set(all_upstreams)) == len(of_type(dev_plan, CONTAINER))
    assert ports


def test_dns_none_declares_no_records_and_never_imports_cloudflare():
    code = (
        "import sys; from pathlib import Path; from fleet.offline.plan import plan_stack; "
        "e = plan_stack('dev', Path('.')); "
        "print(len([r for r in e.resources if r.type.startswith('cloudflare')]), 'pulumi_cloudflare' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["0", "False"], result.stderr[-2000:]


def test_dns_cloudflare_publishes_proxied_records_in_managed_zones(workspace):
    workspace.config["base_domain"] = "fleet.example.com"
    workspace.config["dns"] = {"mode": "cloudflare", "zone_id": "zone-base", "target": "203.0.113.10", "extra_zones": {"pirapora.mg.gov.br": "zone-pirapora"}}
    evaluation = workspace.evaluate()
    records = {r.raw_inputs["name"]: r for r in of_type(evaluation, DNS_RECORD, "pirapora")}
    assert set(records) == {"api-pirapora.fleet.example.com", "app-pirapora.fleet.example.com", "compras.pirapora.mg.gov.br", "precos.pirapora.mg.gov.br"}
    assert records["compras.pirapora.mg.gov.br"].raw_inputs["zoneId"] == "zone-pirapora"
    assert records["api-pirapora.fleet.example.com"].raw_inputs["zoneId"] == "zone-base"
    for record in of_type(evaluation, DNS_RECORD):
        assert record.raw_inputs["proxied"] is True and record.raw_inputs["ttl"] == 1 and record.raw_inputs["type"] == "A"
        assert record.raw_inputs["content"] == "203.0.113.10"
        assert record.options["deleteBeforeReplace"]
    # santarita's custom domain is in no zone we manage: no record, the customer points it at us
    santarita = {r.raw_inputs["name"] for r in of_type(evaluation, DNS_RECORD, "santarita")}
    assert santarita == {"api-santarita.fleet.example.com", "app-santarita.fleet.example.com"}


def test_dns_cloudflare_with_a_hostname_target_uses_cname(workspace):
    workspace.config["dns"] = {"mode": "cloudflare", "zone_id": "z", "target": "ingress.fleet.localhost"}
    evaluation = workspace.evaluate(selection={"gurupi"})
    assert {r.raw_inputs["type"] for r in of_type(evaluation, DNS_RECORD)} == {"CNAME"}


def test_stack_outputs_expose_coordinates_and_keep_passwords_secret(dev_plan):
    from pulumi.runtime import rpc

    tenants = dev_plan.outputs["tenants"]
    assert not rpc.is_rpc_secret(tenants)
    assert tenants["pirapora"]["database"] == {"host": "127.0.0.1", "port": 5433, "name": "tenant_pirapora", "user": "tenant_pirapora_app"}
    assert tenants["santarita"]["urls"] == {
        "api": "http://api-santarita.fleet.localhost",
        "app": "http://app-santarita.fleet.localhost",
        "precos.santarita.mg.gov.br": "http://precos.santarita.mg.gov.br",
    }
    assert "password" not in repr(tenants)
    passwords = dev_plan.outputs["database_passwords"]
    assert rpc.is_rpc_secret(passwords)
    assert set(rpc.unwrap_rpc_secret(passwords)) == set(dev_plan.specs)


def test_adding_a_tenant_leaves_every_other_tenant_identical(workspace, dev_plan):
    workspace.write("itabira", {"name": "itabira", "display_name": "Prefeitura de Itabira", "plan": "basic", "database": {"server": "dedicated-1"}})
    after = workspace.evaluate()
    for tenant in dev_plan.specs:
        assert tenant_fingerprint(after, tenant) == tenant_fingerprint(dev_plan, tenant), tenant
    assert len(of_type(after, CONTAINER, "itabira")) == 2


def test_changing_one_plan_changes_only_that_tenant(workspace, dev_plan):
    workspace.edit("gurupi", plan="enterprise")
    after = workspace.evaluate()
    for tenant in dev_plan.specs:
        same = tenant_fingerprint(after, tenant) == tenant_fingerprint(dev_plan, tenant)
        assert same is (tenant != "gurupi"), tenant
    # the upgrade resizes containers and the role's limit; database and secrets are untouched
    changed = {(r.type, r.name) for r in after.resources if r.tenant == "gurupi"} ^ {(r.type, r.name) for r in dev_plan.resources if r.tenant == "gurupi"}
    assert changed == {(CONTAINER, "gurupi-backend-1"), (CONTAINER, "gurupi-frontend-1")}
    for type_ in (DATABASE, PASSWORD):
        assert [r.raw_inputs for r in of_type(after, type_, "gurupi")] == [r.raw_inputs for r in of_type(dev_plan, type_, "gurupi")]
    (role,) = of_type(after, ROLE, "gurupi")
    assert role.raw_inputs["connectionLimit"] == 40
    # the network carries no plan: an upgrade must not replace it
    network = "docker:index/network:Network"
    assert [r.raw_inputs for r in of_type(after, network, "gurupi")] == [r.raw_inputs for r in of_type(dev_plan, network, "gurupi")]
    shared_before = [(r.type, r.name, repr(r.raw_inputs)) for r in dev_plan.shared()]
    assert [(r.type, r.name, repr(r.raw_inputs)) for r in after.shared()] == shared_before


def test_a_stack_can_declare_a_shard_of_the_fleet(workspace):
    workspace.config["tenants"] = ["gurupi", "pirapora"]
    assert set(workspace.evaluate().specs) == {"gurupi", "pirapora"}
    assert set(workspace.evaluate(selection={"novaroma"}).specs) == {"novaroma"}


def test_proxy_only_stack_routes_to_apps_running_elsewhere(workspace):
    workspace.config["layers"] = ["proxy"]
    workspace.config["proxy"]["external_upstreams"] = {"backend": "backend.{tenant}.svc:8080", "frontend": "frontend.{tenant}.svc:80"}
    evaluation = workspace.evaluate()
    assert {r.type for r in evaluation.resources if r.custom} == {ROUTE, "pulumi-python:dynamic/caddy:CaddyServer"}
    routes = {r.name: r.raw_inputs for r in of_type(evaluation, ROUTE, "gurupi")}
    assert routes["gurupi-route-backend"]["upstreams"] == ["backend.gurupi.svc:8080"]
    assert routes["gurupi-route-frontend"]["upstreams"] == ["frontend.gurupi.svc:80"]
