"""A tenant's role against its own database and the server, before and after the owner/app split, on a live server.

Two tenants are set up as tenant-fleet created them before the split (the login role owns the database and
everything in it), with data. The attacks a compromised app would try are run as its role first: as the
owner it can lift its connection limit, let a neighbour in, or drop its own database. Then the real engine
runs an inline program with each tenant's OwnerHandover wired as components/database.py wires it (the
official Role resource that creates the owner role can't run here, so the test creates that role as it
would). Afterwards: every row (count and checksum) and every password is as it was, a second preview
shows no changes, the app still reads and writes everything, and each attack is refused.

The server's shared databases: a tenant's role reaches `postgres` and `template1` (and makes TEMP tables
there) until the platform's ServerLockdown is applied (as its official Grants would), and not after.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pulumi
import pytest
from psycopg import sql

from components.database import server_access
from components.providers.handover import OwnerHandover, OwnerHandoverArgs
from fleet.bench.servers import PostgresCluster
from fleet.engine import driver as engine
from fleet.model.spec import Environment
from fleet.postgres import catalog
from fleet.postgres.privileges import lock_shared_databases
from tests.integration.test_move import load_sample
from tests.support.fixtures import require_engine, running
from tests.support.queries import one_row
from tests.support.tenant_db import cluster_access, owner_of, provision_tenant_database

STACK = "e2e-privileges"
TENANTS = ("alpha", "beta")
SERVER = "shared-1"


def names(tenant: str) -> tuple[str, str, str]:
    """(database, login role, owner role) as fleet.model.derive names them."""
    return f"tenant_{tenant}", f"tenant_{tenant}_app", owner_of(f"tenant_{tenant}_app")


def password(tenant: str) -> str:
    return f"{tenant}-app-password-never-changes"


class PrivilegesStack:
    """The inline program (one OwnerHandover per tenant) and its stack on a file backend."""

    def __init__(self, cluster: PostgresCluster, backend: Path) -> None:
        self.cluster = cluster
        self.backend = backend

    def environment(self) -> Environment:
        server = {"host": self.cluster.host, "port": self.cluster.port, "admin_user": self.cluster.admin_user, "max_connections": 100, "sslmode": "disable"}
        return Environment.model_validate(
            {
                "base_domain": "fleet.localhost",
                "servers": {SERVER: server},
                "docker_host": {"memory_mb": 1024, "cpus": 1},
                "images": {"backend": "example/backend:1", "frontend": "example/frontend:1"},
                "layers": ["database"],
            }
        )

    def program(self) -> None:
        servers = server_access(self.environment(), pulumi.Config("fleet").require_secret_object("server_passwords"))
        for tenant in TENANTS:
            database, role, owner = names(tenant)
            handover = OwnerHandover(
                f"{tenant}-db-{SERVER}-handover",
                OwnerHandoverArgs(tenant=tenant, database=database, owner=owner, role=role, server=SERVER, servers=servers),
            )
            pulumi.export(f"{tenant}_reassigned", handover.reassigned)

    def run(self, op: str) -> dict:
        secrets = {"fleet:server_passwords": {SERVER: self.cluster.admin_password}}
        return engine.run(op, engine.stack_for(STACK, self.program, backend_dir=self.backend, secrets=secrets), on_output=None)


def connect_as_app(cluster: PostgresCluster, tenant: str, database: str | None = None) -> psycopg.Connection:
    own_database, role, _ = names(tenant)
    return psycopg.connect(cluster.dsn(database or own_database, role, password(tenant), connect_timeout=3), autocommit=True)


def refused(connection: psycopg.Connection, statement: str) -> str:
    """Run `statement` as the connected role; return the server's refusal (fails the test if it was allowed)."""
    try:
        connection.execute(statement)
    except psycopg.errors.InsufficientPrivilege as error:
        return str(error).splitlines()[0]
    pytest.fail(f"allowed: {statement}")


def can_connect(cluster: PostgresCluster, tenant: str, database: str) -> bool:
    try:
        with connect_as_app(cluster, tenant, database):
            return True
    except psycopg.OperationalError:
        return False


