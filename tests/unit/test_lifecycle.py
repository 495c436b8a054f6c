"""Tenant lifecycle under mocks: each operation changes only the intended resources of only that tenant.

Upgrade/downgrade, suspend/resume, rotate, move, remove and purge are each one edit to one tenant file;
the real program is evaluated before and after, and the declared graphs are compared resource by
resource (type, logical name, inputs). What the engine would then do with a resource that left the
program (retain, skip) is read from the options recorded before. The providers' own decisions (diff:
update, never replace) are checked here too, without servers; tests/integration runs them for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi.runtime import rpc

from components.providers.postgres import DatabasePlacementProvider, TenantPurgeProvider
from fleet.model.type_tokens import ROLE_SETTINGS
from fleet.offline import mocks as fleet_plan
from fleet.paths import PROJECT_ROOT
from tests.unit.graph import (
    CONTAINER,
    DATABASE,
    DEFAULT_PRIVILEGES,
    GRANT,
    HANDOVER,
    PASSWORD,
    ROLE,
    ROUTE,
    env_of,
    of_type,
    tenant_fingerprint,
)

PLACEMENT = "pulumi-python:dynamic/postgres:DatabasePlacement"
PURGE = "pulumi-python:dynamic/postgres:TenantPurge"
TENANT = "tenant-fleet:index:Tenant"
NETWORK = "docker:index/network:Network"


def changes(before, after) -> dict[str, set[tuple[str, str, str]]]:
    """What the engine would do, by (tenant, type, name): create, delete, or update (inputs differ)."""
    old = {(r.tenant, r.type, r.name): r for r in before.resources}
    new = {(r.tenant, r.type, r.name): r for r in after.resources}
    return {
        "create": set(new) - set(old),
        "delete": set(old) - set(new),
        "update": {key for key in set(old) & set(new) if repr(old[key].raw_inputs) != repr(new[key].raw_inputs)},
    }


def only(tenant: str, found: dict[str, set]) -> dict[str, set[tuple[str, str]]]:
    """The changes, after asserting they all belong to `tenant`."""
    strays = {op: {key for key in keys if key[0] != tenant} for op, keys in found.items()}
    assert not any(strays.values()), f"other tenants or shared resources changed: {strays}"
    return {op: {(type_, name) for _, type_, name in keys} for op, keys in found.items()}


def one(evaluation, type_: str, tenant: str):
    (resource,) = of_type(evaluation, type_, tenant)
    return resource


def login_role(evaluation, tenant: str):
    """The tenant's login (app) role; its other Role is the NOLOGIN owner."""
    (resource,) = [r for r in of_type(evaluation, ROLE, tenant) if "-role-" in r.name and "-owner-role-" not in r.name]
    return resource


def database_layer(tenant: str, server: str) -> set[tuple[str, str]]:
    """(type, logical name) of everything a tenant's database declares on one server (URN contracts)."""
    return {
        (ROLE, f"{tenant}-role-{server}"),
        (ROLE, f"{tenant}-owner-role-{server}"),
        (ROLE_SETTINGS, f"{tenant}-role-{server}-settings"),
        (HANDOVER, f"{tenant}-db-{server}-handover"),
        (DATABASE, f"{tenant}-db-{server}"),
        (GRANT, f"{tenant}-db-{server}-revoke-public"),
        (GRANT, f"{tenant}-db-{server}-app-database"),
        (GRANT, f"{tenant}-db-{server}-app-schema"),
        *((DEFAULT_PRIVILEGES, f"{tenant}-db-{server}-app-default-{kind}") for kind in ("table", "sequence", "function")),
    }


@pytest.fixture
def deleted_with(monkeypatch) -> dict[str, str]:
    """Logical name -> URN of the resource it is `deleted_with`, recorded from the registrations."""
    recorded: dict[str, str] = {}
    original = fleet_plan.RecordingMonitor.RegisterResource

    def register(self, request):
        if request.deletedWith:
            recorded[request.name] = request.deletedWith
        return original(self, request)

    monkeypatch.setattr(fleet_plan.RecordingMonitor, "RegisterResource", register)
    return recorded


