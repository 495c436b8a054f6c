"""The declared graph: sizing, env, isolation, data safety, DNS modes, proxy routes, blast radius."""

from __future__ import annotations

import subprocess
import sys

from fleet.offline.mocks import Declared
from fleet.paths import PROJECT_ROOT
from tests.unit.graph import (
    CONTAINER,
    DATABASE,
    DEFAULT_PRIVILEGES,
    DNS_RECORD,
    GRANT,
    HANDOVER,
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


def test_each_tenant_has_owner_and_login_roles_a_database_and_grants_on_its_server(dev_plan):
    for tenant, spec in dev_plan.specs.items():
        server = spec.database.server
        roles = {role.raw_inputs["name"]: role for role in of_type(dev_plan, ROLE, tenant)}
        (database,) = of_type(dev_plan, DATABASE, tenant)
        grants = {grant.name: grant.raw_inputs for grant in of_type(dev_plan, GRANT, tenant)}
        defaults = {d.name: d.raw_inputs for d in of_type(dev_plan, DEFAULT_PRIVILEGES, tenant)}
        (handover,) = of_type(dev_plan, HANDOVER, tenant)
        stem = tenant.replace("-", "_")
        db, app, owner = f"tenant_{stem}", f"tenant_{stem}_app", f"tenant_{stem}_dbo"
        assert set(roles) == {app, owner}
        assert roles[app].name == f"{tenant}-role-{server}" and roles[owner].name == f"{tenant}-owner-role-{server}"
        assert roles[app].raw_inputs["connectionLimit"] == {"basic": 5, "pro": 10, "enterprise": 40}[spec.plan]
        assert "password" in roles[app].secret_inputs
        # The owner never logs in and has no password; the app's role owns nothing.
        assert roles[owner].raw_inputs["login"] is False and roles[owner].raw_inputs["connectionLimit"] == 0
        assert "password" not in roles[owner].raw_inputs
        assert (database.name, database.raw_inputs["name"], database.raw_inputs["owner"]) == (f"{tenant}-db-{server}", db, owner)
        assert database.raw_inputs["template"] == "template0" and database.raw_inputs["encoding"] == "UTF8"
        assert database.raw_inputs["lcCollate"] == database.raw_inputs["lcCtype"] == "C.UTF-8"
        assert grants == {
            f"{tenant}-db-{server}-revoke-public": {"database": db, "role": "public", "objectType": "database", "privileges": []},
            f"{tenant}-db-{server}-app-database": {"database": db, "role": app, "objectType": "database", "privileges": ["CONNECT", "TEMPORARY"]},
            f"{tenant}-db-{server}-app-schema": {"database": db, "role": app, "schema": "public", "objectType": "schema", "privileges": ["USAGE", "CREATE"]},
        }
        assert defaults == {
            f"{tenant}-db-{server}-app-default-table": {
                "database": db, "owner": owner, "role": app, "objectType": "table",
                "privileges": ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"],
            },
            f"{tenant}-db-{server}-app-default-sequence": {"database": db, "owner": owner, "role": app, "objectType": "sequence", "privileges": ["USAGE", "SELECT", "UPDATE"]},
            f"{tenant}-db-{server}-app-default-function": {"database": db, "owner": owner, "role": app, "objectType": "function", "privileges": ["EXECUTE"]},
        }
        for grant in of_type(dev_plan, GRANT, tenant) + of_type(dev_plan, DEFAULT_PRIVILEGES, tenant):
            assert grant.options["deleteBeforeReplace"], grant.name
        for resource in (*roles.values(), database, *of_type(dev_plan, GRANT, tenant), *of_type(dev_plan, DEFAULT_PRIVILEGES, tenant)):
            assert f"::pg-{server}::" in resource.provider
        # The handover comes after both roles and before the database, so an existing tenant's database
        # changes owner (with the app's grants, in one transaction) before the Database resource looks at it.
        assert {roles[app].urn, roles[owner].urn} <= set(handover.options["dependencies"])
        assert handover.urn in database.options["dependencies"]
        assert {k: v for k, v in handover.raw_inputs.items() if k != "servers"} == {
            "resource_name": f"{tenant}-db-{server}-handover", "tenant": tenant, "database": db, "owner": owner, "role": app, "server": server,
        }
        assert "servers" in handover.secret_inputs


def test_removing_a_tenant_can_never_drop_its_data(dev_plan):
    for database in of_type(dev_plan, DATABASE):
        assert database.options["retainOnDelete"], database.name
    for role in of_type(dev_plan, ROLE):
        assert role.options["retainOnDelete"], role.name
        assert role.raw_inputs["skipDropRole"] and role.raw_inputs["skipReassignOwned"]


def test_suspended_tenant_keeps_data_but_runs_nothing_and_cannot_log_in(dev_plan):
    assert dev_plan.specs["catasaltas"].status == "suspended"
    assert of_type(dev_plan, CONTAINER, "catasaltas") == []
    assert [role.raw_inputs["login"] for role in of_type(dev_plan, ROLE, "catasaltas")] == [False, False]  # app and owner
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
    assert [r.raw_inputs for r in of_type(after, PASSWORD, "gurupi")] == [r.raw_inputs for r in of_type(dev_plan, PASSWORD, "gurupi")]
    # the database's own connection limit follows the plan; nothing else of it changes
    without_limit = [{**r.raw_inputs, "connectionLimit": None} for r in of_type(after, DATABASE, "gurupi")]
    assert without_limit == [{**r.raw_inputs, "connectionLimit": None} for r in of_type(dev_plan, DATABASE, "gurupi")]
    limits = {role.raw_inputs["name"]: role.raw_inputs["connectionLimit"] for role in of_type(after, ROLE, "gurupi")}
    assert limits == {"tenant_gurupi_app": 40, "tenant_gurupi_dbo": 0}
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


# ---------------------------------------------------------------- each server's shared databases


def _lockdown_grants(evaluation) -> dict[str, Declared]:
    return {grant.name: grant for grant in of_type(evaluation, GRANT) if grant.name.startswith("pg-")}


def test_public_is_shut_out_of_each_servers_shared_databases_once_per_server(dev_plan):
    grants = _lockdown_grants(dev_plan)
    assert set(grants) == {f"pg-{server}-lockdown-{db}-revoke-public" for server in ("shared-1", "dedicated-1") for db in ("postgres", "template1")}
    for name, grant in grants.items():
        server, database = name.removeprefix("pg-").split("-lockdown-")[0], name.split("-lockdown-")[1].removesuffix("-revoke-public")
        assert grant.raw_inputs == {"database": database, "role": "public", "objectType": "database", "privileges": []}
        assert f"::pg-{server}::" in (grant.provider or "") and grant.options["deleteBeforeReplace"]
        assert grant.tenant is None  # the platform's, not any tenant's


def test_a_managed_server_keeps_its_admin_connected_before_public_is_shut_out(workspace):
    workspace.config["servers"]["dedicated-1"]["superuser"] = False
    grants = _lockdown_grants(workspace.evaluate())
    admin = grants["pg-dedicated-1-lockdown-postgres-admin"]
    assert admin.raw_inputs == {"database": "postgres", "role": "postgres", "objectType": "database", "privileges": ["CONNECT", "TEMPORARY"]}
    assert admin.urn in grants["pg-dedicated-1-lockdown-postgres-revoke-public"].options["dependencies"]
    assert not any(name.startswith("pg-shared-1") and name.endswith("-admin") for name in grants)


def _evaluate_as_stack(workspace, stack: str):
    """The program as `pulumi up` of `stack` runs it (its own layout, not the offline plan's whole view)."""
    import json

    import pulumi

    from fleet.offline.mocks import Evaluation, run_under_mocks
    from fleet.program import CONFIG_NAMESPACE, fleet_program

    evaluation = Evaluation(stack=stack)
    config = {f"{CONFIG_NAMESPACE}:{key}": json.dumps(value) for key, value in workspace.config.items()}
    config[f"{CONFIG_NAMESPACE}:server_passwords"] = json.dumps({})

    def program() -> None:
        pulumi.runtime.set_all_config(config, [f"{CONFIG_NAMESPACE}:server_passwords"])
        fleet_program(None, workspace.tenants_dir)

    run_under_mocks(program, evaluation, stack)
    return evaluation


def test_a_tenant_stack_leaves_the_lockdown_to_the_platform_stack(workspace):
    workspace.config["stacks"] = "per-tenant"
    assert len(_lockdown_grants(_evaluate_as_stack(workspace, "dev"))) == 4
    tenant = _evaluate_as_stack(workspace, "dev.gurupi")
    assert of_type(tenant, DATABASE) and _lockdown_grants(tenant) == {}
