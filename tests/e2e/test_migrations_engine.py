"""Tenants' SQL migrations and modules as `pulumi up`s of the real engine against a real PostgreSQL.

The inline program declares each tenant's TenantMigrations as components/database.py does (the official
resources that create the roles and database can't run here; the test creates them as they would):

1. `up`: alpha (app migrations + module price_basket) and beta (app migrations) get their tables, owned by
   their owner role; the app role uses them but can't touch the record of what was applied; a preview is `same`;
2. a new app migration applies on the next `up` to both tenants, and only it;
3. a broken migration of a module only beta has stops beta's `up`, naming beta, the module, the file and the
   server's error; alpha's new migration is applied, beta's database is as the previous file left it;
4. the module removed from alpha's list: nothing is dropped.
"""

from __future__ import annotations

import psycopg
import pulumi
import pytest

from components.database import server_access
from components.providers.migrations import TenantMigrations, TenantMigrationsArgs
from fleet.bench.servers import PostgresCluster
from fleet.engine import driver as engine
from fleet.errors import FleetError
from fleet.model.migration_sources import digest
from fleet.model.spec import Environment
from fleet.postgres import catalog
from tests.support.fixtures import require_engine, running
from tests.support.tenant_db import cluster_access, provision_tenant_database

STACK = "e2e-migrations"
SERVER = "shared-1"


class MigrationsStack:
    def __init__(self, cluster: PostgresCluster, root, backend) -> None:
        self.cluster, self.root, self.backend = cluster, root, backend
        self.modules = {"alpha": ["price_basket"], "beta": ["reports"]}
        self.jobs: dict = {}

    def folder(self, name: str):
        return self.root / name

    def write(self, source: str, file: str, text: str) -> None:
        self.folder(source).mkdir(parents=True, exist_ok=True)
        (self.folder(source) / file).write_text(text)

    def program(self) -> None:
        server = {"host": self.cluster.host, "port": self.cluster.port, "admin_user": self.cluster.admin_user, "max_connections": 100, "sslmode": "disable"}
        environment = Environment.model_validate(
            {"base_domain": "fleet.localhost", "servers": {SERVER: server}, "docker_host": {"memory_mb": 1024, "cpus": 1},
             "images": {"backend": "example/backend:1", "frontend": "example/frontend:1"}, "layers": ["database"]}
        )
        servers = server_access(environment, pulumi.Config("fleet").require_secret_object("server_passwords"))
        for tenant, modules in sorted(self.modules.items()):
            sources = [{"name": name, "folder": str(self.folder(name)), "digest": digest(self.folder(name))} for name in ["app", *modules]]
            job = TenantMigrations(
                f"{tenant}-migrations",
                TenantMigrationsArgs(tenant=tenant, database=f"tenant_{tenant}", owner=f"tenant_{tenant}_dbo", role=f"tenant_{tenant}_app",
                                     server=SERVER, servers=servers, sources=sources),
            )
            pulumi.export(f"{tenant}_last_applied", job.last_applied)
            self.jobs[tenant] = job

    def run(self, op: str) -> dict:
        secrets = {"fleet:server_passwords": {SERVER: self.cluster.admin_password}}
        return engine.run(op, engine.stack_for(STACK, self.program, backend_dir=self.backend, secrets=secrets), on_output=None)

    def tables(self, tenant: str) -> dict[str, str]:
        with self.cluster.connect(f"tenant_{tenant}") as admin:
            return dict(admin.execute("select tablename, tableowner from pg_tables where schemaname = 'public'").fetchall())


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_engine()
    with running(PostgresCluster("e2e-migrations-superuser")) as (cluster,):
        for tenant in ("alpha", "beta"):
            provision_tenant_database(cluster_access(cluster), f"tenant_{tenant}", f"tenant_{tenant}_app", f"pw-{tenant}-000000000000")
        result = MigrationsStack(cluster, tmp_path_factory.mktemp("repo"), tmp_path_factory.mktemp("state"))
        result.write("app", "0001_customers.sql", "create table customers (id bigserial primary key, name text not null);")
        result.write("price_basket", "0001_cp_baskets.sql", "create table cp_baskets (id bigserial primary key, title text);")
        result.write("price_basket", "0002_cp_items.sql", "create table cp_items (basket bigint references cp_baskets, price numeric(12,2));")
        result.write("reports", "0001_report_runs.sql", "create table report_runs (id bigserial primary key);")
        yield result