@pytest.fixture
def rotating_mocks(monkeypatch):
    """Mocks whose generated passwords depend on their keepers, as a real RandomPassword's replacement does."""
    original = fleet_plan.FleetMocks.new_resource

    def new_resource(self, args):
        resource_id, outputs = original(self, args)
        if args.typ == PASSWORD:
            outputs["result"] = f"mock-{args.name}-r{args.inputs['keepers']['rotation']}-" + "x" * 30
        return resource_id, outputs

    monkeypatch.setattr(fleet_plan.FleetMocks, "new_resource", new_resource)


# ---------------------------------------------------------------- upgrade / downgrade


def test_upgrade_resizes_only_that_tenants_containers_and_connection_limit(workspace, dev_plan):
    workspace.edit("gurupi", plan="enterprise")
    after = workspace.evaluate()
    found = only("gurupi", changes(dev_plan, after))
    assert found["create"] == {(CONTAINER, "gurupi-backend-1"), (CONTAINER, "gurupi-frontend-1")}
    assert found["delete"] == set()
    # Resized (docker replaces them, the new one started first), routed to the new replicas, and the
    # role's limit updated in place.
    assert found["update"] == {
        (CONTAINER, "gurupi-backend-0"), (CONTAINER, "gurupi-frontend-0"), (ROLE, "gurupi-role-shared-1"),
        (ROUTE, "gurupi-route-backend"), (ROUTE, "gurupi-route-frontend"), (DATABASE, "gurupi-db-shared-1"),
        (ROLE_SETTINGS, "gurupi-role-shared-1-settings"),  # the plan's work_mem, ALTER ROLE in place
    }
    assert login_role(after, "gurupi").raw_inputs["connectionLimit"] == 40
    # The database's own connection limit follows the plan (ALTER DATABASE in place); nothing else of it changes.
    (database_after,), (database_before,) = of_type(after, DATABASE, "gurupi"), of_type(dev_plan, DATABASE, "gurupi")
    assert database_after.raw_inputs["connectionLimit"] > database_before.raw_inputs["connectionLimit"]
    assert {**database_after.raw_inputs, "connectionLimit": None} == {**database_before.raw_inputs, "connectionLimit": None}
    # Grant, placement and secrets untouched.
    for type_ in (GRANT, PLACEMENT, PASSWORD, NETWORK):
        assert [r.raw_inputs for r in of_type(after, type_, "gurupi")] == [r.raw_inputs for r in of_type(dev_plan, type_, "gurupi")]


def test_downgrade_removes_replicas_and_lowers_the_connection_limit(workspace, dev_plan):
    workspace.edit("pirapora", plan="pro")
    after = workspace.evaluate()
    found = only("pirapora", changes(dev_plan, after))
    assert found["create"] == set()
    assert found["delete"] == {(CONTAINER, "pirapora-backend-1"), (CONTAINER, "pirapora-frontend-1")}
    assert found["update"] == {
        (CONTAINER, "pirapora-backend-0"), (CONTAINER, "pirapora-frontend-0"), (ROLE, "pirapora-role-dedicated-1"),
        (ROUTE, "pirapora-route-backend"), (ROUTE, "pirapora-route-frontend"),  # one upstream each now
        (DATABASE, "pirapora-db-dedicated-1"),  # its own connection limit, in place
        (ROLE_SETTINGS, "pirapora-role-dedicated-1-settings"),  # the plan's work_mem, in place
    }
    assert one(after, DATABASE, "pirapora").raw_inputs["connectionLimit"] < one(dev_plan, DATABASE, "pirapora").raw_inputs["connectionLimit"]
    assert [len(route.raw_inputs["upstreams"]) for route in of_type(after, ROUTE, "pirapora")] == [1, 1]
    assert login_role(after, "pirapora").raw_inputs["connectionLimit"] == 10
    backend = next(c for c in of_type(after, CONTAINER, "pirapora") if c.name == "pirapora-backend-0")
    assert (backend.raw_inputs["cpus"], backend.raw_inputs["memory"]) == ("0.5", 512)


