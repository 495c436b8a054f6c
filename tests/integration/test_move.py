"""The database move against two real PostgreSQL clusters: every committed row arrives, failures lose nothing.

The DatabasePlacement provider is called the way the engine calls it (create, then update with the new
server); lower-level checks call `move_database`, the function its update runs. The clusters are started
once for the module; each test provisions its own tenant (role and database on both servers, as the
official postgresql provider would create them) under a fresh name.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

import psycopg
import pytest

from components.providers import ProviderError
from components.providers.postgres import (
    DatabasePlacementProvider,
    MoveError,
    blocked_comment,
    move_database,
    parse_blocked_comment,
    parse_moved_comment,
    reopen_interrupted,
)
from fleet.bench.servers import PostgresCluster, free_port
from fleet.paths import PROJECT_ROOT
from fleet.postgres import catalog, dumps, sessions
from fleet.postgres.access import ServerAccess
from tests.support.dynamic import outs_of
from tests.support.fixtures import running
from tests.support.queries import one_row
from tests.support.tenant_db import cluster_access, owner_of, provision_tenant_database

_NAMES = itertools.count(1)


# ---------------------------------------------------------------- helpers (also used by test_purge and the e2e test)


@dataclass
class TenantOnServers:
    """One tenant's names and password, and the servers (key -> cluster) it is provisioned on."""

    name: str
    clusters: dict[str, PostgresCluster]
    password: str = "tenant-app-password"

    @property
    def database(self) -> str:
        return f"tenant_{self.name}"

    @property
    def role(self) -> str:
        return f"tenant_{self.name}_app"

    @property
    def owner(self) -> str:
        return owner_of(self.role)

    def access(self, key: str, **changes: Any) -> ServerAccess:
        cluster = self.clusters[key]
        values: dict[str, Any] = {"host": cluster.host, "port": cluster.port, "admin_user": cluster.admin_user, "admin_password": cluster.admin_password, "sslmode": "disable"}
        values.update(changes)
        return ServerAccess(**values)

    def servers(self, **overrides: dict) -> dict[str, dict]:
        """The `servers` input of the providers (admin access per key), with per-key overrides."""
        return {key: {**self.access(key).to_mapping(), **overrides.get(key, {})} for key in self.clusters}

    def connect(self, key: str, **options: Any) -> psycopg.Connection:
        """Connect as the tenant's app role."""
        return psycopg.connect(self.clusters[key].dsn(self.database, self.role, self.password, connect_timeout=3), autocommit=True, **options)


def provision(cluster: PostgresCluster, database: str, role: str, password: str, *, connection_limit: int = 10, login: bool = True, legacy: bool = False) -> None:
    """The roles and the empty database as the official provider creates them (tests/support/tenant_db.py)."""
    provision_tenant_database(cluster_access(cluster), database, role, password, connection_limit=connection_limit, login=login, legacy=legacy)


