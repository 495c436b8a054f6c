"""Tenant-level words for a change: plan and size changes, hostnames, purges and data-risk warnings.
"""


from __future__ import annotations

from typing import Any, Optional

from fleet.model import derive
from fleet.model.spec import Fleet, Size, TenantSpec
from fleet.model.type_tokens import PLACEMENT, PURGE
from fleet.preview.changes import (
    CREATE,
    DATA_TYPES,
    DELETE,
    REPLACE,
    Side,
    TenantChange,
)

# ---------------------------------------------------------------- words for a tenant (from the specs)


def _number(value: float) -> str:
    return f"{value:g}"


def service_sizes(plan, spec: TenantSpec) -> dict[str, Size]:
    """A tenant's app sizes by service (backend and frontend, or its plan's named services)."""
    names = list(plan.services) if plan.services else list(derive.APP_ROLES)
    return {name: derive.container_size(plan, spec, name) for name in names}


def size_words(base_plan, base_spec: TenantSpec, head_plan, head_spec: TenantSpec) -> list[str]:
    words = []
    old_sizes, new_sizes = service_sizes(base_plan, base_spec), service_sizes(head_plan, head_spec)
    for role in [*old_sizes, *[name for name in new_sizes if name not in old_sizes]]:
        if role not in old_sizes or role not in new_sizes:
            words.append(f"service {role} {'added' if role in new_sizes else 'removed'}")
            continue
        old, new = old_sizes[role], new_sizes[role]
        parts = []
        if old.memory_mb != new.memory_mb:
            parts.append(f"{old.memory_mb} → {new.memory_mb} MB")
        if old.cpu != new.cpu:
            parts.append(f"{_number(old.cpu)} → {_number(new.cpu)} CPU")
        if old.replicas != new.replicas:
            parts.append(f"{old.replicas} → {new.replicas} replicas")
        if parts:
            words.append(f"{role} {', '.join(parts)}")
    return words


def plan_of(fleet: Optional[Fleet], spec: TenantSpec):
    return fleet.plans.get(spec.plan) if fleet is not None else None


def describe_change(base_spec: TenantSpec, head_spec: TenantSpec, base_fleet: Optional[Fleet], head_fleet: Optional[Fleet]) -> list[str]:
    """The change of one tenant's file in words: plan, size, server, status, secrets, domains, branding."""
    words: list[str] = []
    base_plan, head_plan = plan_of(base_fleet, base_spec), plan_of(head_fleet, head_spec)
    sizes = size_words(base_plan, base_spec, head_plan, head_spec) if base_plan is not None and head_plan is not None else []
    if base_spec.plan != head_spec.plan:
        words.append(f"plan {base_spec.plan} → {head_spec.plan}" + (f" ({'; '.join(sizes)})" if sizes else ""))
    elif sizes:
        cause = "override" if base_spec.overrides != head_spec.overrides else "plan catalog"
        words.append(f"resized: {'; '.join(sizes)} ({cause})")
    if base_spec.database.server != head_spec.database.server:
        words.append(f"moved {base_spec.database.server} → {head_spec.database.server} (data copy, downtime)")
    if base_spec.status != head_spec.status:
        words.append(
            {
                "suspended": "suspended (app stopped, logins refused; data kept)",
                "offboarded": f"offboarded (app stopped, logins refused; data kept until its purge is proposed, from {head_spec.offboarded_on})",
            }.get(head_spec.status, "resumed")
        )
    if base_spec.rotation != head_spec.rotation:
        words.append(f"secrets rotated (rotation {base_spec.rotation} → {head_spec.rotation})")
    added = [domain for domain in head_spec.custom_domains if domain not in base_spec.custom_domains]
    removed = [domain for domain in base_spec.custom_domains if domain not in head_spec.custom_domains]
    if added:
        words.append(f"domains added: {', '.join(added)}")
    if removed:
        words.append(f"domains removed: {', '.join(removed)}")
    if base_spec.branding != head_spec.branding:
        fields = [name for name in type(head_spec.branding).model_fields if getattr(base_spec.branding, name) != getattr(head_spec.branding, name)]
        words.append(f"branding changed ({', '.join(fields)})")
    if base_spec.display_name != head_spec.display_name:
        words.append("display name changed")
    return words