def passwords_stored(cluster: PostgresCluster) -> dict[str, str]:
    with cluster.connect() as admin:
        return dict(admin.execute("select rolname, rolpassword from pg_authid where rolname like 'tenant\\_%%\\_app'").fetchall())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_engine()
    with running(PostgresCluster("e2e-privileges-superuser")) as (cluster,):
        access = cluster_access(cluster)
        for tenant in TENANTS:
            database, role, _ = names(tenant)
            provision_tenant_database(access, database, role, password(tenant), connection_limit=5, legacy=True)
            with connect_as_app(cluster, tenant) as app:
                load_sample(app, rows=1500)
                app.execute("select lo_from_bytea(0, 'a large object the app wrote')")
        yield cluster, PrivilegesStack(cluster, tmp_path_factory.mktemp("state"))


def test_before_the_split_the_app_owns_its_database_and_can_hurt_it(server):
    cluster, _ = server
    with connect_as_app(cluster, "alpha") as app:
        # Past its plan's limit, and a neighbour let in: both work while the login role owns the database.
        app.execute("alter database tenant_alpha connection limit -1")
        app.execute("grant connect on database tenant_alpha to tenant_beta_app")
        assert can_connect(cluster, "beta", "tenant_alpha")
        app.execute("revoke connect on database tenant_alpha from tenant_beta_app")
        app.execute("alter database tenant_alpha connection limit 5")
        assert {owner for (owner,) in app.execute("select distinct relowner::regrole::text from pg_class where relnamespace = 'public'::regnamespace")} == {"tenant_alpha_app"}
    # Any database it owns, it can drop: a throwaway one shows it (the live one is not for a demonstration).
    with cluster.connect() as admin:
        admin.execute("create database tenant_alpha_scratch owner tenant_alpha_app")
    with connect_as_app(cluster, "alpha") as app:
        app.execute("drop database tenant_alpha_scratch")
    assert not catalog.database_exists(cluster_access(cluster), "tenant_alpha_scratch")


def test_the_handover_under_the_engine_keeps_every_row_and_password(server):
    cluster, stack = server
    access = cluster_access(cluster)
    counts = {tenant: catalog.table_counts(access, names(tenant)[0]) for tenant in TENANTS}
    checksums = {tenant: catalog.table_checksums(access, names(tenant)[0]) for tenant in TENANTS}
    stored = passwords_stored(cluster)
    assert set(stored) == {"tenant_alpha_app", "tenant_beta_app"}
    with cluster.connect() as admin:  # what the official Role resource creates before the handover
        for tenant in TENANTS:
            admin.execute(sql.SQL("create role {} nologin connection limit 0").format(sql.Identifier(names(tenant)[2])))

    summary = stack.run("up")
    assert summary["changes"] == {"create": 3}  # the stack and two handovers
    assert summary["outputs"]["alpha_reassigned"] > 10 and summary["outputs"]["beta_reassigned"] > 10
    assert set(stack.run("preview")["changes"]) == {"same"}

    for tenant in TENANTS:
        database, role, owner = names(tenant)
        assert catalog.table_counts(access, database) == counts[tenant]
        assert catalog.table_checksums(access, database) == checksums[tenant]
        with cluster.connect(database) as admin:
            assert admin.execute("select pg_get_userbyid(datdba) from pg_database where datname = current_database()").fetchone()[0] == owner
            owners = admin.execute(
                """
                select distinct pg_get_userbyid(o) from (
                    select relowner from pg_class where relnamespace = 'public'::regnamespace
                    union all select proowner from pg_proc where pronamespace = 'public'::regnamespace
                    union all select typowner from pg_type where typnamespace = 'public'::regnamespace
                    union all select lomowner from pg_largeobject_metadata) as owned(o)
                """
            ).fetchall()
            assert owners == [(owner,)]
    assert passwords_stored(cluster) == stored  # the same hashes: nobody's password changed


def test_after_the_split_the_app_works_as_before(server):
    cluster, _ = server
    with connect_as_app(cluster, "alpha") as app:
        assert one_row(app.execute("select count(*) from orders"))[0] == 1500
        (new_id,) = one_row(app.execute("insert into events (payload) values ('after the handover') returning id"))
        app.execute("update customers set name = name || '.' where id = 1")
        app.execute("delete from settings where key = 'empty'")
        assert one_row(app.execute("select order_count(1)"))[0] > 0 and one_row(app.execute("select count(*) from big_orders"))[0] > 0
        assert one_row(app.execute("select count(*) from pg_largeobject_metadata"))[0] == 1
        (lo,) = one_row(app.execute("select oid from pg_largeobject_metadata"))
        assert one_row(app.execute("select convert_from(lo_get(%s), 'UTF8')", [lo]))[0] == "a large object the app wrote"
        app.execute("truncate events")
        # Its own new tables and TEMP tables, as apps create them at runtime.
        app.execute("create table app_cache (key text primary key, value text)")
        app.execute("insert into app_cache values ('a', 'b')")
        app.execute("create temp table scratch (x int)")
        assert new_id > 0


