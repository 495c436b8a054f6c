"""The live move through the real engine: `up` moves a tenant that keeps writing, by logical replication.

Each test starts two PostgreSQL 15 clusters with wal_level=logical, provisions the tenant on both (as the
official provider would), deploys the placement on `old`, starts the app's writer (one row at a time, as
the tenant's role), and changes the server to `new`:

- the live move: writes go on during the copy, the tenant is refused only at the cutover;
- the fallback: a server declared `logical_replication: false` moves by dump, and the move says why;
- the target goes away mid-copy: the `up` fails, the app never notices, no slot is left on the source,
  and once the target is back the next `up` finishes;
- the `up` killed (SIGKILL, engine and provider) during catch-up, and during the cutover: the next plain
  `up` (after `fleet up`'s recovery) finishes.

After each: every committed row is on the server that serves, no slot, publication or subscription is
left on either server, and the target's sequences are ahead of every id the app got.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Optional

import pytest

from components.providers.postgres import parse_blocked_comment
from fleet.bench.servers import PostgresCluster
from fleet.engine import driver as engine
from fleet.engine import recovery
from fleet.model.spec import Environment
from fleet.paths import ENGINE_PATH
from fleet.postgres import catalog, replication
from tests.e2e.test_lifecycle_engine import STACK, LifecycleStack
from tests.e2e.test_move_crash import _processes
from tests.integration.test_move import Writer, load_sample, login_error, moved_marker, provision, refusal
from tests.support.fixtures import require_engine, running
from tests.support.queries import one_row


class LiveStack(LifecycleStack):
    """The lifecycle program, with servers that may be declared unable to replicate."""

    declined: frozenset[str] = frozenset()

    def environment(self) -> Environment:
        environment = super().environment()
        servers = {
            key: server.model_copy(update={"logical_replication": False}) if key in self.declined else server
            for key, server in environment.servers.items()
        }
        return environment.model_copy(update={"servers": servers})


@pytest.fixture
def live(tmp_path):
    require_engine()
    clusters = {key: PostgresCluster(f"live-e2e-{key}-superuser") for key in ("old", "new")}
    with running(*clusters.values()):
        stack = LiveStack(clusters, tmp_path / "state", tmp_path / "backups")
        for cluster in clusters.values():
            provision(cluster, stack.tenant.database, stack.tenant.role, stack.tenant.password)
        with stack.tenant.connect("old") as connection:
            load_sample(connection, rows=30000)
        assert stack.run("up")["changes"] == {"create": 2}
        stack.server = "new"  # the change under test: the next `up` moves the tenant
        yield stack


def writing(stack: LiveStack) -> Writer:
    writer = Writer(stack.tenant, "old")
    writer.start()
    assert writer.started_writing.wait(10), writer.errors
    return writer


def replication_left(stack: LiveStack) -> list[str]:
    return [f"{key}: {line}" for key in ("old", "new") for line in replication.describe(replication.replication_objects(stack.tenant.access(key)))]


def assert_moved_completely(stack: LiveStack, writer: Writer, summary: dict) -> None:
    """Served from `new` with every committed row, the same facts as the frozen source, sequences ahead, nothing left."""
    tenant = stack.tenant
    writer.join(15)
    assert not writer.is_alive(), "the app was never cut off from the source"
    assert summary["outputs"]["server"] == "new"
    source, target = tenant.access("old"), tenant.access("new")
    with target.connect(tenant.database) as admin:
        on_target = {row for (row,) in admin.execute("select id from events")}
    assert set(writer.committed) <= on_target and len(writer.committed) >= 50  # no committed row lost
    assert catalog.compare_facts(catalog.collect_facts(source, tenant.database), catalog.collect_facts(target, tenant.database)) == []
    with tenant.connect("new") as app:
        (next_id,) = one_row(app.execute("insert into events (payload) values ('the app on the new server') returning id"))
    assert next_id > max(writer.committed)  # sequences ahead of every id used on the source
    assert "not permitted to log in" in refusal(tenant, "old")
    assert moved_marker(source, tenant.database)["server"] == "new"
    assert replication_left(stack) == []  # no slot, publication or subscription on either server


def up_in_background(stack: LiveStack) -> tuple[threading.Thread, list[BaseException]]:
    failure: list[BaseException] = []

    def move() -> None:
        try:
            stack.run("up")
        except BaseException as error:  # noqa: BLE001 - checked by the caller
            failure.append(error)

    mover = threading.Thread(target=move)
    mover.start()
    return mover, failure


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def slot_on_source(stack: LiveStack) -> bool:
    return any(item.kind == "slot" for item in replication.replication_objects(stack.tenant.access("old"), []))


def subscription_on_target(stack: LiveStack) -> bool:
    return any(item.kind == "subscription" for item in replication.replication_objects(stack.tenant.access("new"), []))


def kill_the_up() -> None:
    """SIGKILL the engine running `up` and its dynamic-provider processes, as a lost host would."""
    engines = [pid for pid, command in _processes(os.getpid()) if command.startswith(str(ENGINE_PATH).encode()) and b" up " in command]
    providers = [pid for engine_pid in engines for pid, command in _processes(engine_pid) if b"pulumi.dynamic" in command]
    assert engines, "no engine to kill"
    for pid in providers + engines:
        os.kill(pid, signal.SIGKILL)


def recover_and_up(stack: LiveStack) -> dict:
    """What `fleet up` does after a killed run: release the lock, resolve the pending operations, up."""
    notes: list[str] = []
    recovery.prepare(STACK, engine.backend_url(stack.backend), notes.append)
    pulumi_stack = stack.stack()
    recovery.recover(pulumi_stack, engine.backend_url(stack.backend), notes.append)
    return engine.run("up", pulumi_stack, on_output=None)


# ---------------------------------------------------------------- the live move and its fallback


def test_up_moves_a_writing_tenant_live_refusing_it_only_at_the_cutover(live):
    writer = writing(live)
    copy_started: dict[str, int] = {}

    def watch() -> None:
        wait_for(lambda: slot_on_source(live), "the slot")
        copy_started["rows"] = len(writer.committed)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    summary = live.run("up")
    watcher.join(5)
    assert summary["changes"] == {"same": 1, "update": 1}
    (move,) = summary["outputs"]["moves"]
    assert move["method"] == "logical" and move["method_reason"] == "both servers allow logical replication"
    assert copy_started["rows"] < len(writer.committed)  # the app kept writing once the copy had begun
    assert move["blocked_seconds"] < move["copy_seconds"] + 5
    assert_moved_completely(live, writer, summary)
    assert set(live.run("preview")["changes"]) == {"same"}


def test_a_server_declared_without_logical_replication_moves_by_dump_and_says_why(live):
    live.declined = frozenset({"new"})
    writer = writing(live)
    summary = live.run("up")
    (move,) = summary["outputs"]["moves"]
    assert move["method"] == "dump" and move["method_reason"] == "server new declares logical_replication: false"
    assert_moved_completely(live, writer, summary)


# ---------------------------------------------------------------- faults


def test_the_target_going_away_mid_copy_fails_the_up_and_the_next_up_finishes(live):
    writer = writing(live)
    mover, failure = up_in_background(live)
    wait_for(lambda: slot_on_source(live), "the copy to start")
    target = live.clusters["new"]
    PostgresCluster._kill_postmaster(target.data_dir)
    mover.join(120)
    assert failure and isinstance(failure[0], engine.EngineError), failure
    message = str(failure[0])
    assert "live move of 'tenant_acme'" in message and "source never blocked" in message and "target NOT clean" in message
    assert writer.is_alive() and not writer.errors  # the app never noticed
    assert live.placement_state()["server"] == "old"
    assert replication.replication_objects(live.tenant.access("old")) == []  # no slot (and no publication) left on the source
    assert login_error(live.tenant, "old") is None

    target._start_server()  # the target comes back, still holding the subscription and a partial copy
    summary = live.run("up")
    (move,) = summary["outputs"]["moves"]
    assert move["method"] == "logical" and "unverified copy on new" in move["recovered"]
    assert catalog.database_comment(live.tenant.access("new"), live.tenant.database) is None  # the receiving marker is gone
    assert_moved_completely(live, writer, summary)


@pytest.mark.filterwarnings("ignore:Error in event stream:UserWarning")  # the killed engine's last event may be cut
def test_an_up_killed_during_catch_up_is_finished_by_the_next_up(live):
    writer = writing(live)
    mover, failure = up_in_background(live)
    # Catch-up starts once CREATE SUBSCRIPTION has committed on the target: its slot on the source appears
    # before that commit, and a kill in between leaves a slot and no subscription (another recovery).
    wait_for(lambda: slot_on_source(live) and subscription_on_target(live), "the copy to start")
    time.sleep(0.2)
    kill_the_up()
    mover.join(120)
    assert failure and failure[0].reason == "engine-killed", failure  # type: ignore[attr-defined]
    assert writer.is_alive() and not writer.errors  # the source never stopped serving
    assert parse_blocked_comment(catalog.database_comment(live.tenant.access("old"), live.tenant.database)) is None

    summary = recover_and_up(live)
    (move,) = summary["outputs"]["moves"]
    assert move["method"] == "logical" and "removed an earlier live move's publication, slot, subscription" in move["recovered"]
    assert_moved_completely(live, writer, summary)


@pytest.mark.filterwarnings("ignore:Error in event stream:UserWarning")
def test_an_up_killed_during_the_cutover_is_finished_by_the_next_up(live):
    tenant = live.tenant
    with tenant.connect("old") as app:  # a big table the app writes to: verified inside the window, so it lasts
        app.execute("insert into events (payload) select repeat('e', 40) from generate_series(1, 600000)")
    writer = writing(live)
    mover, failure = up_in_background(live)
    source = tenant.access("old")
    blocked: dict[str, Optional[dict]] = {}

    def is_blocked() -> bool:
        blocked["marker"] = parse_blocked_comment(catalog.database_comment(source, tenant.database))
        return blocked["marker"] is not None

    wait_for(is_blocked, "the cutover to block the source", timeout=120, every=0.002)
    kill_the_up()
    mover.join(120)
    assert failure and failure[0].reason == "engine-killed", failure  # type: ignore[attr-defined]
    assert parse_blocked_comment(catalog.database_comment(source, tenant.database)) is not None, "killed too late: the move had finished"
    assert "not permitted to log in" in refusal(tenant, "old")  # blocked, with how to reopen it on the server

    summary = recover_and_up(live)
    (move,) = summary["outputs"]["moves"]
    assert move["method"] == "logical" and move["recovered"].startswith("reopened the source, blocked for move to new")
    assert "removed an earlier live move's publication, slot, subscription" in move["recovered"]
    assert_moved_completely(live, writer, summary)