def hostnames_of(spec: TenantSpec, fleet: Optional[Fleet]) -> list[str]:
    return derive.hostnames(spec, fleet.environment) if fleet is not None else list(spec.custom_domains)


def purge_words(spec: TenantSpec) -> str:
    reason = f" (reason: {spec.purge.reason})" if spec.purge is not None and spec.purge.reason else ""
    return f"PURGE: data will be dropped after a final backup{reason}"


# ---------------------------------------------------------------- the tenant-level preview


def stack_config_changes(base: Side, head: Side) -> list[str]:
    """Config keys of Pulumi.<stack>.yaml that changed (dotted paths; encrypted ones marked, never their values)."""

    def flatten(value: Any, prefix: str) -> dict[str, Any]:
        if isinstance(value, dict) and set(value) != {"secure"}:
            flat: dict[str, Any] = {}
            for key, item in value.items():
                flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
            return flat or {prefix: {}}
        return {prefix: value}

    old, new = flatten(base.stack_file, ""), flatten(head.stack_file, "")
    changed = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            secret = isinstance(old.get(key), dict) or isinstance(new.get(key), dict)
            changed.append(f"{key} (secret)" if secret else key)
    return changed


def plan_catalog_changes(base: Side, head: Side) -> list[str]:
    if base.fleet is None or head.fleet is None:
        return []
    names = set(base.fleet.plans) | set(head.fleet.plans)
    return sorted(name for name in names if base.fleet.plans.get(name) != head.fleet.plans.get(name))


def cause_words(config_changes: list[str], catalog_changes: list[str]) -> str:
    causes = []
    if catalog_changes:
        causes.append(f"plan catalog ({', '.join(catalog_changes)})")
    if config_changes:
        causes.append(f"stack config ({', '.join(config_changes)})")
    return " and ".join(causes) or "a change outside the tenant files"


def data_warnings(tenant: TenantChange, old: Optional[TenantSpec], new: Optional[TenantSpec]) -> list[str]:
    """A ⚠ line for a purge and for every replacement or deletion of a database, role or password."""
    warnings = []
    purge = tenant.kind == "purge" or (tenant.kind == "added" and new is not None and new.purge is not None)
    if purge:
        warnings.append(f"⚠ {tenant.tenant}: PURGE: database and role will be dropped after a final backup")
    if old is not None and new is not None and old.database.server != new.database.server:
        if any(change.type == PLACEMENT for change in tenant.resources):
            warnings.append(
                f"⚠ {tenant.tenant}: database moves {old.database.server} → {new.database.server}: downtime while the data is copied; "
                f"the old database stays on {old.database.server}"
            )
        else:
            warnings.append(
                f"⚠ {tenant.tenant}: database moves {old.database.server} → {new.database.server} but no data copy is declared: "
                f"the app would start on an EMPTY database on {new.database.server} (the old one stays on {old.database.server})"
            )
    for change in tenant.resources:
        if change.type == PURGE and change.op == CREATE and purge:
            continue  # said above, once
        if change.type == PURGE and change.op == CREATE:
            warnings.append(f"⚠ {tenant.tenant}: + {change.kind} `{change.name}`: drops the tenant's data after a final backup")
            continue
        label = DATA_TYPES.get(change.type)
        if label is None or change.op not in (REPLACE, DELETE):
            continue
        if change.op == DELETE and change.retained:
            continue  # not data loss: the engine leaves it on the server ("retained" in the words)
        if change.op == DELETE and purge:
            continue  # the PURGE line says it all
        if change.op == REPLACE:
            why = ", ".join(change.replace_keys) or "new inputs"
            if change.caused_by:
                why += f"; because {', '.join(change.caused_by)} is new"
            consequence = {
                "database": "a NEW, EMPTY database",
                "role": "a new role",
                "password": "a new value, whatever uses it restarts with it",
            }[label]
            warnings.append(f"⚠ {tenant.tenant}: ± {label} `{change.name}` replaced ({why}): {consequence}")
        else:
            consequence = {
                "database": "DROP DATABASE, the data is gone",
                "role": "DROP ROLE",
                "password": "the stack forgets its value",
            }[label]
            warnings.append(f"⚠ {tenant.tenant}: − {label} `{change.name}` deleted: {consequence}")
    return warnings