# ---------------------------------------------------------------- suspend / resume


def test_suspend_stops_the_app_refuses_login_and_shows_maintenance_keeping_data_and_secrets(workspace, dev_plan):
    workspace.edit("santarita", status="suspended")
    suspended = workspace.evaluate()
    found = only("santarita", changes(dev_plan, suspended))
    assert found["create"] == set()
    assert found["delete"] == {(CONTAINER, "santarita-backend-0"), (CONTAINER, "santarita-frontend-0")}
    assert found["update"] == {(ROLE, "santarita-role-shared-1"), (ROUTE, "santarita-route-backend"), (ROUTE, "santarita-route-frontend")}
    assert login_role(suspended, "santarita").raw_inputs["login"] is False
    assert {route.raw_inputs["maintenance"] for route in of_type(suspended, ROUTE, "santarita")} == {True}
    for type_ in (DATABASE, GRANT, PLACEMENT, PASSWORD, "docker:index/network:Network"):
        assert [r.raw_inputs for r in of_type(suspended, type_, "santarita")] == [r.raw_inputs for r in of_type(dev_plan, type_, "santarita")]

    # Resuming brings back exactly what was there: same database, same secrets, same containers.
    workspace.edit("santarita", status="active")
    resumed = workspace.evaluate()
    assert tenant_fingerprint(resumed, "santarita") == tenant_fingerprint(dev_plan, "santarita")


def test_resuming_a_suspended_tenant_starts_its_app_with_its_existing_secrets(workspace, dev_plan):
    workspace.edit("catasaltas", status="active")
    after = workspace.evaluate()
    found = only("catasaltas", changes(dev_plan, after))
    assert found["create"] == {(CONTAINER, "catasaltas-backend-0"), (CONTAINER, "catasaltas-frontend-0")}
    assert found["update"] == {(ROLE, "catasaltas-role-shared-1"), (ROUTE, "catasaltas-route-backend"), (ROUTE, "catasaltas-route-frontend")}
    assert found["delete"] == set()
    backend = next(c for c in of_type(after, CONTAINER, "catasaltas") if c.name == "catasaltas-backend-0")
    assert env_of(backend)["DATABASE_URL"].startswith("postgresql://tenant_catasaltas_app:mock-catasaltas-db-password-")
    assert [r.raw_inputs for r in of_type(after, PASSWORD, "catasaltas")] == [r.raw_inputs for r in of_type(dev_plan, PASSWORD, "catasaltas")]


# ---------------------------------------------------------------- rotate


def test_rotation_issues_new_secrets_that_the_role_and_containers_pick_up_in_the_same_up(workspace, rotating_mocks):
    before = workspace.evaluate()
    workspace.edit("novaroma", rotation=1)
    after = workspace.evaluate()
    found = only("novaroma", changes(before, after))
    assert found["create"] == found["delete"] == set()
    passwords = {(PASSWORD, f"novaroma-{name}") for name in ("db-password", "jwt-secret", "jwt-refresh-secret")}
    containers = {(CONTAINER, "novaroma-backend-0")}  # the frontend gets no secrets
    assert found["update"] == passwords | containers | {(ROLE, "novaroma-role-shared-1")}
    for password in of_type(after, PASSWORD, "novaroma"):
        assert password.raw_inputs["keepers"] == {"rotation": "1"}  # a keepers change replaces it: a new value

    role = login_role(after, "novaroma")
    assert role.raw_inputs["password"].startswith("mock-novaroma-db-password-r1-")
    backend = next(c for c in of_type(after, CONTAINER, "novaroma") if c.name == "novaroma-backend-0")
    env = env_of(backend)
    assert env["DATABASE_URL"].startswith("postgresql://tenant_novaroma_app:mock-novaroma-db-password-r1-")
    assert env["JWT_SECRET"].startswith("mock-novaroma-jwt-secret-r1-") and env["JWT_REFRESH_SECRET"].startswith("mock-novaroma-jwt-refresh-secret-r1-")
    # Both read the generated values, so the engine updates them after the passwords, in the same run.
    urns = {r.name: r.urn for r in of_type(after, PASSWORD, "novaroma")}
    assert urns["novaroma-db-password"] in role.options["dependencies"]
    assert set(urns.values()) <= set(backend.options["dependencies"])
    # The data stays where it is.
    for type_ in (DATABASE, GRANT, PLACEMENT):
        assert [r.raw_inputs for r in of_type(after, type_, "novaroma")] == [r.raw_inputs for r in of_type(before, type_, "novaroma")]


