"""Compare the base and the head of a change into a `Preview`, tenant by tenant.

`build_preview(root, "origin/main")` is what `python -m fleet plan --base REF` shows.
"""


from __future__ import annotations

import functools
import tempfile
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from fleet.errors import SpecError
from fleet.model.load import load_fleet
from fleet.model.offboarding import OffboardingTimer, offboarding_timer, purge_proposal, removed_file_proposal
from fleet.model.spec import Fleet, Offboarding, TenantSpec
from fleet.model.type_tokens import DATABASE
from fleet.model.waves import describe_waves, plan_waves
from fleet.offline import policies
from fleet.offline.mocks import Evaluation
from fleet.offline.plan import evaluate, stack_config
from fleet.preview.changes import (
    CREATE,
    DELETE,
    SYMBOLS,
    Preview,
    ResourceChange,
    Side,
    TenantChange,
)
from fleet.preview.diff import compare_resources
from fleet.preview.git import BaseError, export_base, file_before, program_changes, removed_files, resolve_base
from fleet.preview.usage import Usage, usage_warnings
from fleet.preview.wording import (
    cause_words,
    data_warnings,
    describe_change,
    hostnames_of,
    plan_catalog_changes,
    plan_of,
    purge_words,
    service_sizes,
    stack_config_changes,
)
from policies import fleet_policies as pack


def compare(base: Side, head: Side, *, stack: str, base_label: str, only: Optional[Iterable[str]] = None) -> Preview:
    """The tenant-level preview of deploying `head` over `base` (the policy verdicts are added by `build_preview`)."""
    preview = Preview(stack=stack, base_label=base_label)
    changes = compare_resources(base.evaluation, head.evaluation)
    base_specs: dict[str, TenantSpec] = dict(base.evaluation.specs)
    head_specs: dict[str, TenantSpec] = dict(head.evaluation.specs)
    by_tenant: dict[str, list[ResourceChange]] = {}
    for change in changes:
        if change.tenant is None:
            preview.shared.append(change)
        else:
            by_tenant.setdefault(change.tenant, []).append(change)

    config_changes = stack_config_changes(base, head)
    catalog_changes = plan_catalog_changes(base, head)
    selected = set(only) if only else None
    names = sorted(set(base_specs) | set(head_specs) | set(by_tenant))
    indirect: list[str] = []
    for name in names:
        if selected is not None and name not in selected:
            continue
        old, new = base_specs.get(name), head_specs.get(name)
        resources = by_tenant.get(name, [])
        tenant = _tenant_change(name, old, new, resources, base, head, config_changes, catalog_changes)
        if tenant is None:
            continue
        if not tenant.own_file_changed and tenant.resources:
            indirect.append(name)
        preview.tenants.append(tenant)
        preview.warnings.extend(data_warnings(tenant, old, new))

    if len(indirect) > 1:
        causes = cause_words(config_changes, catalog_changes)
        preview.warnings.append(f"⚠ one change touches {len(indirect)} tenants ({', '.join(indirect)}): {causes}")
    for change in preview.shared:
        if change.op != CREATE:
            preview.warnings.append(f"⚠ shared {change.kind} `{change.name}` {SYMBOLS[change.op]} {change.op}: every tenant that uses it is affected")
    if config_changes:
        preview.notes.append(f"stack config changed: {', '.join(config_changes)}")
    if catalog_changes:
        preview.notes.append(f"plan catalog changed: {', '.join(catalog_changes)}")
    if head.fleet is not None:
        undeclared = sorted(spec.name for spec in head.fleet.tenants if spec.name not in head_specs and spec.name in base_specs)
        if undeclared:
            preview.notes.append(f"still in tenants/ but no longer declared by stack {stack} (fleet:tenants): {', '.join(undeclared)}")
    return preview


def _plan_reaches_tenant(base_fleet: Optional[Fleet], head_fleet: Optional[Fleet], spec: TenantSpec) -> bool:
    """Whether a plan's change in the catalog changes what this tenant gets (sizes after overrides, limits)."""
    old, new = plan_of(base_fleet, spec), plan_of(head_fleet, spec)
    if old is None or new is None:
        return old is not new
    sizes = service_sizes(old, spec) != service_sizes(new, spec)
    limits = (old.user_limit, old.connections_limit, old.db_connections) != (new.user_limit, new.connections_limit, new.db_connections)
    return sizes or limits