def test_after_the_split_every_attack_on_its_own_database_is_refused(server):
    cluster, _ = server
    with connect_as_app(cluster, "alpha") as app:
        assert "must be owner of database" in refused(app, "alter database tenant_alpha connection limit -1")
        assert "must be owner of database" in refused(app, "alter database tenant_alpha rename to tenant_alpha_gone")
        assert "permission denied to set role" in refused(app, "set role tenant_alpha_dbo")
        assert "permission denied" in refused(app, "alter role tenant_alpha_app connection limit -1")
        assert "must be owner of table orders" in refused(app, "drop table orders")
        assert "must be owner of table orders" in refused(app, "alter table orders add column stolen text")
        assert "permission denied for table orders" in refused(app, "create trigger t before insert on orders for each row execute function order_count()")
        assert "permission denied for database tenant_alpha" in refused(app, "create schema shadow")
        # GRANT without the grant option is a warning that grants nothing: the neighbour stays out.
        app.execute("grant connect on database tenant_alpha to tenant_beta_app")
        app.execute("grant select on orders to tenant_beta_app")
    assert not can_connect(cluster, "beta", "tenant_alpha")
    with cluster.connect("tenant_alpha") as admin:
        assert admin.execute("select has_table_privilege('tenant_beta_app', 'orders', 'SELECT')").fetchone()[0] is False
        assert admin.execute("select datconnlimit from pg_database where datname = 'tenant_alpha'").fetchone()[0] == 5
    # DROP DATABASE can't run in a transaction; autocommit lets it reach the ownership check. It is tried
    # from a neighbour's database (a database can't be dropped while connected to it), so alpha's own
    # CONNECT to beta's database is granted for the attempt.
    with cluster.connect() as admin:
        admin.execute("grant connect on database tenant_beta to tenant_alpha_app")
    try:
        with connect_as_app(cluster, "alpha", "tenant_beta") as app:
            assert "must be owner of database tenant_alpha" in refused(app, "drop database tenant_alpha")
            assert "must be owner of database tenant_beta" in refused(app, "drop database tenant_beta")
    finally:
        with cluster.connect() as admin:
            admin.execute("revoke connect on database tenant_beta from tenant_alpha_app")
    assert catalog.database_exists(cluster_access(cluster), "tenant_alpha") and catalog.database_exists(cluster_access(cluster), "tenant_beta")


def test_the_shared_databases_are_closed_to_tenants_once_the_server_is_locked_down(server):
    cluster, _ = server
    # Before: any tenant's role reaches postgres (and makes TEMP tables there) and template1 (initdb already
    # took PUBLIC's TEMPORARY there).
    with connect_as_app(cluster, "alpha", "postgres") as app:
        app.execute("create temp table probe (x int)")
    with connect_as_app(cluster, "alpha", "template1") as app:
        assert "permission denied to create temporary tables" in refused(app, "create temp table probe (x int)")
    assert lock_shared_databases(cluster_access(cluster)) == ["postgres", "template1"]  # what ServerLockdown's grants do
    for database in ("postgres", "template1"):
        with pytest.raises(psycopg.OperationalError, match=f'permission denied for database "{database}"'):
            connect_as_app(cluster, "alpha", database)
    # What PostgreSQL shows every role regardless (docs/isolation.md): the names of databases and roles.
    with connect_as_app(cluster, "alpha") as app:
        assert "tenant_beta" in {name for (name,) in app.execute("select datname from pg_database")}
        assert "tenant_beta_app" in {name for (name,) in app.execute("select rolname from pg_roles")}
    # The admin still connects, and so do the tenants to their own databases.
    with cluster.connect("template1") as admin:
        admin.execute("select 1")
    assert can_connect(cluster, "beta", "tenant_beta")
