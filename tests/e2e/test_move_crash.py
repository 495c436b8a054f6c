"""A move killed mid-copy with its engine and provider, then finished by the next plain up: no committed row lost.

The tenant's app writes to the source while `up` moves its database to the target. Once the source is
blocked and the copy under way, the engine and its dynamic-provider process are killed with -9, as a lost
host would. Then what `fleet up` does: recover (the dead run's lock, the pending update), and `up` again.
Every row the app saw committed is on the target, the counts and checksums agree, and the source is blocked
with the target complete: never both closed with the data nowhere.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from components.providers.postgres import parse_blocked_comment
from fleet.bench.servers import PostgresCluster
from fleet.engine import driver as engine
from fleet.engine import recovery
from fleet.paths import ENGINE_PATH
from fleet.postgres import catalog
from tests.e2e.test_lifecycle_engine import LifecycleStack
from tests.integration.test_move import Writer, load_sample, login_error, moved_marker, provision, refusal
from tests.support.fixtures import running


@pytest.fixture
def moving(tmp_path):
    # The dump-and-restore move (test_live_move_engine.py kills the live one).
    clusters = {key: PostgresCluster(f"crash-{key}-superuser", logical_replication=False) for key in ("old", "new")}
    with running(*clusters.values()):
        stack = LifecycleStack(clusters, tmp_path / "state", tmp_path / "backups")
        for cluster in clusters.values():
            provision(cluster, stack.tenant.database, stack.tenant.role, stack.tenant.password)
        with stack.tenant.connect("old") as connection:
            load_sample(connection, rows=60000)  # a copy that takes a moment
        assert stack.run("up")["changes"] == {"create": 2}
        yield stack


def _processes(parent: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of a process's children."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"PPid:\t{parent}\n".encode() in (entry / "status").read_bytes():
                    found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ")))
            except OSError:
                continue
    return found


# The Automation API tails the engine's event log; killed with -9 mid-line, that tail may fail to parse
# the last event and warn. The kill is the point of this test, so that one warning is expected.
@pytest.mark.filterwarnings("ignore:Error in event stream:UserWarning")
def test_a_move_killed_mid_copy_is_finished_by_the_next_up_without_losing_a_row(moving):
    tenant = moving.tenant
    source, target = tenant.access("old"), tenant.access("new")
    writer = Writer(tenant, "old")
    writer.start()
    assert writer.started_writing.wait(10), writer.errors
    moving.server = "new"
    failure: list[BaseException] = []

    def move() -> None:
        try:
            moving.run("up")
        except BaseException as error:  # noqa: BLE001 - the killed engine's error, checked below
            failure.append(error)

    mover = threading.Thread(target=move)
    mover.start()
    # The kill point: the source is blocked (its COMMENT records how to reopen it) and the copy has started.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and parse_blocked_comment(catalog.database_comment(source, tenant.database)) is None:
        time.sleep(0.02)
    assert catalog.database_comment(source, tenant.database), "the move never blocked the source"
    time.sleep(0.3)
    engines = [pid for pid, command in _processes(os.getpid()) if command.startswith(str(ENGINE_PATH).encode()) and b" up " in command]
    providers = [pid for engine_pid in engines for pid, command in _processes(engine_pid) if b"pulumi.dynamic" in command]
    assert engines, "no engine to kill"
    for pid in providers + engines:
        os.kill(pid, signal.SIGKILL)
    mover.join(120)
    writer.join(30)
    writer.stop.set()
    assert failure and isinstance(failure[0], engine.EngineError) and failure[0].reason == "engine-killed", failure

    # What `fleet up` does next: recover, then up.
    notes: list[str] = []
    recovery.prepare("e2e-lifecycle", engine.backend_url(moving.backend), notes.append)
    stack = moving.stack()
    recovery.recover(stack, engine.backend_url(moving.backend), notes.append)
    summary = engine.run("up", stack, on_output=None)
    assert summary["outputs"]["server"] == "new", (notes, summary)
    assert any("released the lock" in note for note in notes), notes

    with target.connect(tenant.database) as admin:
        on_target = {row for (row,) in admin.execute("select id from events")}
    assert set(writer.committed) <= on_target and len(writer.committed) >= 50  # no committed row lost
    facts = catalog.compare_facts(catalog.collect_facts(source, tenant.database), catalog.collect_facts(target, tenant.database))
    assert facts == [], facts  # counts, checksums and schema agree
    assert "not permitted to log in" in refusal(tenant, "old")  # the source blocked...
    assert moved_marker(source, tenant.database)["server"] == "new"  # ...with the target complete
    assert login_error(tenant, "new") is None
    assert not (stack.export_stack().deployment or {}).get("pending_operations")