# ---------------------------------------------------------------- move


def test_move_declares_role_and_database_on_the_target_and_updates_the_placement_in_place(workspace, deleted_with):
    dev_plan = workspace.evaluate()  # evaluated here so that `deleted_with` records it
    workspace.edit("santarita", database={"server": "dedicated-1"})
    after = workspace.evaluate()
    found = only("santarita", changes(dev_plan, after))
    assert found["create"] == database_layer("santarita", "dedicated-1")
    assert found["delete"] == database_layer("santarita", "shared-1")
    # The placement (same URN: no server in its name) is updated, and the backend follows its outputs.
    assert found["update"] == {(PLACEMENT, "santarita-db-placement"), (CONTAINER, "santarita-backend-0")}

    # What leaves the program is kept on the old server: retained, and the grants go without a REVOKE.
    for type_ in (ROLE, DATABASE):
        assert all(r.options["retainOnDelete"] for r in of_type(dev_plan, type_, "santarita"))
    old_database = one(dev_plan, DATABASE, "santarita")
    for type_, name in database_layer("santarita", "shared-1"):
        if type_ in (GRANT, DEFAULT_PRIVILEGES):
            assert deleted_with[name] == old_database.urn, name
    assert deleted_with["santarita-db-dedicated-1-revoke-public"] == one(after, DATABASE, "santarita").urn

    # The new role and database are on the target server, with the same password.
    for type_ in (ROLE, DATABASE, GRANT, DEFAULT_PRIVILEGES):
        assert all("::pg-dedicated-1::" in r.provider for r in of_type(after, type_, "santarita"))
    assert login_role(after, "santarita").raw_inputs["password"] == login_role(dev_plan, "santarita").raw_inputs["password"]
    assert [r.raw_inputs for r in of_type(after, PASSWORD, "santarita")] == [r.raw_inputs for r in of_type(dev_plan, PASSWORD, "santarita")]

    placement = one(after, PLACEMENT, "santarita")
    assert after.engine_urn(placement) == dev_plan.engine_urn(one(dev_plan, PLACEMENT, "santarita"))
    assert (placement.raw_inputs["server"], placement.raw_inputs["port"]) == ("dedicated-1", 5433)
    # It comes after the target's role, database and grant, and the app comes after it.
    target_urns = {r.urn for r in after.resources if r.tenant == "santarita" and r.type in (ROLE, DATABASE, GRANT, DEFAULT_PRIVILEGES)}
    assert target_urns <= set(placement.options["dependencies"])
    backend = next(c for c in of_type(after, CONTAINER, "santarita") if c.name == "santarita-backend-0")
    assert placement.urn in backend.options["dependencies"]
    assert env_of(backend)["DATABASE_URL"].endswith("@127.0.0.1:5433/tenant_santarita?sslmode=disable")
    assert after.outputs["tenants"]["santarita"]["database"]["port"] == 5433