def _tenant_change(name, old, new, resources, base: Side, head: Side, config_changes, catalog_changes) -> Optional[TenantChange]:
    if old is None and new is None:  # resources of a tenant no spec names: shouldn't happen, keep them visible
        return TenantChange(name, "changed", ["resources without a tenant spec"], resources, own_file_changed=False)
    if old is None:
        hostnames = ", ".join(hostnames_of(new, head.fleet))
        words = [f"plan {new.plan}, database on {new.database.server}, hostnames {hostnames}"]
        if new.status == "suspended":
            words.append("suspended from the start")
        if new.purge is not None:
            words.append(purge_words(new))
        return TenantChange(name, "added", words, resources, own_file_changed=True, plan=new.plan)
    if new is None:
        if old.purge is not None:
            words = ["removed; its purge was requested before"]
        else:
            words = [f"app, routes and secrets go; database retained on {old.database.server}"]
        return TenantChange(name, "removed", words, resources, own_file_changed=True, plan=old.plan)
    own_file_changed = old != new
    words = describe_change(old, new, base.fleet, head.fleet)
    retained = [change for change in resources if change.op == DELETE and change.type == DATABASE and change.retained]
    if retained and old.database.server != new.database.server:
        words.append(f"old database on {old.database.server} retained")
    if new.purge is not None and old.purge is None:
        return TenantChange(name, "purge", [purge_words(new), *words], resources, own_file_changed=True, plan=new.plan)
    if not own_file_changed:
        if not resources:
            return None
        if new.plan in catalog_changes and _plan_reaches_tenant(base.fleet, head.fleet, new) and not words:
            words.append(f"plan {new.plan} changed in the plan catalog")
        if config_changes:
            words.append(f"via the stack config ({', '.join(config_changes)})")
        if not words:
            words.append("its file is unchanged: a change outside the tenant files")
    elif not words:
        words = ["file changed, no effect on what is declared"] if not resources else ["file changed"]
    return TenantChange(name, "changed", words, resources, own_file_changed=own_file_changed, plan=new.plan)


# ---------------------------------------------------------------- policies of the head


def head_violations(head: Side) -> tuple[Optional[list[Any]], Optional[int]]:
    """The head's policy violations and the number of policies, or (None, None) when the head's spec is invalid."""
    if head.fleet is None:
        return None, None
    return policies.check(head.evaluation, head.fleet), len(pack.ALL_POLICIES)


# ---------------------------------------------------------------- reading a side


def read_side(root: Path, stack: str, tenants_dir: Path, *, new_stack_ok: bool = False) -> Side:
    """Evaluate a checkout (its tenants and Pulumi.<stack>.yaml) under mocks; raises SpecError.

    With `new_stack_ok` (the base), a checkout without the stack's config is an empty side: nothing deployed yet.
    """
    stack_path = root / f"Pulumi.{stack}.yaml"
    if new_stack_ok and not stack_path.exists():
        return Side(Evaluation(stack=stack), None)
    config = stack_config(stack, root)
    evaluation = evaluate(config, stack=stack, tenants_dir=tenants_dir)
    fleet = load_fleet(tenants_dir, config, root=tenants_dir.parent, environment_display=stack_path.name)
    raw = yaml.safe_load(stack_path.read_text(encoding="utf-8")) or {}
    return Side(evaluation, fleet, raw.get("config") or {} if isinstance(raw, dict) else {})


@functools.lru_cache(maxsize=4)
def _base_side(root: str, commit: str, stack: str, tenants_relative: str) -> Side:
    """The base evaluated by this code; a commit's files never change, so one process evaluates each once."""
    with tempfile.TemporaryDirectory(prefix="tenant-fleet-base-") as scratch:
        base_root = export_base(Path(root), commit, [tenants_relative, f"Pulumi.{stack}.yaml"], Path(scratch))
        return read_side(base_root, stack, base_root / tenants_relative, new_stack_ok=True)


