"""Example 000 from an empty server: the app's migrations, the price-basket module and the first admin, in one `up`.

The official resources (roles, database, grants) can't run here, so the test creates them as they would on an
empty server; then the real engine runs the example's own jobs, wired as components/database.py wires them from
the example's plan and tenant file. Where the official plugins are installed, `fleet up` of the example does it
all in one run.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.database import server_access
from components.providers.first_admin import TenantFirstAdmin, TenantFirstAdminArgs, sql_digest
from components.providers.migrations import TenantMigrations, TenantMigrationsArgs
from fleet.bench.servers import PostgresCluster
from fleet.engine import driver as engine
from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.model.migration_sources import digest
from fleet.model.spec import Environment
from fleet.offline.plan import stack_config
from fleet.paths import PROJECT_ROOT
from tests.support.fixtures import require_engine, running
from tests.support.queries import one_row
from tests.support.tenant_db import cluster_access, provision_tenant_database

EXAMPLE = PROJECT_ROOT / "examples" / "000-price-basket"
TENANT = "gurupi"
PASSWORD = "one-time-password-for-gurupi-0000"


def test_an_empty_server_gets_the_module_tables_and_a_first_admin_in_one_up(tmp_path):
    require_engine()
    fleet = load_fleet(EXAMPLE / "tenants", stack_config("prod", EXAMPLE))
    tenant = fleet.tenant(TENANT)
    plan = fleet.plan_of(tenant)
    sources = derive.migration_sources(tenant, plan, EXAMPLE)
    assert list(sources) == ["app", "price_basket"] and plan.first_admin
    with running(PostgresCluster("e2e-seed-superuser")) as (cluster,):
        database, role, owner = derive.database_name(tenant), derive.role_name(tenant), derive.owner_role_name(tenant)
        provision_tenant_database(cluster_access(cluster), database, role, "app-password-0000000000")
        server_key = tenant.database.server

        def program() -> None:
            server = {"host": cluster.host, "port": cluster.port, "admin_user": cluster.admin_user, "max_connections": 100, "sslmode": "disable"}
            environment = Environment.model_validate(
                {"base_domain": "fleet.localhost", "servers": {server_key: server}, "docker_host": {"memory_mb": 1024, "cpus": 1},
                 "images": {"backend": "example/backend:1", "frontend": "example/frontend:1"}, "layers": ["database"]}
            )
            servers = server_access(environment, pulumi.Config("fleet").require_secret_object("server_passwords"))
            target: dict[str, Any] = {"tenant": TENANT, "database": database, "owner": owner, "role": role, "server": server_key, "servers": servers}
            job = TenantMigrations(
                derive.names(tenant).migrations,
                TenantMigrationsArgs(**target, sources=[{"name": n, "folder": str(f), "digest": digest(f)} for n, f in sources.items()]),
            )
            sql_file = EXAMPLE / str(plan.first_admin)
            TenantFirstAdmin(
                derive.names(tenant).first_admin,
                TenantFirstAdminArgs(**target, sql_file=str(sql_file), digest=sql_digest(sql_file), email=str(derive.admin_email(tenant)), password=PASSWORD),
                opts=pulumi.ResourceOptions(depends_on=[job]),
            )

        stack = engine.stack_for("e2e-seed", program, backend_dir=tmp_path / "state", secrets={"fleet:server_passwords": {server_key: cluster.admin_password}})
        summary = engine.run("up", stack, on_output=None)
        assert summary["changes"] == {"create": 3}
        with cluster.connect(database) as admin:
            tables = dict(admin.execute("select tablename, tableowner from pg_tables where schemaname = 'public'").fetchall())
            assert {name: tables[name] for name in ("users", "cp_orcamentos", "cp_fornecedores", "cp_orcamento_itens")} == dict.fromkeys(
                ("users", "cp_orcamentos", "cp_fornecedores", "cp_orcamento_itens"), owner
            )
            indexes = {name for (name,) in admin.execute("select indexname from pg_indexes where indexname like 'idx_cp_%'")}
            assert len(indexes) == 7
            (email, role_name, matches) = admin.execute("select email, role, password = crypt(%s, password) from users", [PASSWORD]).fetchone()
            assert (email, role_name, matches) == ("admin@gurupi.example.gov.br", "admin", True)
            assert admin.execute("select left(password, 4) from users").fetchone()[0] == "$2a$"  # bcrypt, as Laravel reads it
        assert set(engine.run("preview", stack, on_output=None)["changes"]) == {"same"}
        # What `fleet status` shows in its jobs column, read from the record in the tenant's database.
        from fleet.ops.status import migrations_record

        record = migrations_record(cluster_access(cluster), database)
        assert record.startswith("3 applied, last ") and record.endswith(" UTC")  # users; the module's tables and indexes
        provision_tenant_database(cluster_access(cluster), "tenant_fresh", "tenant_fresh_app", "fresh-password-000000000")
        assert migrations_record(cluster_access(cluster), "tenant_fresh") == "none recorded"


def test_a_role_that_assumes_the_owner_at_login_creates_what_the_owner_owns():
    """What the jobs' role (postgresql.Role assume_role=<owner>, a member of it) does for an ORM's migrations."""
    import psycopg

    with running(PostgresCluster("e2e-jobs-role-superuser")) as (cluster,):
        access = cluster_access(cluster)
        provision_tenant_database(access, "tenant_orm", "tenant_orm_app", "app-password-000000000000")
        with access.connect() as admin:  # as the official Role resource does it
            admin.execute("create role tenant_orm_job login password 'jobs-password-0000000000' connection limit 2 in role tenant_orm_dbo")
            admin.execute("alter role tenant_orm_job set role = 'tenant_orm_dbo'")
        with psycopg.connect(cluster.dsn("tenant_orm", "tenant_orm_job", "jobs-password-0000000000"), autocommit=True) as job:
            assert one_row(job.execute("select current_user"))[0] == "tenant_orm_dbo"
            job.execute("create table orders (id bigserial primary key, total numeric)")  # what `prisma migrate deploy` would do
        with psycopg.connect(cluster.dsn("tenant_orm", "tenant_orm_app", "app-password-000000000000"), autocommit=True) as app:
            app.execute("insert into orders (total) values (10)")  # the app gets it through the default privileges
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("drop table orders")
        with access.connect("tenant_orm") as admin:
            assert admin.execute("select tableowner from pg_tables where tablename = 'orders'").fetchone()[0] == "tenant_orm_dbo"
