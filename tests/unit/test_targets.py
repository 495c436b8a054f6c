"""`--tenant` targets: a tenant's URNs are found through parent links, never by name prefix."""

from fleet.engine.targets import deployed_tenants

STACK = "urn:pulumi:dev::tenant-fleet::pulumi:pulumi:Stack::tenant-fleet-dev"
TENANT = "tenant-fleet:index:Tenant"


def resource(type_chain: str, name: str, parent: str | None = STACK) -> dict:
    return {"urn": f"urn:pulumi:dev::tenant-fleet::{type_chain}::{name}", "type": type_chain.rsplit("$", 1)[-1], "parent": parent}


def test_children_belong_to_their_tenant_even_when_one_name_prefixes_another():
    santa = resource(TENANT, "santa")
    santa_rita = resource(TENANT, "santa-rita")
    routes = resource(f"{TENANT}$tenant-fleet:index:TenantRoutes", "santa-rita-routes", santa_rita["urn"])
    route = resource(f"{TENANT}$tenant-fleet:index:TenantRoutes$pulumi-python:dynamic/caddy:CaddyRoute", "santa-rita-route-backend", routes["urn"])
    own = resource(f"{TENANT}$tenant-fleet:index:TenantRoutes", "santa-routes", santa["urn"])
    row = resource("tenant-fleet:index:TenantRegistry$pulumi-python:dynamic/registry:TenantRegistryRow", "registry-row-santa", None)
    shared = resource("pulumi-python:dynamic/caddy:CaddyServer", "proxy")
    grouped = deployed_tenants([resource("pulumi:pulumi:Stack", "tenant-fleet-dev", None), santa, santa_rita, routes, route, own, row, shared])
    assert grouped == {
        "santa": {santa["urn"], own["urn"], row["urn"]},
        "santa-rita": {santa_rita["urn"], routes["urn"], route["urn"]},
    }


def test_a_write_cut_off_by_a_kill_is_repaired_in_a_file_backend(tmp_path):
    """An empty attributes sidecar makes the engine fail every select ("failed to load checkpoint: EOF")."""
    from fleet.engine.ledger import Ledger

    folder = tmp_path / ".pulumi" / "stacks" / "tenant-fleet"
    folder.mkdir(parents=True)
    (folder / "dev.json").write_text('{"version": 3}')
    (folder / "dev.json.attrs").write_text("")  # truncated by the kill
    (folder / "dev.json.bak.attrs").write_text('{"user.metadata": null}')  # whole: kept
    (folder / "dev.json.18eca6865f4faa82.tmp").write_text('{"version"')  # a rename that never happened
    (folder / "other.json.attrs").write_text("")  # another stack's: not ours to touch
    assert Ledger(f"file://{tmp_path}").repair("dev") == ["dev.json.attrs", "dev.json.18eca6865f4faa82.tmp"]
    assert sorted(path.name for path in folder.iterdir()) == ["dev.json", "dev.json.bak.attrs", "other.json.attrs"]
