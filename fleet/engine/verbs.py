"""`python -m fleet up|preview|refresh|destroy`: validate, check plugins, then run the engine on a stack.

A missing plugin shows the offline plan instead (exit 3). `--tenant` narrows the engine's work with
its `target` option and never the program (see `fleet.engine.targets`).
"""


from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from fleet import paths
from fleet.engine import driver, fanout, plugins, recovery
from fleet.engine.kubeconfigs import set_run_kubeconfigs
from fleet.engine.plugins import required_packages
from fleet.engine.targets import deployed_tenants, tenant_targets
from fleet.errors import FleetError
from fleet.model import derive
from fleet.model.spec import Fleet, Rollout
from fleet.model.waves import describe_waves, plan_waves
from fleet.offline.mocks import Evaluation, evaluate_once
from fleet.offline.plan import plan_stack, stack_config
from fleet.offline.policies import check, format_violations, has_mandatory, load_stack_fleet, write_policy_config
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
        missing = _missing_plugins(evaluation)
    except (driver.EngineMissing, driver.EngineError) as error:
        raise FleetError(str(error)) from None
    if missing:
        shown = evaluation if chosen is None else plan_stack(stack_name, root, selection=chosen & set(evaluation.specs))
        return _offline_instead(
            missing,
            f"Not running `{verb}` on stack {stack_name}: the engine needs these plugins even to preview. "
            "Install them (commands above) and run again; meanwhile, this is what the stack declares (offline plan):",
            shown,
            out,
        )

    if verb == "destroy" and not yes:
        what = f"tenant(s) {', '.join(sorted(chosen))}" if chosen else "the stack"
        raise FleetError(f"destroy removes every app container, route and DNS record of {what} (databases and roles are retained); add --yes to confirm")

    policy_options: dict[str, Any] = {}
    if verb in POLICY_VERBS:
        # The same pack and the same config as the offline plan, so both give the same verdicts.

        config_file = write_policy_config(paths.CACHE_DIR / f"policy-config.{stack_name}.json", stack_name, root, evaluation=evaluation)
        policy_options = {"policy_packs": [paths.POLICIES_DIR], "policy_pack_configs": [str(config_file)]}

    def program() -> None:
        fleet_program(None, root / "tenants")  # the engine ignores a program's result (the offline plan reads it)

    with stack_workspace(stack_name, root) as work_dir:
        try:
            # Always the whole stack: a program without a tenant's resources would delete them.
            def say(note: str) -> None:
                print(note, file=sys.stderr)

            recovery.prepare(stack_name, driver.backend_url(backend_dir), say)
            stack = driver.stack_for(stack_name, program, work_dir=work_dir, backend_dir=backend_dir)
            set_run_kubeconfigs(stack)
            recovery.recover(stack, driver.backend_url(backend_dir), say)
            if chosen is not None:
                policy_options["target"] = _targets_of(stack, stack_name, evaluation, chosen)
            if verb == "up" and not yes:
                planned = driver.run("preview", stack, on_output=None, **policy_options)["changes"]
                confirm_destruction({stack_name: planned})
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


def _missing_plugins(evaluation: Evaluation) -> list[str]:
    """The official provider plugins the evaluated program needs and this machine lacks."""
    return plugins.missing_plugins(plugins.required_plugin_versions(sorted(required_packages(evaluation))))


def _offline_instead(missing: list[str], headline: str, shown: Evaluation, out) -> int:
    """Name the missing plugins and show the offline plan in place of an engine run."""
    print(plugins.missing_plugins_message(missing), file=sys.stderr)
    print(headline, file=sys.stderr)
    print_plan_table(shown, {name: spec.plan for name, spec in shown.specs.items()}, out)
    return EXIT_NOT_DEPLOYED


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


# ---------------------------------------------------------------- a fleet of stacks (fleet:stacks: per-tenant)