def test_up_creates_the_app_and_module_tables_as_the_owner_and_a_preview_is_then_same(stack):
    summary = stack.run("up")
    assert summary["changes"] == {"create": 3}
    assert summary["outputs"]["alpha_last_applied"] == {"app": ["0001_customers"], "price_basket": ["0001_cp_baskets", "0002_cp_items"]}
    alpha = stack.tables("alpha")
    assert {name: alpha[name] for name in ("customers", "cp_baskets", "cp_items")} == dict.fromkeys(("customers", "cp_baskets", "cp_items"), "tenant_alpha_dbo")
    assert "cp_baskets" not in stack.tables("beta") and stack.tables("beta")["report_runs"] == "tenant_beta_dbo"
    with psycopg.connect(stack.cluster.dsn("tenant_alpha", "tenant_alpha_app", "pw-alpha-000000000000"), autocommit=True) as app:
        app.execute("insert into cp_baskets (title) values ('cesta 1')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("delete from _fleet_migrations")  # the app can't make a migration run again
    assert set(stack.run("preview")["changes"]) == {"same"}


def test_a_new_migration_applies_to_every_tenant_on_the_next_up_and_only_it(stack):
    stack.write("app", "0002_customers_email.sql", "alter table customers add column email text;")
    summary = stack.run("up")
    assert summary["changes"].get("update") == 2
    assert summary["outputs"]["alpha_last_applied"] == {"app": ["0002_customers_email"], "price_basket": []}
    for tenant in ("alpha", "beta"):
        with stack.cluster.connect(f"tenant_{tenant}") as admin:
            assert admin.execute("select count(*) from information_schema.columns where table_name = 'customers' and column_name = 'email'").fetchone()[0] == 1


def test_a_broken_migration_stops_that_tenant_names_it_and_leaves_the_others(stack):
    stack.write("app", "0003_customers_phone.sql", "alter table customers add column phone text;")
    stack.write("reports", "0002_broken.sql", "create table report_rows (id bigserial primary key);\nalter table no_such_table add column x int;")
    with pytest.raises(FleetError) as failure:
        stack.run("up")
    message = str(failure.value)
    assert "tenant beta" in message and "reports: 0002_broken.sql failed" in message and 'relation "no_such_table" does not exist' in message
    with stack.cluster.connect("tenant_alpha") as admin:  # alpha went on
        assert admin.execute("select count(*) from information_schema.columns where table_name = 'customers' and column_name = 'phone'").fetchone()[0] == 1
    beta = stack.tables("beta")
    assert "report_rows" not in beta  # the broken file's own transaction was rolled back
    with stack.cluster.connect("tenant_beta") as admin:  # the app's migration before it stands
        assert admin.execute("select count(*) from information_schema.columns where table_name = 'customers' and column_name = 'phone'").fetchone()[0] == 1
    # Fixed, the next up finishes beta's.
    stack.write("reports", "0002_broken.sql", "create table report_rows (id bigserial primary key);")
    stack.run("up")
    assert "report_rows" in stack.tables("beta")


def test_removing_a_module_drops_nothing(stack):
    stack.modules["alpha"] = []
    stack.run("up")
    assert {"cp_baskets", "cp_items"} <= set(stack.tables("alpha"))
    assert catalog.table_counts(cluster_access(stack.cluster), "tenant_alpha")["public.cp_baskets"] == 1


class AdminStack(MigrationsStack):
    """The same tenants, with the app's users table and the plan's first-admin SQL, the password from the stack's secret."""

    passwords = {"alpha": "first-password-for-alpha-0001"}

    def program(self) -> None:
        from components.providers.first_admin import TenantFirstAdmin, TenantFirstAdminArgs, sql_digest
        from fleet.program import ADMIN_CREDENTIALS_OUTPUT

        super().program()
        server = {"host": self.cluster.host, "port": self.cluster.port, "admin_user": self.cluster.admin_user, "max_connections": 100, "sslmode": "disable"}
        environment = Environment.model_validate(
            {"base_domain": "fleet.localhost", "servers": {SERVER: server}, "docker_host": {"memory_mb": 1024, "cpus": 1},
             "images": {"backend": "example/backend:1", "frontend": "example/frontend:1"}, "layers": ["database"]}
        )
        config = pulumi.Config("fleet")
        servers = server_access(environment, config.require_secret_object("server_passwords"))
        password = config.require_secret_object("admin_passwords").apply(lambda all_: all_["alpha"])
        sql_file = self.root / "first_admin.sql"
        TenantFirstAdmin(
            "alpha-first-admin",
            TenantFirstAdminArgs(tenant="alpha", database="tenant_alpha", owner="tenant_alpha_dbo", role="tenant_alpha_app", server=SERVER, servers=servers,
                                 sql_file=str(sql_file), digest=sql_digest(sql_file), email="ti@alpha.example.org", password=password),
            opts=pulumi.ResourceOptions(depends_on=[self.jobs["alpha"]]),  # after the migrations, as components/database.py wires it
        )
        pulumi.export(ADMIN_CREDENTIALS_OUTPUT, pulumi.Output.secret(password.apply(lambda value: {"alpha": {"email": "ti@alpha.example.org", "password": value}})))

    def run(self, op: str) -> dict:
        secrets = {"fleet:server_passwords": {SERVER: self.cluster.admin_password}, "fleet:admin_passwords": self.passwords}
        return engine.run(op, engine.stack_for(STACK + "-admin", self.program, backend_dir=self.backend, secrets=secrets), on_output=None)


def test_the_first_admin_is_created_as_the_owner_rotated_by_a_diff_and_shown_once(stack, tmp_path):
    from fleet.ops.admin import admin_credentials

    admin = AdminStack(stack.cluster, stack.root, stack.backend)
    admin.modules = dict(stack.modules)
    admin.write("app", "0004_users.sql", "create table users (email text primary key, password_hash text not null);")
    (stack.root / "first_admin.sql").write_text(
        "insert into users (email, password_hash) values (%(email)s, md5(%(password)s))\n"
        "on conflict (email) do update set password_hash = excluded.password_hash;"
    )
    admin.run("up")

    def stored() -> list[tuple]:
        with stack.cluster.connect("tenant_alpha") as connection:
            return connection.execute("select email, password_hash = md5(%s) from users", [admin.passwords["alpha"]]).fetchall()

    assert stored() == [("ti@alpha.example.org", True)]
    assert stack.tables("alpha")["users"] == "tenant_alpha_dbo"
    assert set(admin.run("preview")["changes"]) == {"same"}

    admin.passwords = {"alpha": "second-password-for-alpha-002"}  # a rotation: a new password is a diff
    assert admin.run("up")["changes"].get("update") == 1
    assert stored() == [("ti@alpha.example.org", True)]

    (tmp_path / f"Pulumi.{STACK}-admin.yaml").write_text("config: {}\n")
    shown = admin_credentials(STACK + "-admin", tmp_path, "alpha", backend_dir=stack.backend)
    assert shown == {"email": "ti@alpha.example.org", "password": "second-password-for-alpha-002"}
    with pytest.raises(FleetError, match="shown already .* add --again"):
        admin_credentials(STACK + "-admin", tmp_path, "alpha", backend_dir=stack.backend)
    assert admin_credentials(STACK + "-admin", tmp_path, "alpha", again=True, backend_dir=stack.backend)["email"] == "ti@alpha.example.org"
    with pytest.raises(FleetError, match="no first admin for beta"):
        admin_credentials(STACK + "-admin", tmp_path, "beta", backend_dir=stack.backend)