def test_the_placement_carries_the_servers_admin_access_as_a_secret(dev_plan):
    placement = one(dev_plan, PLACEMENT, "pirapora")
    assert "servers" in placement.secret_inputs and placement.inputs["servers"] == "[secret]"
    servers = placement.raw_inputs["servers"]
    assert set(servers) == {"shared-1", "dedicated-1"}
    assert servers["dedicated-1"] == {"host": "127.0.0.1", "port": 5433, "admin_user": "postgres", "admin_password": "[secret]", "sslmode": "disable", "logical_replication": True}
    inputs = {key: value for key, value in placement.raw_inputs.items() if key != "servers"}
    assert inputs == {
        "resource_name": "pirapora-db-placement",
        "tenant": "pirapora",
        "database": "tenant_pirapora",
        "role": "tenant_pirapora_app",
        "server": "dedicated-1",
        "host": "127.0.0.1",
        "port": 5433,
        "checksum_max_bytes": 64 * 1024 * 1024,
        "owner": "tenant_pirapora_dbo",
    }  # pg_bin (not configured) and the output-only properties are None, which the SDK does not send
    assert len(of_type(dev_plan, PLACEMENT)) == len(dev_plan.specs)


# ---------------------------------------------------------------- remove


def test_removing_a_tenant_file_drops_its_app_and_routes_and_keeps_its_data(workspace, deleted_with):
    dev_plan = workspace.evaluate()  # evaluated here so that `deleted_with` records it
    workspace.tenant_file("pirapora").unlink()
    after = workspace.evaluate()
    found = only("pirapora", changes(dev_plan, after))
    assert found["create"] == found["update"] == set()
    assert found["delete"] == {(r.type, r.name) for r in dev_plan.resources if r.tenant == "pirapora"}
    # The engine retains what holds data, and the grant goes with its database (no REVOKE).
    for type_ in (ROLE, DATABASE):
        assert all(r.options["retainOnDelete"] for r in of_type(dev_plan, type_, "pirapora"))
    assert deleted_with["pirapora-db-dedicated-1-revoke-public"] == one(dev_plan, DATABASE, "pirapora").urn
    # The placement's delete touches no database (tests/integration/test_move.py runs it against a server).
    assert DatabasePlacementProvider().delete("id", {}) is None  # type: ignore[func-returns-value]  # the point: it returns, without a server


# ---------------------------------------------------------------- purge


def test_purge_declares_only_the_final_backup_and_drop(workspace, dev_plan):
    data = workspace.read("santarita")
    data["purge"] = {"confirm": "santarita", "reason": "contract ended 2025-06"}
    workspace.write("santarita", data)
    after = workspace.evaluate()
    found = only("santarita", changes(dev_plan, after))
    assert found["create"] == {(PURGE, "santarita-purge")}
    assert found["update"] == set()
    assert found["delete"] == {(r.type, r.name) for r in dev_plan.resources if r.tenant == "santarita" and r.type != TENANT}
    assert {r.type for r in after.resources if r.tenant == "santarita"} == {TENANT, PURGE}

    purge = one(after, PURGE, "santarita")
    assert purge.parent == one(after, TENANT, "santarita").urn
    # Its URN is a contract like the others (no shipped tenant is purged, so contract_urns.txt can't list it).
    assert after.engine_urn(purge) == "urn:pulumi:dev::tenant-fleet::tenant-fleet:index:Tenant$pulumi-python:dynamic/postgres:TenantPurge::santarita-purge"
    assert "servers" in purge.secret_inputs and set(purge.raw_inputs["servers"]) == {"shared-1", "dedicated-1"}
    inputs = {key: value for key, value in purge.raw_inputs.items() if key != "servers"}
    assert inputs == {
        "resource_name": "santarita-purge",
        "tenant": "santarita",
        "confirm": "santarita",
        "database": "tenant_santarita",
        "role": "tenant_santarita_app",
        "owner": "tenant_santarita_dbo",
        "jobs_role": "tenant_santarita_job",
        "server": "shared-1",
        "backup_dir": str(PROJECT_ROOT / "backups"),
        "reason": "contract ended 2025-06",
    }
    assert "santarita" not in rpc.unwrap_rpc_secret(after.outputs["database_passwords"])
    assert after.outputs["tenants"]["santarita"] == {"urls": {}}


