"""The tenant registry's providers against a real PostgreSQL: the `tenants` table follows the tenant files.

No engine: the provider methods are called the way the engine would (create(props), diff(id, olds,
news), update(id, olds, news), read, delete), with the rows the program declares for the shipped
tenants (components.registry.row_values) as they are added, upgraded, suspended and removed.
"""

from __future__ import annotations

import pytest

from components.providers import ProviderError
from components.providers.registry import (
    COLUMNS,
    TenantRegistryRowProvider,
    TenantRegistryTableProvider,
)
from components.registry import row_values
from fleet.model.load import load_fleet
from tests.support.dynamic import outs_of
from tests.unit.graph import FleetWorkspace

DATABASE = "fleet_registry"


@pytest.fixture
def workspace(tmp_path):
    return FleetWorkspace(tmp_path)


@pytest.fixture
def location(postgres_cluster):
    """Where the registry lives: a database of its own on the session cluster, dropped after each test."""
    yield {
        "host": postgres_cluster.host,
        "port": postgres_cluster.port,
        "admin_user": postgres_cluster.admin_user,
        "admin_password": postgres_cluster.admin_password,
        "sslmode": "disable",
        "database": DATABASE,
        "schema": "public",
        "table": "tenants",
        "resource_name": "registry-table",
    }
    with postgres_cluster.connect() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def fleet_of(workspace):
    return load_fleet(workspace.tenants_dir, workspace.config)


def row_props(location, workspace, tenant: str) -> dict:
    fleet = fleet_of(workspace)
    spec = fleet.tenant(tenant)
    return {**location, **row_values(spec, fleet.plan_of(spec), fleet.environment), "resource_name": f"registry-row-{tenant}"}


def rows(postgres_cluster) -> dict[str, dict]:
    from psycopg.rows import dict_row

    with postgres_cluster.connect(DATABASE) as connection:
        return {row["name"]: row for row in connection.cursor(row_factory=dict_row).execute("SELECT * FROM tenants")}