def run_fleet_verb(
    verb: str,
    environment: str,
    *,
    selection: Optional[Iterable[str]] = None,
    force_all: bool = False,
    platform_only: bool = False,
    parallel: Optional[int] = None,
    json_output: bool = False,
    yes: bool = False,
    root: Optional[Path] = None,
    backend: Optional[str] = None,
    health: Optional[Callable[[list[str]], list[str]]] = None,
    out=sys.stdout,
) -> int:
    """up/preview: the changed stacks only (platform first); refresh/destroy: every stack (or the selection).

    `platform_only`: just the platform stack `<env>` (a CI job that runs before the tenant stacks' matrix).
    An `up` under a declared `fleet:rollout` runs the tenant stacks in waves (canary, then batches); after each
    wave `health(tenants)` returns the problems found (`tenant: why`), and the first failed stack or problem
    stops the rollout there: the rest stays on what it ran, and the same command resumes."""
    root = root or PROJECT_ROOT
    started = time.monotonic()
    fleet = load_stack_fleet(environment, root)  # the whole environment is validated: raises SpecError
    fanout.require_per_tenant(fleet, environment)
    deployed = fanout.deployed_stacks(backend)
    chosen = set(selection) if selection else None
    if chosen is not None:
        known = {tenant.name for tenant in fleet.tenants} | {t for s in deployed for e, t in [derive.split_stack(s)] if e == environment and t}
        unknown = sorted(chosen - known)
        if unknown:
            raise FleetError(f"--tenant {', '.join(unknown)}: no tenant file and no stack in environment {environment}")
    if verb in ("refresh", "destroy"):
        changes = fanout.change_set(fleet, environment, root, deployed, force_all=True, only=chosen)
        changes = fanout.ChangeSet(
            environment,
            changes.platform if chosen is None and derive.platform_stack(environment) in deployed else None,
            {t: f for t, f in changes.changed.items() if derive.tenant_stack(environment, t) in deployed},
            changes.removed,
        )
    else:
        changes = fanout.change_set(fleet, environment, root, deployed, force_all=force_all, only=chosen)
    if platform_only:
        changes = fanout.ChangeSet(environment, changes.platform, unchanged=sorted(changes.changed) + changes.unchanged)
    if verb == "destroy" and not yes:
        raise FleetError(
            f"destroy removes every app container, route and DNS record of {len(changes.stacks())} stack(s) of {environment} "
            "(databases and roles are retained); add --yes to confirm"
        )
    platform_options: dict[str, Any] = {}
    if verb in ("up", "preview") and (changes.changed or changes.platform):
        code = _police(verb, environment, root, sorted(changes.changed), fleet, out)
        if code != EXIT_OK:
            return code
        if changes.platform:
            config_file = write_policy_config(paths.CACHE_DIR / f"policy-config.{environment}.json", environment, root)
            platform_options = {"policy_packs": [paths.POLICIES_DIR], "policy_pack_configs": [str(config_file)]}
    tasks = _tasks(verb, changes, root, driver.backend_url(backend), platform_options, set(deployed))
    if verb == "up" and not yes:
        previews = fanout.run_tasks(
            [dataclasses.replace(task, op="preview") for task in tasks if task.op == "up" and task.exists], parallel or fanout.default_parallel()
        )
        failed_previews = [result for result in previews if not result.ok]
        if failed_previews:
            raise FleetError("preview failed, nothing was changed:\n" + "\n".join(f"  {r.stack}: {r.error.splitlines()[0] if r.error else ''}" for r in failed_previews))
        confirm_destruction({result.stack: result.changes for result in previews}, [task.stack for task in tasks if task.op == "remove"])
    def progress(result: fanout.StackResult) -> None:
        for note in result.notes:
            print(note, file=sys.stderr)
        if not json_output:
            print(result.line(), file=out, flush=True)

    workers = parallel or fanout.default_parallel()
    stopped: Optional[str] = None
    platform_tasks = [task for task in tasks if task.stack == derive.platform_stack(environment)]
    tenant_tasks = [task for task in tasks if task not in platform_tasks]
    results = []
    if verb == "destroy":  # tenants first: the platform they attach to goes last
        results = fanout.run_tasks(tenant_tasks, workers, progress)
        if all(result.ok for result in results):
            results += fanout.run_tasks(platform_tasks, 1, progress)
    else:
        results = fanout.run_tasks(platform_tasks, 1, progress)
        if all(result.ok for result in results):
            if verb == "up" and rollout_declared(fleet.environment.rollout):
                # The wave lines go with the progress lines: stderr when the output is the JSON document.
                wave_out = sys.stderr if json_output else out
                in_waves, stopped = _run_waves(tenant_tasks, fleet.environment.rollout, environment, workers, progress, health, wave_out)
                results += in_waves
            else:
                results += fanout.run_tasks(tenant_tasks, workers, progress)
        elif tenant_tasks:
            print(f"the platform stack failed: {len(tenant_tasks)} tenant stack(s) not run", file=sys.stderr)
    failed = [result for result in results if not result.ok]
    drifted = sorted(result.stack for result in results if verb == "refresh" and result.ok and any(k != "same" for k in result.changes))
    if json_output:
        document = {
            "operation": verb,
            "environment": environment,
            "plan": changes.document(),
            "results": fanout.results_document(results),
            "failed": sorted(result.stack for result in failed),
            "stopped": stopped,
            "duration_s": round(time.monotonic() - started, 3),
        }
        if verb == "refresh":
            document["drifted"] = drifted
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        ran = len(results)
        print(
            f"{verb} of environment {environment}: {ran} stack(s) run, {len(changes.unchanged)} unchanged, "
            f"{len(failed)} failed ({time.monotonic() - started:.1f} s)",
            file=out,
        )
        if drifted:
            print(f"drifted: {', '.join(drifted)} (the next `fleet up --tenant <name>` puts them back)", file=out)
        for result in failed:
            print(f"FAILED {result.stack}: {result.error}", file=sys.stderr)
        if failed and not stopped:
            print("Run the same command again to finish: only what is not done runs.", file=sys.stderr)
    if stopped:
        print(stopped, file=sys.stderr)
    return EXIT_FAILED if failed or stopped else EXIT_OK


