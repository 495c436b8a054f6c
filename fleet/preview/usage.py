"""Usage against limits in the PR summary: a change that would put a tenant's limit under what it uses is flagged.

Usage is what the app reports (the registry's `usage` jsonb column, or a JSON file of the same shape: `{tenant:
{limit: count}}`); the CLI reads it and passes it in. Limits are the tenant's business limits (fleet.model.derive.
effective_limits) and the plan's `user_limit` and `connections_limit` under those names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from fleet.errors import InputError
from fleet.model import derive
from fleet.model.spec import Fleet, TenantSpec

Usage = dict[str, dict[str, float]]


def load_usage_file(path: Path) -> Usage:
    """`{tenant: {limit: count}}` from a JSON file; raises InputError naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"--usage {path}: can't read usage ({error})") from None
    return checked_usage(data, f"--usage {path}")


def checked_usage(data: Any, where: str) -> Usage:
    """Usage as numbers per tenant and limit; raises InputError listing every malformed entry."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected an object {{tenant: {{limit: count}}}}")
    usage: Usage = {}
    problems = []
    for tenant, counts in data.items():
        if not isinstance(counts, dict):
            problems.append(f"{tenant}: not an object")
            continue
        for name, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, (int, float)) or count < 0:
                problems.append(f"{tenant}.{name}: {count!r} is not a count")
                continue
            usage.setdefault(str(tenant), {})[str(name)] = float(count)
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems))
    return usage


def counted_limits(spec: TenantSpec, fleet: Fleet) -> dict[str, Any]:
    """A tenant's limits usage can be compared with: the plan's built-in counts and its business limits."""
    plan = fleet.plan_of(spec)
    return {"user_limit": plan.user_limit, "connections_limit": plan.connections_limit, **derive.effective_limits(spec, plan)}


def usage_warnings(base: Optional[Fleet], head: Fleet, names, usage: Usage, source: str) -> list[str]:
    """One warning per limit a change lowers under the tenant's reported usage (a new tenant has none to report)."""
    warnings = []
    base_specs = {spec.name: spec for spec in base.tenants} if base is not None else {}
    head_specs = {spec.name: spec for spec in head.tenants}
    for name in sorted(names):
        spec, used = head_specs.get(name), usage.get(name)
        if spec is None or not used:
            continue
        after = counted_limits(spec, head)
        before = counted_limits(base_specs[name], base) if name in base_specs and base is not None else {}
        for limit, count in sorted(used.items()):
            value = after.get(limit)
            if value is None or isinstance(value, bool) or value == "unlimited" or value == before.get(limit):
                continue
            if count > float(value):
                was = f"{before[limit]} → " if limit in before else ""
                warnings.append(f"⚠ {name}: {limit} goes {was}{value}, below its usage of {count:g} ({source}): the app may refuse it work")
    return warnings