def test_purge_follows_the_configured_backup_folder_and_declares_no_dns(workspace):
    workspace.config["backups"] = {"dir": "/srv/fleet-backups", "pg_bin": "/usr/lib/postgresql/15/bin"}
    workspace.config["dns"] = {"mode": "cloudflare", "zone_id": "z", "target": "203.0.113.10"}
    data = workspace.read("gurupi")
    data["purge"] = {"confirm": "gurupi"}
    workspace.write("gurupi", data)
    after = workspace.evaluate(selection={"gurupi", "novaroma"})
    purge = one(after, PURGE, "gurupi")
    assert (purge.raw_inputs["backup_dir"], purge.raw_inputs["pg_bin"]) == ("/srv/fleet-backups", "/usr/lib/postgresql/15/bin")
    assert {r.type for r in after.resources if r.tenant == "gurupi"} == {TENANT, PURGE}
    assert of_type(after, "cloudflare:index/dnsRecord:DnsRecord", "novaroma")  # DNS is on, just not for the purged tenant


def test_relative_backup_folders_are_relative_to_the_project_root(workspace):
    workspace.config["backups"] = {"dir": "var/backups"}
    data = workspace.read("gurupi")
    data["purge"] = {"confirm": "gurupi"}
    workspace.write("gurupi", data)
    purge = one(workspace.evaluate(selection={"gurupi"}), PURGE, "gurupi")
    assert Path(purge.raw_inputs["backup_dir"]) == PROJECT_ROOT / "var" / "backups"


# ---------------------------------------------------------------- the providers' decisions, without servers


def placement_state(server: str = "shared-1", **changes) -> dict:
    state = {
        "tenant": "acme",
        "database": "tenant_acme",
        "role": "tenant_acme_app",
        "server": server,
        "host": "10.0.0.1" if server == "shared-1" else "10.0.0.2",
        "port": 5432,
        "servers": {
            "shared-1": {"host": "10.0.0.1", "port": 5432, "admin_user": "postgres", "admin_password": "pw-shared-secret", "sslmode": "require"},
            "dedicated-1": {"host": "10.0.0.2", "port": 5432, "admin_user": "postgres", "admin_password": "pw-dedicated-secret", "sslmode": "require"},
        },
    }
    state.update(changes)
    return state


def outputs_of(props: dict) -> dict:
    return DatabasePlacementProvider._outputs(props, moves=[], moved_at=None)


def test_a_server_change_is_an_update_of_the_placement_never_a_replacement():
    provider = DatabasePlacementProvider()
    olds = outputs_of(placement_state())
    assert "servers" not in olds and "pw-" not in repr(olds)
    diff = provider.diff("acme", olds, placement_state("dedicated-1"))
    assert diff.changes and not diff.replaces and not diff.delete_before_replace
    assert not provider.diff("acme", olds, placement_state()).changes
    rotated = placement_state()
    rotated["servers"]["shared-1"]["admin_password"] = "rotated"
    rotated["servers"]["dedicated-1"]["host"] = "10.9.9.9"
    assert not provider.diff("acme", olds, rotated).changes, "other servers and passwords are not the placement's state"
    assert provider.diff("acme", olds, placement_state(port=6432.0)).changes
    assert not provider.diff("acme", {**olds, "port": 5432.0}, placement_state()).changes
    assert provider.diff("acme", olds, placement_state(server=rpc.UNKNOWN)).changes  # not known yet during a preview


def test_placement_and_purge_checks_catch_bad_inputs():
    failures = DatabasePlacementProvider().check({}, placement_state(server="nowhere")).failures
    assert [f.property for f in failures] == ["servers"]
    failures = DatabasePlacementProvider().check({}, placement_state(database="x" * 64)).failures
    assert [f.property for f in failures] == ["database"]
    purge = {**placement_state(), "confirm": "other", "backup_dir": "/backups"}
    assert [f.property for f in TenantPurgeProvider().check({}, purge).failures] == ["confirm"]
    assert not TenantPurgeProvider().diff("id", purge, {**purge, "reason": "changed", "server": "dedicated-1"}).changes


def test_changing_the_database_name_of_a_placement_is_refused():
    from components.providers import ProviderError

    olds = outputs_of(placement_state())
    with pytest.raises(ProviderError, match="database cannot change"):
        DatabasePlacementProvider().update("acme", olds, placement_state(database="tenant_other"))