def rollout_declared(rollout: Rollout) -> bool:
    """Whether the environment asks for waves (a canary or batches smaller than everything)."""
    return bool(rollout.canary) or rollout.batch != "100%"


def _run_waves(tasks, rollout: Rollout, environment: str, workers: int, progress, health, out) -> tuple[list[fanout.StackResult], Optional[str]]:
    """The tenant stacks' `up` in waves: (results, why it stopped or None); stops at the first failed stack or
    unhealthy tenant (see run_fleet_verb)."""
    by_tenant = {str(derive.split_stack(task.stack)[1]): task for task in tasks if task.op == "up"}
    others = [task for task in tasks if task.op != "up"]  # removed tenants: after every wave went well
    waves = plan_waves(by_tenant, rollout)
    results: list[fanout.StackResult] = []
    for number, (wave, line) in enumerate(zip(waves, describe_waves(waves, rollout.canary)), 1):
        print(line, file=out, flush=True)
        ran = fanout.run_tasks([by_tenant[name] for name in wave], workers, progress)
        results += ran
        problems = [f"{derive.split_stack(r.stack)[1]}: {r.error.splitlines()[0] if r.error else 'failed'}" for r in ran if not r.ok]
        if not problems and health is not None:
            problems = health(wave)
        if problems:
            left = [name for later in waves[number:] for name in later]
            return results, (
                f"rollout of {environment} stopped in wave {number}: {'; '.join(problems)}. "
                f"{len(left)} tenant(s) not reached ({', '.join(left[:10])}{', ...' if len(left) > 10 else ''}) keep what they run; "
                "fix it and run the same command again: the waves resume with what is still changed."
            )
    return results + fanout.run_tasks(others, workers, progress), None


def _police(verb: str, environment: str, root: Path, tenants: list[str], fleet: Fleet, out) -> int:
    """The changed tenants, offline: plugins there, and no mandatory policy violated; nothing runs otherwise.

    The whole environment was validated already, so the program reads just these tenants' files (a shard)."""
    evaluation = evaluate_once(stack_config(environment, root), environment, root / "tenants", tenants, shard=tenants)
    driver.check_engine()
    missing = _missing_plugins(evaluation)
    if missing:
        headline = f"Not running `{verb}` on environment {environment}: the engine needs these plugins. The changed tenants, offline:"
        return _offline_instead(missing, headline, evaluation, out)
    violations = check(evaluation, fleet)
    if has_mandatory(violations):
        print(format_violations(violations), file=sys.stderr)
        raise FleetError(f"mandatory policies fail for the changed tenants of {environment}: nothing was deployed")
    return EXIT_OK


def _tasks(
    verb: str, changes: fanout.ChangeSet, root: Path, backend: str, platform_options: dict[str, Any], deployed: set[str]
) -> list[fanout.StackTask]:
    environment = changes.environment
    tasks = []

    def task(op: str, stack: str, fingerprint: Optional[str] = None, options: Optional[dict[str, Any]] = None) -> fanout.StackTask:
        return fanout.StackTask(op, stack, environment, str(root), backend, fingerprint, stack in deployed, options or {})

    if changes.platform:
        tasks.append(task(verb, derive.platform_stack(environment), changes.platform, platform_options))
    for tenant, fingerprint in sorted(changes.changed.items()):
        tasks.append(task(verb, derive.tenant_stack(environment, tenant), fingerprint))
    if verb in ("up", "destroy"):
        for tenant in changes.removed:
            tasks.append(task("remove", derive.tenant_stack(environment, tenant)))
    return tasks


DESTRUCTIVE = ("delete", "replace", "create-replacement", "delete-replaced", "discard")
"""Steps of a change summary that remove or recreate something."""


def confirm_destruction(planned: dict[str, dict[str, int]], removed: Optional[list[str]] = None) -> None:
    """Like `pulumi up`: ask before deleting or replacing anything; refuse without a terminal (CI passes --yes)."""
    lines = [
        f"  {stack}: " + ", ".join(f"{kind} {count}" for kind, count in sorted(changes.items()) if kind in DESTRUCTIVE)
        for stack, changes in sorted(planned.items())
        if any(changes.get(kind) for kind in DESTRUCTIVE)
    ]
    lines += [f"  {stack}: destroy the stack and remove it (its tenant's file is gone; databases and roles are retained)" for stack in removed or []]
    if not lines:
        return
    what = "This deletes or replaces resources:\n" + "\n".join(lines)
    if not sys.stdin.isatty():
        raise FleetError(f"{what}\nNot without a terminal to confirm it: add --yes (as CI does) once the plan above is what you want")
    print(what, file=sys.stderr)
    if input("Go ahead? [y/N] ").strip().lower() not in ("y", "yes"):
        raise FleetError("nothing was changed")
