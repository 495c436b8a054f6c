"""Names are contracts: the URNs of existing tenants' resources must not change.

A changed URN makes the engine create a new resource and delete the old one; for a database that
is a new, empty database. If this test fails because you renamed or re-parented something on
purpose, add an alias (`pulumi.ResourceOptions(aliases=[...])`) for the old URN, prove it here, and
only then update contract_urns.txt.
"""

from __future__ import annotations

from pathlib import Path

from fleet.model import derive
from fleet.model.spec import DatabaseRef, TenantSpec

CONTRACT = Path(__file__).with_name("contract_urns.txt")


def test_urns_of_existing_tenants_are_unchanged(dev_plan):
    expected = set(CONTRACT.read_text().split())
    tenants = {urn.rsplit("::", 1)[1].split("-")[0] for urn in expected}
    actual = {dev_plan.engine_urn(r) for r in dev_plan.resources if r.tenant in tenants}
    assert sorted(expected - actual) == [], "URNs gone (these resources would be replaced or deleted)"
    assert sorted(actual - expected) == [], "new URNs for existing tenants: update contract_urns.txt consciously"


def test_database_urn_names_the_server_so_a_move_never_replaces_in_place(dev_plan):
    (database,) = [r for r in dev_plan.resources if r.type == "postgresql:index/database:Database" and r.tenant == "pirapora"]
    assert dev_plan.engine_urn(database) == (
        "urn:pulumi:dev::tenant-fleet::tenant-fleet:index:Tenant$tenant-fleet:index:TenantDatabase$"
        "postgresql:index/database:Database::pirapora-db-dedicated-1"
    )


def test_postgres_identifiers_are_injective_over_dns_labels():
    def spec(name: str) -> TenantSpec:
        return TenantSpec(name=name, display_name=name, plan="basic", database=DatabaseRef(server="s"))

    # '-' becomes '_' and '_' cannot occur in a DNS label, so two tenants never share a database
    assert derive.database_name(spec("santa-rita")) == "tenant_santa_rita"
    assert derive.database_name(spec("santarita")) != derive.database_name(spec("santa-rita"))
    assert derive.role_name(spec("santa-rita")) == "tenant_santa_rita_app"


def test_stack_names_are_a_contract():
    """Renaming a stack loses its state: `<env>` is the platform, `<env>.<tenant>` a tenant (fleet:stacks: per-tenant)."""
    from fleet.model import derive

    assert derive.platform_stack("prod") == "prod"
    assert derive.tenant_stack("prod", "santa-rita") == "prod.santa-rita"
    assert derive.split_stack("prod.santa-rita") == ("prod", "santa-rita")
    assert derive.split_stack("prod") == ("prod", None)