def test_the_table_is_created_with_its_database_and_never_dropped(postgres_cluster, location):
    provider = TenantRegistryTableProvider()
    created = provider.create(location)
    assert created.id == f"127.0.0.1:{location['port']}/{DATABASE}/public.tenants"
    with postgres_cluster.connect(DATABASE) as connection:
        columns = [name for (name,) in connection.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'tenants' ORDER BY ordinal_position")]
        index = connection.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'tenants' AND indexname = 'tenants_hostnames_idx'").fetchone()
    assert columns == [name for name, _ in COLUMNS] and "gin (hostnames)" in index[0]
    # An existing table is adopted (a second stack, or lost state); a missing column is added.
    with postgres_cluster.connect(DATABASE) as connection:
        connection.execute("ALTER TABLE tenants DROP COLUMN custom_domains")
    provider.create(location)
    assert provider.read(created.id, outs_of(created)).id == created.id
    provider.delete(created.id, outs_of(created))
    with postgres_cluster.connect(DATABASE) as connection:
        assert connection.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'tenants'").fetchone()[0] == len(COLUMNS)


def test_rows_follow_add_plan_change_suspend_and_remove(postgres_cluster, location, workspace):
    TenantRegistryTableProvider().create(location)
    provider = TenantRegistryRowProvider()

    # add
    outs = {}
    for tenant in ("gurupi", "pirapora", "santarita"):
        created = provider.create(row_props(location, workspace, tenant))
        assert created.id == f"tenants/{tenant}"
        outs[tenant] = outs_of(created)
    table = rows(postgres_cluster)
    santarita = table["santarita"]
    assert (santarita["display_name"], santarita["plan"], santarita["status"], santarita["active"]) == ("Prefeitura de Santa Rita", "pro", "active", True)
    assert (santarita["user_limit"], santarita["connections_limit"], santarita["db_connections"], santarita["backup_retention_days"]) == (10, 5, 10, 30)
    assert (santarita["db_name"], santarita["db_user"], santarita["db_port"]) == ("tenant_santarita", "tenant_santarita_app", 5432)
    assert santarita["hostnames"] == ["api-santarita.fleet.localhost", "app-santarita.fleet.localhost", "precos.santarita.mg.gov.br"]
    assert santarita["custom_domains"] == ["precos.santarita.mg.gov.br"]
    with postgres_cluster.connect(DATABASE) as connection:  # how an app routes a request by its Host
        routed = connection.execute("SELECT name FROM tenants WHERE active AND status = 'active' AND %s = ANY(hostnames)", ["compras.pirapora.mg.gov.br"]).fetchall()
    assert routed == [("pirapora",)]

    # no change: the engine is told so, nothing is written
    same = row_props(location, workspace, "gurupi")
    assert provider.diff("tenants/gurupi", outs["gurupi"], same).changes is False

    # plan change: an in-place update of the limits
    workspace.edit("gurupi", plan="enterprise")
    news = row_props(location, workspace, "gurupi")
    diff = provider.diff("tenants/gurupi", outs["gurupi"], news)
    assert diff.changes is True and diff.replaces == []
    outs["gurupi"] = outs_of(provider.update("tenants/gurupi", outs["gurupi"], news))
    gurupi = rows(postgres_cluster)["gurupi"]
    assert (gurupi["plan"], gurupi["user_limit"], gurupi["db_connections"], gurupi["backup_retention_days"]) == ("enterprise", 50, 40, 90)
    assert gurupi["updated_at"] > gurupi["created_at"]

    # suspend
    workspace.edit("santarita", status="suspended")
    news = row_props(location, workspace, "santarita")
    assert provider.diff("tenants/santarita", outs["santarita"], news).replaces == []
    outs["santarita"] = outs_of(provider.update("tenants/santarita", outs["santarita"], news))
    assert (rows(postgres_cluster)["santarita"]["status"], rows(postgres_cluster)["santarita"]["active"]) == ("suspended", True)

    # remove: the row stays, marked inactive, so apps answer "gone" instead of routing elsewhere
    provider.delete("tenants/pirapora", outs["pirapora"])
    pirapora = rows(postgres_cluster)["pirapora"]
    assert pirapora["active"] is False and pirapora["removed_at"] is not None and pirapora["plan"] == "enterprise"
    assert set(rows(postgres_cluster)) == {"gurupi", "pirapora", "santarita"}
    provider.delete("tenants/pirapora", outs["pirapora"])  # twice is fine

    # refresh sees the inactive row, so a re-added tenant (same URN) is re-activated by the next up
    read = provider.read("tenants/pirapora", outs["pirapora"])
    assert outs_of(read)["active"] is False
    assert provider.diff("tenants/pirapora", outs_of(read), row_props(location, workspace, "pirapora")).changes is True
    provider.create(row_props(location, workspace, "pirapora"))
    pirapora = rows(postgres_cluster)["pirapora"]
    assert pirapora["active"] is True and pirapora["removed_at"] is None


def test_a_row_never_holds_a_password(postgres_cluster, location, workspace):
    TenantRegistryTableProvider().create(location)
    created = TenantRegistryRowProvider().create(row_props(location, workspace, "novaroma"))
    with postgres_cluster.connect(DATABASE) as connection:
        text = connection.execute("SELECT t::text FROM tenants t").fetchone()[0]
    assert postgres_cluster.admin_password not in text and "password" not in text.lower()
    assert set(outs_of(created)) - {"admin_password"} >= {"db_user", "db_name"}  # names only; the admin password is a secret output


def test_moving_the_registry_replaces_rows_delete_first(postgres_cluster, location, workspace):
    provider = TenantRegistryRowProvider()
    olds = {**row_props(location, workspace, "gurupi"), "active": True}
    value: str | int | list[str]
    for field, value in (("database", "other_registry"), ("table", "tenants_v2"), ("host", "localhost"), ("port", 6543)):
        diff = provider.diff("tenants/gurupi", olds, {**olds, field: value})
        assert diff.replaces == [field] and diff.delete_before_replace is True
    for field in ("admin_password", "sslmode", "display_name", "hostnames"):
        value = ["x.example.org"] if field == "hostnames" else "changed"
        diff = provider.diff("tenants/gurupi", olds, {**olds, field: value})
        assert diff.changes is True and diff.replaces == [], field


def test_a_row_deleted_by_hand_is_dropped_by_refresh(postgres_cluster, location, workspace):
    TenantRegistryTableProvider().create(location)
    provider = TenantRegistryRowProvider()
    created = provider.create(row_props(location, workspace, "gurupi"))
    with postgres_cluster.connect(DATABASE) as connection:
        connection.execute("DELETE FROM tenants WHERE name = 'gurupi'")
    assert provider.read(created.id, outs_of(created)).id == ""


def test_failures_name_the_resource_the_tenant_and_the_registry(postgres_cluster, location, workspace):
    TenantRegistryTableProvider().create(location)
    props = {**row_props(location, workspace, "gurupi"), "admin_password": "wrong"}
    with pytest.raises(ProviderError) as failure:
        TenantRegistryRowProvider().create(props)
    message = str(failure.value)
    assert message.startswith(f"TenantRegistryRow registry-row-gurupi 'gurupi' (registry 127.0.0.1:{location['port']}/{DATABASE}): create failed: ")
    assert "password authentication failed" in message and "'wrong'" not in message
    check = TenantRegistryRowProvider().check({}, {**props, "status": "paused", "hostnames": []})
    assert {failure.property for failure in check.failures} == {"status", "hostnames"}


def test_a_tenants_limits_are_a_jsonb_column_apps_can_query(postgres_cluster, location, workspace):
    import yaml

    plans_file = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(plans_file.read_text())
    plans["plans"]["pro"]["limits"] = {"users": {"value": 10, "max": 50, "env": "USER_LIMIT"}, "properties": {"value": "unlimited"}, "reports": {"value": False, "max": True}}
    plans_file.write_text(yaml.safe_dump(plans, sort_keys=False))
    workspace.edit("gurupi", limits={"users": 20, "reports": True})
    TenantRegistryTableProvider().create(location)
    provider = TenantRegistryRowProvider()
    created = provider.create(row_props(location, workspace, "gurupi"))
    assert rows(postgres_cluster)["gurupi"]["limits"] == {"users": 20, "properties": "unlimited", "reports": True}
    with postgres_cluster.connect(DATABASE) as connection:
        assert connection.execute("SELECT (limits->>'users')::int FROM tenants WHERE name = 'gurupi'").fetchone()[0] == 20
    # The engine sends counts as doubles: no change seen, no update made.
    as_sent = {**row_props(location, workspace, "gurupi"), "limits": {"users": 20.0, "properties": "unlimited", "reports": True}}
    assert not provider.diff(created.id, outs_of(created), as_sent).changes
    workspace.edit("gurupi", limits={"users": 30})
    assert provider.diff(created.id, outs_of(created), row_props(location, workspace, "gurupi")).changes


def test_contact_subscription_and_region_reach_the_row(postgres_cluster, location, workspace):
    import datetime

    workspace.edit(
        "gurupi",
        contact={"name": "Ana Souza", "email": "ti@gurupi.to.gov.br", "phone": "+55 63 3315-0000"},
        subscription={"status": "past_due", "expires": "2027-03-31"},
        region="TO",
        app_version="2.4.1",
    )
    TenantRegistryTableProvider().create(location)
    provider = TenantRegistryRowProvider()
    created = provider.create(row_props(location, workspace, "gurupi"))
    row = rows(postgres_cluster)["gurupi"]
    assert (row["contact_name"], row["contact_email"], row["contact_phone"]) == ("Ana Souza", "ti@gurupi.to.gov.br", "+55 63 3315-0000")
    assert (row["subscription_status"], row["subscription_expires"], row["region"]) == ("past_due", datetime.date(2027, 3, 31), "TO")
    assert (row["app_version"], row["modules"]) == ("2.4.1", [])
    assert not provider.diff(created.id, outs_of(created), row_props(location, workspace, "gurupi")).changes
    # A row read back (the date as a date) compares equal to the spec's text.
    refreshed = provider.read(created.id, outs_of(created))
    assert not provider.diff(created.id, outs_of(refreshed), row_props(location, workspace, "gurupi")).changes
    workspace.edit("gurupi", contact={"email": "not-an-email"}, subscription={"status": "frozen"})
    with pytest.raises(Exception, match="not an email address"):
        fleet_of(workspace)


def test_only_the_credentials_reader_can_read_the_password_column(postgres_cluster, location, workspace):
    import psycopg

    with postgres_cluster.connect() as admin:
        for role in ("router_app", "shared_app"):
            admin.execute(f"DROP ROLE IF EXISTS {role}")
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{role}-pw'")
    try:
        access = {**location, "readers": ["router_app"], "credentials_reader": "shared_app"}
        TenantRegistryTableProvider().create(access)
        provider = TenantRegistryRowProvider()
        provider.create({**row_props(location, workspace, "gurupi"), "db_password": "gurupi-db-password"})

        def as_role(role: str, query: str):
            with psycopg.connect(postgres_cluster.dsn(DATABASE, role, f"{role}-pw"), autocommit=True) as connection:
                return connection.execute(query).fetchall()

        assert as_role("shared_app", "SELECT db_password FROM tenants WHERE name = 'gurupi'") == [("gurupi-db-password",)]
        assert as_role("router_app", "SELECT name, hostnames FROM tenants WHERE 'api-gurupi.fleet.localhost' = ANY(hostnames)")[0][0] == "gurupi"
        for query in ("SELECT db_password FROM tenants", "SELECT * FROM tenants"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table tenants"):
                as_role("router_app", query)
        # A table-level grant made by hand (which would show the password) is taken back by the next up.
        with postgres_cluster.connect(DATABASE) as admin:
            admin.execute("GRANT SELECT ON tenants TO router_app")
        assert as_role("router_app", "SELECT db_password FROM tenants") == [("gurupi-db-password",)]
        TenantRegistryTableProvider().update("id", access, access)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role("router_app", "SELECT db_password FROM tenants")
        # A reader that doesn't exist is named.
        with pytest.raises(Exception, match="reader role\\(s\\) nobody_here do not exist"):
            TenantRegistryTableProvider().update("id", access, {**access, "readers": ["router_app", "nobody_here"]})
    finally:
        with postgres_cluster.connect() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            for role in ("router_app", "shared_app"):
                admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_apps_report_usage_which_the_pr_summary_reads(postgres_cluster, location, workspace):
    from types import SimpleNamespace

    import psycopg

    from fleet.ops.usage import registry_usage
    from fleet.postgres.access import ServerAccess

    with postgres_cluster.connect() as admin:
        admin.execute("DROP ROLE IF EXISTS router_app")
        admin.execute("CREATE ROLE router_app LOGIN PASSWORD 'router_app-pw'")
    try:
        access = {**location, "readers": ["router_app"]}
        TenantRegistryTableProvider().create(access)
        TenantRegistryRowProvider().create(row_props(location, workspace, "gurupi"))
        with psycopg.connect(postgres_cluster.dsn(DATABASE, "router_app", "router_app-pw"), autocommit=True) as app:
            app.execute("""UPDATE tenants SET usage = '{"user_limit": 8}', usage_at = '2026-11-30 01:00+00' WHERE name = 'gurupi'""")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("UPDATE tenants SET plan = 'enterprise' WHERE name = 'gurupi'")
        inventory = SimpleNamespace(
            environment=SimpleNamespace(registry=SimpleNamespace(server="shared-1", database=DATABASE, table="tenants")),
            admin_access=lambda key: ServerAccess(postgres_cluster.host, postgres_cluster.port, postgres_cluster.admin_user, postgres_cluster.admin_password, "disable"),
        )
        usage, source = registry_usage(inventory)
        assert usage == {"gurupi": {"user_limit": 8.0}} and source == "registry, reported 2026-11-30 01:00 UTC"
    finally:
        with postgres_cluster.connect() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            admin.execute("DROP ROLE IF EXISTS router_app")


def test_a_row_carries_what_the_tenants_jobs_did_last(postgres_cluster, location, workspace):
    TenantRegistryTableProvider().create(location)
    provider = TenantRegistryRowProvider()
    jobs = {"migrations": {"applied": {"app": ["0001_customers"], "price_basket": []}, "at": "2026-11-30T01:00:00Z"}}
    created = provider.create({**row_props(location, workspace, "gurupi"), "jobs": jobs})
    assert rows(postgres_cluster)["gurupi"]["jobs"] == jobs
    assert not provider.diff(created.id, outs_of(created), {**row_props(location, workspace, "gurupi"), "jobs": jobs}).changes
    plain = provider.create(row_props(location, workspace, "santarita"))  # no jobs: an empty object, not null
    assert rows(postgres_cluster)["santarita"]["jobs"] == {} and outs_of(plain)["jobs"] == {}