def load_sample(connection: psycopg.Connection, rows: int = 3000) -> None:
    """Several tables (thousands of rows, varied types), a view, a function, an enum, sequences in use."""
    connection.execute(
        """
        create type mood as enum ('happy', 'sad', 'neutral');
        create table customers (id bigserial primary key, name text not null, email text unique, mood mood default 'neutral',
                                created timestamptz not null default '2024-01-01 12:00:00+00');
        create table orders (id bigserial primary key, customer_id bigint not null references customers on delete cascade,
                             total numeric(12,2) not null, tags text[], details jsonb, blob bytea, placed date not null default '2024-02-29');
        create index orders_customer on orders (customer_id);
        create table settings (key text primary key, value text);
        create table events (id bigserial primary key, at timestamptz not null default clock_timestamp(), payload text);
        create view big_orders as select * from orders where total > 100;
        create function order_count(customer bigint) returns bigint language sql stable as 'select count(*) from orders where customer_id = customer';
        """
    )
    connection.execute(
        "insert into customers (name, email, mood) select 'customer ' || g, 'c' || g || '@example.com', "
        "(array['happy','sad','neutral'])[1 + g %% 3]::mood from generate_series(1, %s) g",
        [rows // 3],
    )
    connection.execute(
        "insert into orders (customer_id, total, tags, details, blob) select 1 + g %% %s, (g %% 997) * 1.25, "
        "array['t' || (g %% 5), 'x'], jsonb_build_object('n', g, 'half', g / 2.0), decode(md5(g::text), 'hex') from generate_series(1, %s) g",
        [rows // 3, rows],
    )
    connection.execute("insert into settings values ('theme', 'dark'), ('locale', 'pt-BR'), ('quote', 'it''s \"quoted\"'), ('empty', null)")


def admin_scalar(cluster: PostgresCluster, query: str, params: Optional[list] = None, database: str = "postgres") -> Any:
    with cluster.connect(database) as admin:
        row = admin.execute(query, params or []).fetchone()
    return row[0] if row else None


def login_error(tenant: TenantOnServers, key: str) -> Optional[str]:
    """None when the tenant's role can log in to its database on `key`, else the error."""
    try:
        with tenant.connect(key) as connection:
            connection.execute("select 1")
        return None
    except psycopg.OperationalError as error:
        return str(error)


def refusal(tenant: TenantOnServers, key: str) -> str:
    """The error the tenant's role gets logging in to its database on `key`; fails the test when it logs in."""
    error = login_error(tenant, key)
    assert error is not None, f"the tenant's role can log in on {key}"
    return error


def moved_marker(access: ServerAccess, database: str) -> dict[str, str]:
    """The moved-away marker a finished move leaves on the source database; fails the test when there is none."""
    marker = parse_moved_comment(catalog.database_comment(access, database))
    assert marker is not None, f"no moved-away marker on {database}"
    return marker


class Writer(threading.Thread):
    """The tenant's app: inserts one autocommitted row at a time on one server until it is refused twice in a row."""

    def __init__(self, tenant: TenantOnServers, key: str) -> None:
        super().__init__(daemon=True)
        self.tenant, self.key = tenant, key
        self.committed: list[int] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.started_writing = threading.Event()

    def run(self) -> None:
        connection = None
        while not self.stop.is_set():
            try:
                if connection is None:
                    connection = self.tenant.connect(self.key)
                (row,) = one_row(connection.execute("insert into events (payload) values ('from the app') returning id"))
                self.committed.append(row)  # only after the server confirmed the commit
                if len(self.committed) >= 50:
                    self.started_writing.set()
            except psycopg.Error as error:
                self.errors.append(str(error).strip().splitlines()[0])
                connection = None
                if len(self.errors) >= 2 and self.committed:
                    return  # cut off: the session was ended and new ones are refused
                time.sleep(0.02)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clusters():
    """Two servers, `old` and `new`, for the module; without wal_level=logical, so every move here takes the
    dump-and-restore path (the live move has its own tests: test_live_move.py)."""
    started = {key: PostgresCluster(f"{key}-superuser-secret", logical_replication=False) for key in ("old", "new")}
    with running(*started.values()):
        yield started


def fresh_tenant(clusters: dict[str, PostgresCluster], prefix: str) -> TenantOnServers:
    """A tenant with a new name, provisioned on both servers, with sample data on `old`."""
    tenant = TenantOnServers(f"{prefix}{next(_NAMES)}", clusters)
    for cluster in clusters.values():
        provision(cluster, tenant.database, tenant.role, tenant.password)
    with tenant.connect("old") as connection:
        load_sample(connection)
    return tenant


@pytest.fixture
def tenant(clusters) -> TenantOnServers:
    """A fresh tenant provisioned on both servers, with sample data on `old`."""
    return fresh_tenant(clusters, "mv")


def placement_props(tenant: TenantOnServers, server: str, **servers_overrides: dict) -> dict[str, Any]:
    cluster = tenant.clusters[server]
    return {
        "resource_name": f"{tenant.name}-db-placement",
        "tenant": tenant.name,
        "database": tenant.database,
        "role": tenant.role,
        "owner": tenant.owner,
        "server": server,
        "host": cluster.host,
        "port": cluster.port,
        "servers": tenant.servers(**servers_overrides),
        "pg_bin": None,
    }


def created(provider: DatabasePlacementProvider, tenant: TenantOnServers) -> tuple[str, dict]:
    result = provider.create(placement_props(tenant, "old"))
    return result.id, outs_of(result)


# ---------------------------------------------------------------- the move


def test_move_copies_everything_including_every_write_committed_until_the_cut_off(tenant):
    provider = DatabasePlacementProvider()
    id_, olds = created(provider, tenant)
    assert olds["server"] == "old" and olds["moves"] == []
    writer = Writer(tenant, "old")
    writer.start()
    assert writer.started_writing.wait(10), writer.errors
    source_counts_before_move = catalog.table_counts(tenant.access("old"), tenant.database)

    news = placement_props(tenant, "new")
    assert provider.diff(id_, olds, news).changes
    outs = outs_of(provider.update(id_, olds, news))
    writer.join(10)
    assert not writer.is_alive(), "the writer was never cut off"
    assert any("not permitted to log in" in error for error in writer.errors), writer.errors  # its session was ended, new ones refused

    # Every row the app saw committed is on the target; the source, frozen since, holds exactly the same.
    with tenant.access("new").connect(tenant.database) as admin:
        on_target = {row for (row,) in admin.execute("select id from events")}
    assert set(writer.committed) <= on_target and len(writer.committed) >= 50
    source, target = tenant.access("old"), tenant.access("new")
    counts = catalog.table_counts(target, tenant.database)
    assert counts == catalog.table_counts(source, tenant.database)
    assert counts["public.orders"] == 3000 and counts["public.customers"] == 1000 and counts["public.settings"] == 4
    assert counts["public.events"] >= source_counts_before_move["public.events"]
    assert catalog.table_checksums(target, tenant.database) == catalog.table_checksums(source, tenant.database)
    assert catalog.schema_signature(target, tenant.database) == catalog.schema_signature(source, tenant.database)

    # The owner role owns everything on the target (the app created the tables on the source, so it owned
    # them there); the app carries on through its grants, sequences, views and functions included.
    with tenant.connect("new") as app:
        owners = {owner for (owner,) in app.execute("select distinct relowner::regrole::text from pg_class where relnamespace = 'public'::regnamespace")}
        assert owners == {tenant.owner}
        (new_id,) = app.execute("insert into events (payload) values ('after the move') returning id").fetchone()
        assert new_id > max(writer.committed)
        assert app.execute("select order_count(1)").fetchone()[0] == 3
        assert app.execute("select count(*) from big_orders").fetchone()[0] > 0

    # The source stays, intact and unreachable for the app, saying where the data went.
    assert "not permitted to log in" in refusal(tenant, "old")
    assert admin_scalar(tenant.clusters["old"], "select datconnlimit from pg_database where datname = %s", [tenant.database]) == 0
    marker = parse_moved_comment(catalog.database_comment(source, tenant.database))
    assert marker is not None and marker["server"] == "new" and marker["address"] == target.label
    assert outs["server"] == "new" and (outs["host"], outs["port"]) == (tenant.clusters["new"].host, tenant.clusters["new"].port)
    (move,) = outs["moves"]
    assert move["source"] == "old" and move["target"] == "new" and move["rows"] == sum(counts.values()) and move["tables"] == 4
    assert move["checksummed_tables"] == 4 and move["sessions_ended"] >= 1 and 0 < move["blocked_seconds"] < 30
    assert move["method"] == "dump" and "wal_level is replica, not logical, on the source" in move["method_reason"]  # the fallback says why
    assert "servers" not in outs and "admin_password" not in repr(outs)

    # Deleting the placement (tenant removed) touches no database.
    provider.delete(id_, outs)
    assert catalog.database_exists(target, tenant.database) and catalog.database_exists(source, tenant.database)


def test_an_update_without_a_server_change_moves_nothing(tenant):
    provider = DatabasePlacementProvider()
    id_, olds = created(provider, tenant)
    news = placement_props(tenant, "old")
    assert not provider.diff(id_, olds, news).changes
    rotated = placement_props(tenant, "old", old={"admin_password": "rotated"})
    assert not provider.diff(id_, olds, rotated).changes, "a rotated admin password is not a change of the placement"
    news["host"] = "db.internal"
    assert provider.diff(id_, olds, news).changes
    outs = outs_of(provider.update(id_, olds, news))
    assert outs["host"] == "db.internal" and outs["moves"] == []
    assert login_error(tenant, "old") is None and catalog.user_objects(tenant.access("new"), tenant.database) == []


def test_create_refuses_an_empty_database_while_another_server_holds_the_data(tenant):
    with pytest.raises(ProviderError, match=rf"{tenant.name}-db-placement.*empty on new but holds data on old"):
        DatabasePlacementProvider().create(placement_props(tenant, "new"))


def test_an_unreachable_target_refuses_the_move_before_touching_the_source(tenant):
    provider = DatabasePlacementProvider()
    id_, olds = created(provider, tenant)
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    news = placement_props(tenant, "new", new={"port": free_port(), "connect_timeout": 2})
    with pytest.raises(ProviderError) as failure:
        provider.update(id_, olds, news)
    message = str(failure.value)
    assert f"DatabasePlacement '{tenant.name}-db-placement'" in message and "refused before anything changed" in message
    assert "cannot connect" in message and "superuser-secret" not in message
    assert_source_serves_unchanged(tenant, counts)


def test_a_restore_error_reopens_the_source_exactly_and_leaves_the_target_empty(tenant):
    old = tenant.clusters["old"]
    with old.connect() as admin:
        admin.execute(f"create role {tenant.name}_reporting nologin")  # exists on the source only
        admin.execute(f"alter database {tenant.database} connection limit 7")
    with old.connect(tenant.database) as admin:  # a row-level policy names the role (privileges are not copied)
        admin.execute(f"create policy reporting_reads on orders for select to {tenant.name}_reporting using (true)")
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    with pytest.raises(MoveError) as failure:
        move_database(tenant.access("old"), tenant.access("new"), tenant.database, tenant.role, source_key="old", target_key="new", owner=tenant.owner)
    message = str(failure.value)
    assert "pg_restore" in message and f'role "{tenant.name}_reporting" does not exist' in message
    assert "source reopened, target emptied; the app keeps using the source" in message
    assert failure.value.source_reopened and failure.value.target_clean
    assert admin_scalar(old, "select datconnlimit from pg_database where datname = %s", [tenant.database]) == 7
    assert_source_serves_unchanged(tenant, counts)
    assert catalog.user_objects(tenant.access("new"), tenant.database) == []


def test_a_verification_mismatch_reopens_the_source_and_empties_the_target(tenant, monkeypatch):
    real_restore = dumps.restore

    def lossy_restore(access, database, path, owner_role, **options):
        seconds = real_restore(access, database, path, owner_role, **options)
        with access.connect(database) as connection:  # a copy that lost rows on the way
            connection.execute("delete from orders where id % 100 = 0")
        return seconds

    monkeypatch.setattr(dumps, "restore", lossy_restore)
    provider = DatabasePlacementProvider()
    id_, olds = created(provider, tenant)
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    with pytest.raises(ProviderError) as failure:
        provider.update(id_, olds, placement_props(tenant, "new"))
    message = str(failure.value)
    assert "verification failed" in message and "table public.orders: 3000 rows on old, 2970 rows on new" in message
    assert "source reopened, target emptied" in message
    assert_source_serves_unchanged(tenant, counts)
    assert catalog.user_objects(tenant.access("new"), tenant.database) == []
    # Fixed, the same update goes through.
    monkeypatch.setattr(dumps, "restore", real_restore)
    assert outs_of(provider.update(id_, olds, placement_props(tenant, "new")))["server"] == "new"
    assert catalog.table_counts(tenant.access("new"), tenant.database) == counts


@pytest.mark.parametrize("failing_phase", ["terminate", "copy", "verify", "finish"])
def test_a_failure_in_any_phase_after_the_block_puts_everything_back(clusters, failing_phase):
    tenant = TenantOnServers(f"ph{next(_NAMES)}", clusters)
    for cluster in clusters.values():
        provision(cluster, tenant.database, tenant.role, tenant.password)
    with tenant.connect("old") as connection:
        load_sample(connection, rows=300)
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    seen = []

    def fail_at(phase: str) -> None:
        seen.append(phase)
        if phase == failing_phase:
            assert login_error(tenant, "old") is not None, "the source must be blocked by now"
            raise RuntimeError(f"injected failure at {phase}")

    with pytest.raises(MoveError, match=f"injected failure at {failing_phase}; source reopened"):
        move_database(tenant.access("old"), tenant.access("new"), tenant.database, tenant.role, source_key="old", target_key="new", owner=tenant.owner, on_phase=fail_at)
    assert seen[-1] == failing_phase and seen[:2] == ["preflight", "block"]
    assert_source_serves_unchanged(tenant, counts)
    assert catalog.user_objects(tenant.access("new"), tenant.database) == []
    assert catalog.database_comment(tenant.access("old"), tenant.database) is None


def test_a_move_whose_state_was_lost_is_verified_and_adopted_not_copied_again(tenant):
    provider = DatabasePlacementProvider()
    id_, olds = created(provider, tenant)
    provider.update(id_, olds, placement_props(tenant, "new"))  # the engine crashed before saving this
    outs = outs_of(provider.update(id_, olds, placement_props(tenant, "new")))  # the next `up` repeats it
    assert outs["server"] == "new" and outs["moves"][-1]["adopted"] is True
    assert catalog.table_counts(tenant.access("new"), tenant.database) == catalog.table_counts(tenant.access("old"), tenant.database)


def test_a_move_killed_while_the_source_is_blocked_is_recovered_by_the_next_one(tenant, tmp_path):
    # A real crash: the move runs in a child process that SIGKILLs itself once the copy is restored, so no
    # except/finally of ours runs. Only the COMMENT set with the block tells how to reopen the source.
    code = (
        "import json, os, signal, sys; from fleet.postgres.access import ServerAccess; from components.providers.postgres import move_database\n"
        "source, target = (ServerAccess(**json.loads(arg)) for arg in sys.argv[1:3])\n"
        "def die(phase):\n"
        "    if phase == 'verify': os.kill(os.getpid(), signal.SIGKILL)\n"
        f"move_database(source, target, {tenant.database!r}, {tenant.role!r}, source_key='old', target_key='new', owner={tenant.owner!r}, on_phase=die)\n"
    )
    accesses = [json.dumps(tenant.access(key).to_mapping()) for key in ("old", "new")]
    result = subprocess.run([sys.executable, "-c", code, *accesses], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    source = tenant.access("old")
    assert "not permitted to log in" in refusal(tenant, "old")
    marker = parse_blocked_comment(catalog.database_comment(source, tenant.database))
    assert marker is not None and marker["purpose"] == "move to new" and marker["state"].role_could_login is True
    assert catalog.user_objects(tenant.access("new"), tenant.database) != []  # the unverified copy is there

    # An operator giving up on the move reopens the source exactly as it was ...
    counts = catalog.table_counts(source, tenant.database)
    reopened = reopen_interrupted(source, tenant.database)
    assert reopened is not None and reopened["purpose"] == "move to new"
    assert_source_serves_unchanged(tenant, counts)
    assert catalog.database_comment(source, tenant.database) is None

    # ... and the next move (the next `up`) recovers by itself: reopen, empty the target, move.
    sessions.block_connections(source, tenant.database, tenant.role, comment=lambda state: blocked_comment("move to new", datetime.now(timezone.utc), state))
    report = move_database(source, tenant.access("new"), tenant.database, tenant.role, source_key="old", target_key="new", owner=tenant.owner)
    assert report.recovered is not None
    assert report.recovered.startswith("reopened the source, blocked for move to new") and "emptied new" in report.recovered
    assert catalog.table_counts(tenant.access("new"), tenant.database) == counts
    comment = catalog.database_comment(source, tenant.database)
    moved = parse_moved_comment(comment)
    assert moved is not None and comment is not None
    assert moved["server"] == "new" and "Previous comment" not in comment
    assert "not permitted to log in" in refusal(tenant, "old")


def test_a_non_empty_target_is_refused(tenant):
    with tenant.connect("new") as connection:
        connection.execute("create table stray (id int)")
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    with pytest.raises(MoveError, match=r"target database .* is not empty \(table public\.stray\)"):
        move_database(tenant.access("old"), tenant.access("new"), tenant.database, tenant.role, source_key="old", target_key="new", owner=tenant.owner)
    assert_source_serves_unchanged(tenant, counts)


def test_a_suspended_tenant_moves_and_its_role_stays_unable_to_log_in(tenant):
    old = tenant.clusters["old"]
    with old.connect() as admin:
        admin.execute(f"alter role {tenant.role} nologin")
    move_database(tenant.access("old"), tenant.access("new"), tenant.database, tenant.role, source_key="old", target_key="new", owner=tenant.owner)
    assert admin_scalar(old, "select rolcanlogin from pg_roles where rolname = %s", [tenant.role]) is False


def assert_source_serves_unchanged(tenant: TenantOnServers, counts: dict[str, int]) -> None:
    """The tenant's app can log in and write on the source, nothing was dropped, nothing is marked."""
    assert login_error(tenant, "old") is None
    assert catalog.table_counts(tenant.access("old"), tenant.database) == counts
    with tenant.connect("old") as app:
        app.execute("insert into events (payload) values ('still serving')")
        app.execute("delete from events where payload = 'still serving'")
    assert parse_moved_comment(catalog.database_comment(tenant.access("old"), tenant.database)) is None
