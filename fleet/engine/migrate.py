"""Split a single-stack environment into a platform stack and one stack per tenant, touching no resource.

Each tenant's resources (its `Tenant` component with every descendant, and its registry row) move from
stack `<env>` to stack `<env>.<tenant>` with the engine's `pulumi state move`; what stays in `<env>` is the
platform. No provider runs: Caddy, the databases and the registry are not contacted. Afterwards every
stack's preview shows no changes, and each stack records its fingerprint so that `fleet up` leaves it be.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from fleet.engine import driver
from fleet.engine.fanout import require_per_tenant
from fleet.engine.fingerprints import platform_fingerprint, program_version, raw_stack_config, tenant_fingerprint
from fleet.engine.ledger import FINGERPRINT_TAG
from fleet.engine.targets import deployed_tenants
from fleet.errors import FleetError
from fleet.model import derive
from fleet.model.type_tokens import PROJECT_NAME
from fleet.offline.policies import load_stack_fleet
from fleet.paths import ENGINE_PATH


def _qualified(stack: str) -> str:
    return f"organization/{PROJECT_NAME}/{stack}"


def migrate_to_tenant_stacks(
    environment: str,
    root: Path,
    *,
    yes: bool = False,
    backend: Optional[str] = None,
    progress: Optional[Callable[[str], Any]] = None,
) -> dict[str, Any]:
    """Move every tenant's resources out of stack `environment`; returns {"moved": {stack: resources}, "platform": stack}."""
    fleet = load_stack_fleet(environment, root)
    require_per_tenant(fleet, environment)
    url = driver.backend_url(backend)
    say = progress or (lambda _line: None)
    config_file = root / f"Pulumi.{environment}.yaml"
    raw = raw_stack_config(config_file)
    program = program_version(root)
    specs = {tenant.name: tenant for tenant in fleet.tenants}
    moved: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix=f"tenant-fleet-migrate-{environment}-") as work:
        shutil.copy(config_file, Path(work) / f"Pulumi.{environment}.yaml")
        source = driver.stack_for(environment, _no_program, work_dir=work, backend_dir=url)
        resources = (source.export_stack().deployment or {}).get("resources") or []
        if not resources:
            raise FleetError(f"stack {environment} holds nothing: there is nothing to split (run `python -m fleet up --stack {environment}`)")
        owned = deployed_tenants(resources)
        if owned and not yes:
            _confirm(environment, owned)
        for tenant, urns in sorted(owned.items()):
            destination = derive.tenant_stack(environment, tenant)
            shutil.copy(config_file, Path(work) / f"Pulumi.{destination}.yaml")
            target = driver.stack_for(destination, _no_program, work_dir=work, backend_dir=url)
            if (target.export_stack().deployment or {}).get("resources"):
                raise FleetError(f"stack {destination} already holds resources: not moving {tenant}'s into it (was it migrated halfway?)")
            _state_move(work, url, environment, destination, sorted(urns))
            if tenant in specs:
                target.workspace.set_tag(destination, FINGERPRINT_TAG, tenant_fingerprint(fleet, specs[tenant], raw, program))
            moved[destination] = len(urns)
            say(f"moved {len(urns)} resource(s) of {tenant} to stack {destination}")
        source.workspace.set_tag(environment, FINGERPRINT_TAG, platform_fingerprint(raw, program))
    say(f"stack {environment} now holds the platform; {len(moved)} tenant stack(s) hold the tenants")
    return {"platform": environment, "moved": moved}


def _no_program() -> None:
    """Stacks are only selected or created here; no program runs."""


def _confirm(environment: str, owned: dict[str, set[str]]) -> None:
    count = sum(len(urns) for urns in owned.values())
    question = f"Move {count} resource(s) of {len(owned)} tenant(s) out of stack {environment} into their own stacks? [y/N] "
    if not sys.stdin.isatty():
        raise FleetError(f"migrate-stacks moves {count} resource(s) of {len(owned)} tenant(s) between stacks: add --yes to confirm")
    if input(question).strip().lower() not in ("y", "yes"):
        raise FleetError("not migrated")


def _state_move(work: str, url: str, source: str, destination: str, urns: list[str]) -> None:
    command = [str(ENGINE_PATH), "state", "move", "--source", _qualified(source), "--dest", _qualified(destination), "--yes", "--non-interactive", *urns]
    result = subprocess.run(command, cwd=work, env=driver.engine_env(url), capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise FleetError(f"pulumi state move {source} -> {destination} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
