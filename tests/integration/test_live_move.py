"""The live move (logical replication) against two real PostgreSQL 15 clusters with wal_level=logical.

While the tenant's app writes one row at a time, the move copies, blocks only for the cutover, and
leaves no publication, slot or subscription behind. Faults: DDL during the copy, the target going away
mid-copy, the process killed (SIGKILL) during catch-up and during the cutover: after each, every committed
row is on the server that serves, the next move finishes, and no slot is left on the source.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Optional

import psycopg
import pytest

from components.providers.postgres import (
    DatabasePlacementProvider,
    MoveError,
    MoveReport,
    move_database,
    parse_blocked_comment,
)
from fleet.bench.servers import PostgresCluster
from fleet.paths import PROJECT_ROOT
from fleet.postgres import catalog, replication
from tests.integration.test_move import (
    TenantOnServers,
    Writer,
    created,
    fresh_tenant,
    login_error,
    moved_marker,
    placement_props,
    refusal,
)
from tests.support.dynamic import outs_of
from tests.support.fixtures import running
from tests.support.queries import one_row


@pytest.fixture(scope="module")
def clusters():
    """Two servers able to replicate logically (PostgresCluster's default), `old` and `new`."""
    started = {key: PostgresCluster(f"live-{key}-superuser") for key in ("old", "new")}
    with running(*started.values()):
        yield started


@pytest.fixture
def tenant(clusters) -> TenantOnServers:
    """A fresh tenant on both servers with sample data on `old`, and a table without a primary key."""
    tenant = fresh_tenant(clusters, "lv")
    with tenant.connect("old") as connection:
        connection.execute("create table audit (at timestamptz default now(), what text)")
        connection.execute("insert into audit (what) select 'entry ' || g from generate_series(1, 500) g")
    return tenant


def move(tenant: TenantOnServers, **options) -> MoveReport:
    return move_database(
        tenant.access("old"), tenant.access("new"), tenant.database, tenant.role, source_key="old", target_key="new", owner=tenant.owner, **options
    )


def replication_left(tenant: TenantOnServers) -> list[str]:
    """Every slot, publication and subscription on either server (for this tenant or not)."""
    return [f"{key}: {line}" for key in ("old", "new") for line in replication.describe(replication.replication_objects(tenant.access(key)))]


def rows_on(tenant: TenantOnServers, key: str) -> set[int]:
    with tenant.access(key).connect(tenant.database) as admin:
        return {row for (row,) in admin.execute("select id from events")}


def identity_of(tenant: TenantOnServers, key: str, table: str) -> str:
    with tenant.access(key).connect(tenant.database) as admin:
        return admin.execute("select relreplident::text from pg_class where oid = %s::regclass", [table]).fetchone()[0]


def assert_serves_after_move(tenant: TenantOnServers, writer: Writer) -> None:
    """On `new`: every committed row, the same facts as the frozen source, and sequences ahead of every id used."""
    assert set(writer.committed) <= rows_on(tenant, "new") and len(writer.committed) >= 50
    source, target = tenant.access("old"), tenant.access("new")
    assert catalog.compare_facts(catalog.collect_facts(source, tenant.database), catalog.collect_facts(target, tenant.database)) == []
    with tenant.connect("new") as app:
        (next_id,) = one_row(app.execute("insert into events (payload) values ('after the move') returning id"))
    assert next_id > max(rows_on(tenant, "old"))
    assert "not permitted to log in" in refusal(tenant, "old")
    assert moved_marker(source, tenant.database)["server"] == "new"
    assert replication_left(tenant) == []
    assert identity_of(tenant, "old", "audit") == "d"  # REPLICA IDENTITY FULL was for the move only
    assert catalog.database_comment(target, tenant.database) is None  # no longer marked as receiving a copy


# ---------------------------------------------------------------- the live move


def test_the_tenant_keeps_writing_during_the_copy_and_loses_nothing(tenant):
    provider = DatabasePlacementProvider()
    id_, olds = created(provider, tenant)
    writer = Writer(tenant, "old")
    writer.start()
    assert writer.started_writing.wait(10), writer.errors
    written: dict[str, int] = {}
    original = replication.wait_synced

    def observed(*args, **kwargs):
        written.setdefault("copy started", len(writer.committed))
        return original(*args, **kwargs)

    replication.wait_synced = observed
    try:
        outs = outs_of(provider.update(id_, olds, placement_props(tenant, "new")))
    finally:
        replication.wait_synced = original
    writer.join(10)
    assert not writer.is_alive(), "the writer was never cut off"

    (report,) = outs["moves"]
    assert report["method"] == "logical" and report["method_reason"] == "both servers allow logical replication"
    assert report["replica_identity_full"] == ["public.audit"] and report["sequences_set"] >= 3
    assert report["verified_early"] >= 3  # the quiet tables were verified before the block
    assert len(writer.committed) > written["copy started"]  # the app's writes went on while the data was copied
    assert outs["server"] == "new"
    assert_serves_after_move(tenant, writer)
    with tenant.connect("new") as app:  # the table without a key took updates through the move
        assert app.execute("select count(*) from audit").fetchone()[0] == 500


def test_updates_and_deletes_during_the_copy_arrive_too(tenant):
    def churn(phase: str) -> None:
        if phase == "catch-up":
            with tenant.connect("old") as app:
                app.execute("update orders set total = total + 1 where id % 7 = 0")
                app.execute("delete from orders where id % 11 = 0")
                app.execute("update audit set what = what || ' (seen)' where at is not null")

    report = move(tenant, on_phase=churn)
    assert report.method == "logical"
    assert catalog.compare_facts(catalog.collect_facts(tenant.access("old"), tenant.database), catalog.collect_facts(tenant.access("new"), tenant.database)) == []
    assert replication_left(tenant) == []


# ---------------------------------------------------------------- choosing the method


def test_what_logical_replication_does_not_carry_is_named_and_moves_by_dump(tenant):
    with tenant.access("old").connect(tenant.database) as admin:
        admin.execute("select lo_from_bytea(0, 'a large object')")
        admin.execute("create unlogged table scratch (id int)")
        admin.execute("create table loose (doc json)")  # no key, and json has no equality for REPLICA IDENTITY FULL
    reasons = replication.database_blockers(tenant.access("old"), tenant.database)
    assert any("1 large objects" in reason for reason in reasons), reasons
    assert any("unlogged tables public.scratch" in reason for reason in reasons), reasons
    assert any("public.loose" in reason and "doc (json) has no equality operator" in reason for reason in reasons), reasons

    with pytest.raises(MoveError, match="refused before anything changed: a live move .* is not possible: .*large objects"):
        move(tenant, method="logical")
    assert login_error(tenant, "old") is None and replication_left(tenant) == []

    report = move(tenant)  # auto: the dump path, saying why
    assert report.method == "dump" and "large objects" in report.method_reason and "unlogged tables" in report.method_reason
    assert catalog.large_object_count(tenant.access("new"), tenant.database) == 1


def test_servers_without_wal_level_logical_fall_back_with_the_reason():
    plain = {key: PostgresCluster(f"plain-{key}", logical_replication=False) for key in ("old", "new")}
    with running(*plain.values()):
        tenant = fresh_tenant(plain, "plain")
        reasons = replication.server_blockers(tenant.access("old"), tenant.access("new"))
        assert reasons and reasons[0].startswith("wal_level is replica, not logical, on the source")
        report = move(tenant)
        assert report.method == "dump" and report.method_reason.startswith("wal_level is replica, not logical")


def test_a_server_declared_without_logical_replication_moves_by_dump_without_asking(tenant):
    provider = DatabasePlacementProvider()
    id_, olds = created(provider, tenant)
    outs = outs_of(provider.update(id_, olds, placement_props(tenant, "new", new={"logical_replication": False})))
    assert outs["moves"][0]["method"] == "dump"
    assert outs["moves"][0]["method_reason"] == "server new declares logical_replication: false"


# ---------------------------------------------------------------- faults


def test_ddl_during_the_copy_stops_the_move_before_anything_is_blocked(tenant):
    counts = catalog.table_counts(tenant.access("old"), tenant.database)

    def migrate(phase: str) -> None:
        if phase == "catch-up":
            with tenant.connect("old") as app:
                app.execute("alter table settings add column note text")

    with pytest.raises(MoveError) as failure:
        move(tenant, on_phase=migrate)
    message = str(failure.value)
    assert "the schema changed during the copy" in message and "logical replication does not carry DDL" in message
    assert "source never blocked, replication removed and target emptied" in message
    assert login_error(tenant, "old") is None and catalog.table_counts(tenant.access("old"), tenant.database) == counts
    assert catalog.user_objects(tenant.access("new"), tenant.database) == [] and replication_left(tenant) == []
    assert identity_of(tenant, "old", "audit") == "d"


def test_a_failure_during_the_cutover_reopens_the_source_and_cleans_both_servers(tenant):
    def fail(phase: str) -> None:
        if phase == "verify":
            raise RuntimeError("injected at verify")

    writer = Writer(tenant, "old")
    writer.start()
    assert writer.started_writing.wait(10), writer.errors
    with pytest.raises(MoveError, match="injected at verify; source reopened, replication removed and target emptied"):
        move(tenant, on_phase=fail)
    writer.stop.set()
    writer.join(10)
    assert login_error(tenant, "old") is None and catalog.database_comment(tenant.access("old"), tenant.database) is None
    assert set(writer.committed) <= rows_on(tenant, "old")
    assert catalog.user_objects(tenant.access("new"), tenant.database) == [] and replication_left(tenant) == []
    assert identity_of(tenant, "old", "audit") == "d"


def test_the_target_going_away_mid_copy_leaves_the_source_serving_and_no_slot():
    pair = {key: PostgresCluster(f"gone-{key}") for key in ("old", "new")}
    with running(*pair.values()):
        tenant = fresh_tenant(pair, "gone")
        writer = Writer(tenant, "old")
        writer.start()
        assert writer.started_writing.wait(10), writer.errors

        def target_dies(phase: str) -> None:
            if phase == "catch-up":
                PostgresCluster._kill_postmaster(pair["new"].data_dir)

        with pytest.raises(MoveError) as failure:
            move(tenant, on_phase=target_dies)
        message = str(failure.value)
        assert "source never blocked" in message and "target NOT clean" in message
        assert f"subscription {replication.move_object_name(tenant.database)} on the target" in message  # named, with how to drop it
        assert writer.is_alive() and not writer.errors  # the app never noticed
        writer.stop.set()
        writer.join(10)
        assert set(writer.committed) <= rows_on(tenant, "old")
        assert replication.replication_objects(tenant.access("old")) == []  # no slot, no publication on the source


def _kill_move_at(tenant: TenantOnServers, phase: str) -> subprocess.CompletedProcess:
    """Run the move in a child process that SIGKILLs itself when `phase` starts: no except/finally of ours runs."""
    code = (
        "import json, os, signal, sys; from fleet.postgres.access import ServerAccess; from components.providers.postgres import move_database\n"
        "source, target = (ServerAccess(**json.loads(arg)) for arg in sys.argv[1:3])\n"
        "def die(phase):\n"
        f"    if phase == {phase!r}: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"move_database(source, target, {tenant.database!r}, {tenant.role!r}, source_key='old', target_key='new', owner={tenant.owner!r}, on_phase=die)\n"
    )
    accesses = [json.dumps(tenant.access(key).to_mapping()) for key in ("old", "new")]
    return subprocess.run([sys.executable, "-c", code, *accesses], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("phase", "blocked"), [("catch-up", False), ("verify", True)], ids=["killed-in-catch-up", "killed-in-cutover"])
def test_a_live_move_killed_is_finished_by_the_next_one(tenant, phase: str, blocked: bool):
    writer = Writer(tenant, "old")
    writer.start()
    assert writer.started_writing.wait(10), writer.errors
    result = _kill_move_at(tenant, phase)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    marker: Optional[dict] = parse_blocked_comment(catalog.database_comment(tenant.access("old"), tenant.database))
    assert (marker is not None) is blocked  # killed in the cutover: blocked, with how to reopen it on the server
    left = replication.find_leftovers(tenant.access("old"), tenant.access("new"), tenant.database)
    assert left.publication and left.slot and left.subscription
    if not blocked:
        assert writer.is_alive() and not writer.errors  # killed during catch-up: the app never noticed

    report = move(tenant)  # the next `up`
    writer.join(15)
    assert not writer.is_alive()
    assert report.recovered is not None
    assert report.method == "logical" and "removed an earlier live move's publication, slot, subscription" in report.recovered
    if blocked:
        assert report.recovered.startswith("reopened the source, blocked for move to new")
    assert_serves_after_move(tenant, writer)


def test_a_replication_name_is_recognisable_and_fits():
    name = replication.move_object_name("tenant_" + "x" * 56)
    assert name.startswith("fleet_move_tenant_xxx") and len(name.encode()) <= 63
    assert replication.move_object_name("tenant_a") != replication.move_object_name("tenant_A")
    assert replication.ReplicationObject("slot", replication.move_object_name("tenant_a"), "tenant_a").move_of == "tenant_a"
    assert replication.ReplicationObject("slot", "someone_elses", "tenant_a").move_of is None


def test_an_app_role_cannot_see_the_subscription_password(tenant):
    """The subscription's connection string holds the source admin's password: only superusers read pg_subscription.subconninfo."""
    def look(phase: str) -> None:
        if phase == "pre-verify":
            with tenant.connect("new") as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("select subconninfo from pg_subscription")

    move(tenant, on_phase=look)