def build_preview(
    root: Path,
    base_ref: str,
    *,
    stack: str = "dev",
    tenants_dir: Optional[Path] = None,
    only: Optional[Iterable[str]] = None,
    usage: Optional[Usage] = None,
    usage_source: str = "reported usage",
    today: Optional[date] = None,
) -> Preview:
    """Compare the fleet at `base_ref` with the working tree of `root`, and add the head's policy verdicts.

    Raises BaseError when the ref or the repository can't be read. A head with spec problems gives a
    preview with `problems` set (exit 2) rather than an exception, so a pull request comment can say so.
    """
    root = root.resolve()
    tenants_dir = (tenants_dir or root / "tenants").resolve()
    try:
        tenants_relative = tenants_dir.relative_to(root).as_posix()
    except ValueError:
        raise BaseError(f"with --base the tenants folder must be inside the checkout ({root}): {tenants_dir}") from None
    commit = resolve_base(root, base_ref)
    label = f"{base_ref} ({commit[:7]})" if not commit.startswith(base_ref) else commit[:7]

    try:
        head = read_side(root, stack, tenants_dir)
    except SpecError as error:
        return Preview(stack=stack, base_label=label, problems=[str(problem) for problem in error.problems])

    try:
        base: Optional[Side] = _base_side(str(root), commit, stack, tenants_relative)
        base_problems: list[str] = []
    except SpecError as error:
        base, base_problems = None, [str(problem) for problem in error.problems]

    if base is None:
        preview = Preview(stack=stack, base_label=label, base_problems=base_problems)
    else:
        preview = compare(base, head, stack=stack, base_label=label, only=only)
        if head.fleet is not None and head.fleet.environment.stacks == "per-tenant":
            rollout = head.fleet.environment.rollout
            changed = [tenant.tenant for tenant in preview.tenants if tenant.kind != "removed" and tenant.resources]
            if changed and (rollout.canary or rollout.batch != "100%"):
                preview.notes.append("rollout in waves (fleet:rollout): " + "; ".join(describe_waves(plan_waves(changed, rollout), rollout.canary)))
        if usage and head.fleet is not None:
            preview.warnings.extend(usage_warnings(base.fleet, head.fleet, [tenant.tenant for tenant in preview.tenants], usage, usage_source))
        if base.fleet is None:
            preview.notes.append(f"Pulumi.{stack}.yaml is new: nothing of this stack is deployed yet")
    code = program_changes(root, commit)
    if code:
        shown = ", ".join(code[:6]) + (f" and {len(code) - 6} more" if len(code) > 6 else "")
        preview.warnings.append(
            f"⚠ this change also edits program code ({shown}): both sides were evaluated with the new code, "
            "so what the code change itself does shows only in the engine preview"
        )
    if head.fleet is not None:
        day = today or datetime.now(timezone.utc).date()
        _offboarding(preview, head.fleet, day, tenants_relative, only)
        _removed_files(preview, head.fleet, root, commit, day, tenants_relative, only)
    preview.violations, preview.policy_count = head_violations(head)
    return preview


def _removed_files(preview: Preview, fleet: Fleet, root: Path, commit: str, today: date, tenants_folder: str, only: Optional[Iterable[str]]) -> None:
    """Tenants whose file was removed without a purge: their data is kept, and the plan's retention counts from the removal."""
    chosen = set(only) if only else None
    present = {tenant.name for tenant in fleet.tenants}
    for path, sha, day in removed_files(root, commit, tenants_folder):
        name = Path(path).stem
        if name.startswith("_") or name in present or (chosen is not None and name not in chosen):
            continue
        try:
            last = yaml.safe_load(file_before(root, sha, path)) or {}
        except (BaseError, yaml.YAMLError):
            continue
        if not isinstance(last, dict) or last.get("purge"):
            continue  # its purge was requested before the file went: nothing is kept
        plan = fleet.plans.get(str(last.get("plan")))
        timer = OffboardingTimer(name, date.fromisoformat(day), plan.offboarding.retain_days if plan else Offboarding().retain_days)
        proposal = removed_file_proposal(timer, today, path, sha)
        if proposal:
            preview.warnings.append(proposal)
        else:
            preview.notes.append(f"{name}: file removed {timer.since.isoformat()}, data kept until {timer.ends.isoformat()} ({timer.days_left(today)} days left)")


def _offboarding(preview: Preview, fleet: Fleet, today: date, tenants_folder: str, only: Optional[Iterable[str]]) -> None:
    """Offboarded tenants: the timer as a note, and once it has run out, the purge to add as a warning (never done for them)."""
    chosen = set(only) if only else None
    for tenant in fleet.tenants:
        timer = offboarding_timer(tenant, fleet.plan_of(tenant))
        if timer is None or (chosen is not None and tenant.name not in chosen):
            continue
        proposal = purge_proposal(timer, today, tenants_folder)
        if proposal:
            preview.warnings.append(proposal)
        else:
            preview.notes.append(f"{tenant.name}: {timer.describe(today)}")
