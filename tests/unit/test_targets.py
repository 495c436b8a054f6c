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
