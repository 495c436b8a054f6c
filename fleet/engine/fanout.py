"""A fleet of stacks (`fleet:stacks: per-tenant`): work out which stacks changed, then run only those, in parallel.

The platform stack `<env>` runs first when its inputs changed; then each changed tenant stack `<env>.<tenant>`
runs in a pool of worker processes; a tenant whose file is gone has its stack destroyed (data retained) and
removed. A failed stack never stops the others; the next run retries exactly what is not done.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from fleet.engine import driver, recovery
from fleet.engine.fingerprints import platform_fingerprint, program_version, raw_stack_config, tenant_fingerprint
from fleet.engine.kubeconfigs import set_run_kubeconfigs
from fleet.engine.ledger import FINGERPRINT_TAG, Ledger
from fleet.errors import FleetError
from fleet.model import derive
from fleet.model.spec import Fleet
from fleet.offline import shards
from fleet.program import fleet_program


@dataclass(frozen=True)
class ChangeSet:
    """What a run has to do, per stack."""

    environment: str
    platform: Optional[str]
    """The platform's new fingerprint when its stack must run, else None."""
    changed: dict[str, str] = field(default_factory=dict)
    """Tenant -> new fingerprint, for every tenant stack that must run."""
    removed: list[str] = field(default_factory=list)
    """Tenants whose stack is deployed but whose file is gone."""
    unchanged: list[str] = field(default_factory=list)

    def stacks(self) -> list[str]:
        """Every stack that runs, platform first."""
        names = [derive.platform_stack(self.environment)] if self.platform else []
        names += [derive.tenant_stack(self.environment, tenant) for tenant in sorted(self.changed)]
        return names + [derive.tenant_stack(self.environment, tenant) for tenant in self.removed]

    def document(self) -> dict[str, Any]:
        """For `fleet changed --json` (a CI matrix): the stacks to run and why."""
        return {
            "environment": self.environment,
            "platform": derive.platform_stack(self.environment) if self.platform else None,
            "changed": [derive.tenant_stack(self.environment, tenant) for tenant in sorted(self.changed)],
            "removed": [derive.tenant_stack(self.environment, tenant) for tenant in self.removed],
            "unchanged": len(self.unchanged),
            "stacks": self.stacks(),
        }


def change_set(
    fleet: Fleet, environment: str, root: Path, deployed: dict[str, Optional[str]], *, force_all: bool = False, only: Optional[Iterable[str]] = None
) -> ChangeSet:
    """Compare each stack's fingerprint with the one recorded at its last `up` (`deployed`: stack -> fingerprint)."""
    raw = raw_stack_config(root / f"Pulumi.{environment}.yaml")
    program = program_version(root)
    chosen = set(only) if only is not None else None
    platform = platform_fingerprint(raw, program)
    platform_stack = derive.platform_stack(environment)
    platform_runs = chosen is None and (force_all or deployed.get(platform_stack) != platform)
    changed, unchanged = {}, []
    for tenant in fleet.tenants:
        if chosen is not None and tenant.name not in chosen:
            continue
        fingerprint = tenant_fingerprint(fleet, tenant, raw, program)
        stack = derive.tenant_stack(environment, tenant.name)
        if force_all or chosen is not None or deployed.get(stack) != fingerprint:
            changed[tenant.name] = fingerprint
        else:
            unchanged.append(tenant.name)
    declared = {tenant.name for tenant in fleet.tenants}
    removed = sorted(
        tenant
        for stack in deployed
        for env, tenant in [derive.split_stack(stack)]
        if env == environment and tenant and tenant not in declared and (chosen is None or tenant in chosen)
    )
    return ChangeSet(environment, platform if platform_runs else None, changed, removed, unchanged)


def deployed_stacks(backend: Optional[str] = None) -> dict[str, Optional[str]]:
    """Every stack in the backend with its recorded fingerprint."""
    return Ledger(driver.backend_url(backend)).read()


# ---------------------------------------------------------------- running stacks


@dataclass(frozen=True)
class StackTask:
    """One engine operation on one stack, as a worker process runs it."""

    op: str
    """up, preview, refresh, destroy, or remove (destroy, then delete the stack)."""
    stack: str
    environment: str
    root: str
    backend: str
    fingerprint: Optional[str] = None
    """Recorded on the stack after a successful `up`."""
    exists: Optional[bool] = None
    """Whether the stack is in the backend already (None: unknown); saves an engine call either way."""
    options: dict[str, Any] = field(default_factory=dict)
    """Passed to the Automation API call (policy packs for the platform, expect_no_changes, ...)."""


