"""Finish what a crashed run left: its stale lock, its pending operations, its stray processes.

Before each engine operation on a stack: a lock held by a process of this host that no longer runs is
released (said in one line); a lock held by a live process or another host is never broken, and the error
says who holds it, since when, and `python -m fleet unlock`. Pending operations in the state are resolved
with one `pulumi refresh`: pending creates of a PostgreSQL database or role are imported by their name,
the others are dropped (the project's own creates adopt an object that exists; see components.providers),
and pending updates and deletes are read back. Process groups of runs whose `fleet` died are ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from pulumi import automation as auto

from fleet.engine import driver
from fleet.engine.ledger import Ledger
from fleet.errors import FleetError
from fleet.model.type_tokens import DATABASE, ROLE
from fleet.paths import CACHE_DIR, ENGINE_PATH

IMPORTABLE = {DATABASE: "name", ROLE: "name"}
"""Official resources whose id is an input: a pending create of one is imported by it rather than dropped."""
RUNS_DIR = CACHE_DIR / "runs"
"""One file per live run (see `start_run`)."""


class StackLocked(FleetError):
    """Another run, alive or on another host, holds the stack's lock."""


def holder_is_gone(holder: dict[str, Any]) -> bool:
    """A lock holder on this host whose process no longer runs (or is no longer the engine: a reused pid)."""
    if holder.get("hostname") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True
    return b"pulumi" not in command


def release_stale_locks(stack: str, backend: str, say: Callable[[str], Any]) -> int:
    """Remove the locks of dead local runs; raise StackLocked for a live or remote holder."""
    ledger = Ledger(backend)
    released = 0
    for key, holder in ledger.locks(stack):
        who = f"pid {holder.get('pid')} of {holder.get('username', '?')}@{holder.get('hostname', '?')} since {holder.get('timestamp', '?')}"
        if holder_is_gone(holder):
            ledger.remove(key)
            released += 1
            say(f"{stack}: released the lock of a run that crashed ({who})")
        else:
            raise StackLocked(
                f"stack {stack} is locked by another run: {who}. Wait for it; if it is gone, break the lock with "
                f"`python -m fleet unlock --stack {stack}` (it asks first)"
            )
    return released


def resolve_pending(stack: auto.Stack, backend: str, say: Callable[[str], Any]) -> int:
    """Resolve the pending operations a crash left in the state with one refresh; returns how many there were."""
    if not Ledger(backend).pending_operations(stack.name):
        return 0  # the common case, read from the checkpoint without an engine call
    deployment = stack.export_stack().deployment or {}
    pending = deployment.get("pending_operations") or []
    if not pending:
        return 0
    imports: list[str] = []
    kinds: dict[str, int] = {}
    for operation in pending:
        kind = operation.get("type", "?")
        kinds[kind] = kinds.get(kind, 0) + 1
        resource = operation.get("resource") or {}
        id_key = IMPORTABLE.get(resource.get("type", ""))
        identity = (resource.get("inputs") or {}).get(id_key) if id_key else None
        if kind == "creating" and isinstance(identity, str):
            imports += [resource["urn"], identity]
    args = ["refresh", "--yes", "--skip-preview", "--non-interactive", "--color", "never", "--stack", stack.name, "--clear-pending-creates"]
    for index in range(0, len(imports), 2):
        args += ["--import-pending-creates", imports[index], imports[index + 1]]
    result = subprocess.run(
        [str(ENGINE_PATH), *args], cwd=stack.workspace.work_dir, env=driver.engine_env(backend), capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise FleetError(f"{stack.name}: resolving {len(pending)} pending operation(s) left by a crash failed: {result.stderr.strip() or result.stdout.strip()[-2000:]}")
    left = (stack.export_stack().deployment or {}).get("pending_operations") or []
    if left:
        raise FleetError(f"{stack.name}: {len(left)} pending operation(s) remain after a refresh; see `pulumi stack export --stack {stack.name}`")
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    say(f"{stack.name}: resolved {len(pending)} operation(s) a crash left pending ({summary}); {len(imports) // 2} imported by name")
    return len(pending)


def prepare(stack: str, backend: str, say: Callable[[str], Any]) -> None:
    """Before the engine touches a stack: release a dead run's lock (a live one raises), then repair what a write cut
    off by a kill left in the storage (the engine can't even select the stack otherwise)."""
    release_stale_locks(stack, backend, say)
    removed = Ledger(backend).repair(stack)
    if removed:
        say(f"{stack}: removed {len(removed)} file(s) a killed write left half-done in the state ({', '.join(removed)})")


def recover(stack: auto.Stack, backend: str, say: Callable[[str], Any]) -> None:
    """After selecting the stack: resolve what a crashed run left pending (see `prepare` for before)."""
    resolve_pending(stack, backend, say)


# ---------------------------------------------------------------- the processes of a run


RUN_ENV = "FLEET_RUN"
"""Set for the engine and its plugins: every process of one run carries it, whatever group or session it makes."""


def start_run() -> tuple[str, Path]:
    """Mark this run's future processes (the engine inherits the variable, its plugins from it) and record the run."""
    run = uuid.uuid4().hex
    os.environ[RUN_ENV] = run
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    record = RUNS_DIR / f"{run}.json"
    record.write_text(json.dumps({"run": run, "leader": os.getpid(), "started": time.time(), "host": socket.gethostname()}))
    return run, record


def end_run(run: str, record: Optional[Path] = None, *, engine_grace: float = 0.0) -> int:
    """End every process of a run but the caller (plugins of a killed engine included); forget the run.

    `engine_grace`: an engine still running is first asked to stop as Ctrl-C does (it cancels and saves its
    checkpoint) and given this long, so that it is never cut off in the middle of writing the state."""
    members = _members(run, spare=os.getpid())
    engines = [pid for pid in members if _is_engine(pid)]
    if engines and engine_grace > 0:
        for pid in engines:
            _signal(pid, signal.SIGINT)
        deadline = time.monotonic() + engine_grace
        while time.monotonic() < deadline and any(_alive(pid) for pid in engines):
            time.sleep(0.2)
    for pid in members:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in members):
        time.sleep(0.1)
    for pid in members:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    if record is not None:
        record.unlink(missing_ok=True)
    return len(members)


def end_orphaned_runs(say: Callable[[str], Any]) -> int:
    """End the processes of earlier runs whose `fleet` died (killed with -9, a lost terminal)."""
    ended = 0
    if not RUNS_DIR.is_dir():
        return 0
    for path in RUNS_DIR.glob("*.json"):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if run.get("host") != socket.gethostname() or _alive(run.get("leader")):
            continue
        count = end_run(str(run.get("run")), path, engine_grace=120)
        if count:
            ended += count
            say(f"ended {count} process(es) a crashed run left behind (its engine or plugins)")
    return ended


def _members(run: str, spare: Optional[int] = None) -> list[int]:
    marker = f"{RUN_ENV}={run}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != spare:
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _is_engine(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]) == str(ENGINE_PATH).encode()
    except OSError:
        return False


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except OSError:
        pass
