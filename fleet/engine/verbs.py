"""`python -m fleet up|preview|refresh|destroy`: validate, check plugins, then run the engine on a stack.

A missing plugin shows the offline plan instead (exit 3). `--tenant` narrows the engine's work with
its `target` option and never the program (see `fleet.engine.targets`).
"""


from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

from fleet import paths
from fleet.engine import driver, plugins
from fleet.engine.plugins import required_packages
from fleet.engine.targets import deployed_tenants, tenant_targets
from fleet.errors import FleetError
from fleet.offline.mocks import Evaluation
from fleet.offline.plan import plan_stack
from fleet.offline.policies import write_policy_config
from fleet.offline.report import print_plan_table
from fleet.paths import PROJECT_ROOT
from fleet.program import fleet_program

EXIT_OK, EXIT_FAILED, EXIT_NOT_DEPLOYED = 0, 1, 3
# Operations that run the policy pack before changing anything.
POLICY_VERBS = ("up", "preview")


def stack_workspace(stack: str, root: Path) -> tempfile.TemporaryDirectory:
    """A scratch work dir holding a copy of Pulumi.<stack>.yaml (config, encrypted secrets and their salt)."""
    scratch = tempfile.TemporaryDirectory(prefix=f"tenant-fleet-{stack}-")
    shutil.copy(root / f"Pulumi.{stack}.yaml", Path(scratch.name) / f"Pulumi.{stack}.yaml")
    return scratch


def run_engine_verb(
    verb: str,
    stack_name: str,
    *,
    selection: Optional[Iterable[str]] = None,
    json_output: bool = False,
    yes: bool = False,
    root: Optional[Path] = None,
    backend_dir: Optional[Path] = None,
    out=sys.stdout,
) -> int:
    """Validate, check plugins, then run one engine operation on a stack; returns the exit code.

    `selection` (`--tenant`) narrows what the engine touches with its `target` option; the program
    always declares everything the stack holds, so no other tenant's resource can be deleted."""

    root = root or PROJECT_ROOT
    chosen = set(selection) if selection else None
    evaluation = plan_stack(stack_name, root)  # raises SpecError: exit 2, nothing deployed
    try:
        driver.check_engine()
        required = plugins.required_plugin_versions(sorted(required_packages(evaluation)))
        missing = plugins.missing_plugins(required)
    except (driver.EngineMissing, driver.EngineError) as error:
        raise FleetError(str(error)) from None
    if missing:
        print(plugins.missing_plugins_message(missing), file=sys.stderr)
        print(
            f"Not running `{verb}` on stack {stack_name}: the engine needs these plugins even to preview. "
            "Install them (commands above) and run again; meanwhile, this is what the stack declares (offline plan):",
            file=sys.stderr,
        )
        shown = evaluation if chosen is None else plan_stack(stack_name, root, selection=chosen & set(evaluation.specs))
        print_plan_table(shown, {name: spec.plan for name, spec in shown.specs.items()}, out)
        return EXIT_NOT_DEPLOYED

    if verb == "destroy" and not yes:
        what = f"tenant(s) {', '.join(sorted(chosen))}" if chosen else "the stack"
        raise FleetError(f"destroy removes every app container, route and DNS record of {what} (databases and roles are retained); add --yes to confirm")

    policy_options: dict[str, Any] = {}
    if verb in POLICY_VERBS:
        # The same pack and the same config as the offline plan, so both give the same verdicts.

        config_file = write_policy_config(paths.CACHE_DIR / f"policy-config.{stack_name}.json", stack_name, root, evaluation=evaluation)
        policy_options = {"policy_packs": [root / "policies"], "policy_pack_configs": [str(config_file)]}

    def program() -> None:
        fleet_program(None, root / "tenants")  # the engine ignores a program's result (the offline plan reads it)

    with stack_workspace(stack_name, root) as work_dir:
        try:
            # Always the whole stack: a program without a tenant's resources would delete them.
            stack = driver.stack_for(stack_name, program, work_dir=work_dir, backend_dir=backend_dir)
            if chosen is not None:
                policy_options["target"] = _targets_of(stack, stack_name, evaluation, chosen)
            summary = driver.run(verb, stack, on_output=None if json_output else _progress(out), **policy_options)
        except driver.EngineError as error:
            raise FleetError(str(error)) from None
    if chosen is not None:
        summary["tenants"] = sorted(chosen)
    if json_output:
        json.dump(summary, out, indent=2)
        out.write("\n")
    else:
        scope = f" (tenant {', '.join(sorted(chosen))} only)" if chosen else ""
        print(f"{verb} of stack {stack_name}{scope}: {describe(summary)} ({summary['duration_s']:.1f} s)", file=out)
    return EXIT_OK


def _targets_of(stack, stack_name: str, evaluation: Evaluation, chosen: set[str]) -> list[str]:
    """The engine targets for `--tenant`: that tenant's URNs, declared or deployed; refuses what can't be targeted safely."""

    deployed = stack.export_stack().deployment.get("resources") or []
    if not deployed:
        raise FleetError(
            f"stack {stack_name} has never been deployed: run `python -m fleet up --stack {stack_name}` without --tenant first "
            "(the platform its tenants need is created with the whole stack)"
        )
    in_state = deployed_tenants(deployed)
    unknown = sorted(chosen - set(evaluation.specs) - set(in_state))
    if unknown:
        raise FleetError(
            f"--tenant {', '.join(unknown)}: not declared by stack {stack_name} and not deployed in it; "
            f"its tenants: {', '.join(sorted(set(evaluation.specs) | set(in_state))) or 'none'}"
        )
    targets = tenant_targets(evaluation, deployed, chosen)
    if not targets:  # an empty target list means "everything" to the engine
        raise FleetError(f"--tenant {', '.join(sorted(chosen))}: stack {stack_name} declares and holds nothing of it")
    return targets


def _progress(out):
    def show(line: str) -> None:
        out.write(line if line.endswith("\n") else line + "\n")
        out.flush()

    return show


def describe(summary: dict[str, Any]) -> str:
    """One line for a change summary."""
    return ", ".join(f"{kind} {count}" for kind, count in sorted(summary.get("changes", {}).items())) or "no changes"