@dataclass
class StackResult:
    """How one stack's operation ended."""

    stack: str
    op: str
    ok: bool
    changes: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)
    """What was recovered first (a stale lock, pending operations)."""

    def line(self) -> str:
        what = ", ".join(f"{kind} {count}" for kind, count in sorted(self.changes.items()) if kind != "same") or "no changes"
        return f"{'ok' if self.ok else 'FAILED'}  {self.stack}  {self.op}: {what if self.ok else self.error.splitlines()[0] if self.error else 'failed'} ({self.duration_s:.1f} s)"


def run_task(task: StackTask) -> StackResult:
    """Run one stack's operation (in a worker process); failures come back as a result, never as an exception."""
    started = time.monotonic()
    root = Path(task.root)
    notes: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix=f"tenant-fleet-{task.stack}-") as work:
            # A stack of the environment is configured by the environment's file: same values, same salt for its secrets.
            shutil.copy(root / f"Pulumi.{task.environment}.yaml", Path(work) / f"Pulumi.{task.stack}.yaml")

            def program() -> None:
                fleet_program(None, root / "tenants")

            if task.exists is not False:
                recovery.prepare(task.stack, task.backend, notes.append)
            stack = driver.stack_for(task.stack, program, work_dir=work, backend_dir=task.backend, create=None if task.exists is None else not task.exists)
            set_run_kubeconfigs(stack)
            if task.exists is not False:
                recovery.recover(stack, task.backend, notes.append)
            op = "destroy" if task.op == "remove" else task.op
            summary = driver.run(op, stack, on_output=None, lean=True, **task.options)
            if task.op == "remove":
                stack.workspace.remove_stack(task.stack)
            elif task.op == "up" and task.fingerprint:
                stack.workspace.set_tag(task.stack, FINGERPRINT_TAG, task.fingerprint)
        return StackResult(task.stack, task.op, True, summary.get("changes", {}), round(time.monotonic() - started, 3), notes=notes)
    except Exception as error:  # noqa: BLE001 - one stack's failure is reported, the others go on
        return StackResult(task.stack, task.op, False, {}, round(time.monotonic() - started, 3), str(error) or type(error).__name__, notes)


def run_tasks(tasks: list[StackTask], parallel: int, progress: Optional[Callable[[StackResult], None]] = None) -> list[StackResult]:
    """Run tasks in `parallel` worker processes; results in the order they finish."""
    if not tasks:
        return []
    results: list[StackResult] = []
    workers = max(1, min(parallel, len(tasks)))
    # spawn: the workers start clean (no inherited event loop, gRPC threads or engine state of this process).
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_signals) as pool:
        futures = [pool.submit(run_task, task) for task in tasks]
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - a worker that died is one failed stack
                task = tasks[futures.index(future)]
                result = StackResult(task.stack, task.op, False, error=f"worker died: {error}")
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def _worker_signals() -> None:
    """A worker leaves Ctrl-C to its engine (which stops cleanly) and to the `fleet` process (which ends the group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_parallel() -> int:
    """As many stacks at once as there are cores."""
    return shards.cores()


def results_document(results: list[StackResult]) -> list[dict[str, Any]]:
    """Results for `--json`."""
    return [asdict(result) for result in sorted(results, key=lambda result: result.stack)]


def require_per_tenant(fleet: Fleet, environment: str) -> None:
    """Refuse fleet-of-stacks commands on an environment that keeps one stack, or whose name can't prefix a tenant's."""
    if derive.STACK_SEPARATOR in environment:
        raise FleetError(f"environment {environment!r}: a stack per tenant needs an environment name without {derive.STACK_SEPARATOR!r} (it separates <env>.<tenant>)")
    if fleet.environment.stacks != "per-tenant":
        raise FleetError(
            f"environment {environment} keeps one stack (fleet:stacks: single); set `fleet:stacks: per-tenant` in "
            f"Pulumi.{environment}.yaml and run `python -m fleet migrate-stacks --stack {environment}` to split it"
        )
