"""Pull-request previews: what a change to the fleet does to each tenant, offline.

`python -m fleet plan --base <git ref>` evaluates the fleet declared at `<ref>` and the one in the
working tree, both through the real program under mocks (fleet.plan.evaluate), and compares them
resource by resource: only in the head is a create, only in the base a delete, different inputs an
update or a replacement (REPLACE_RULES, the provider knowledge of which inputs force a new
resource). The comparison is then told per tenant, in words taken from the two TenantSpecs and
fleet.derive (plan basic → pro, moved shared-1 → dedicated-1, suspended, secrets rotated...), with a
⚠ line for whatever risks data or reaches more than one tenant, and rendered as text, Markdown (the
pull-request comment) or JSON.

The base is read through THIS checkout's code with the base's own files (`tenants/` and
`Pulumi.<stack>.yaml`, exported with `git archive`): both sides are then derived the same way, so
the summary shows what the change of the files does, and a base commit that predates the CLI still
works. The price: a change of the program code itself is the same on both sides and shows no
difference here; the summary says so when the pull request touches program code, and the engine
preview (CI, where the secrets are) has the last word.

Secrets: inputs are compared revealed (Declared.raw_inputs) but only input NAMES are ever printed
for secret inputs; the words come from the specs, which hold no secret.
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from fleet import derive
from fleet.plan import Declared, Evaluation, evaluate, stack_config
from fleet.spec import Fleet, SpecError, TenantSpec, load_fleet

# ---------------------------------------------------------------- resource types

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
DATABASE = "postgresql:index/database:Database"
ROLE = "postgresql:index/role:Role"
GRANT = "postgresql:index/grant:Grant"
PASSWORD = "random:index/randomPassword:RandomPassword"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
CADDY_ROUTE = "pulumi-python:dynamic/caddy:CaddyRoute"
CADDY_SERVER = "pulumi-python:dynamic/caddy:CaddyServer"
PLACEMENT = "pulumi-python:dynamic/postgres:DatabasePlacement"
PURGE = "pulumi-python:dynamic/postgres:TenantPurge"

# Data-bearing resources: replacing or deleting one is worth a ⚠ line of its own.
DATA_TYPES = {DATABASE: "database", ROLE: "role", PASSWORD: "password"}


@dataclass(frozen=True)
class ReplaceRule:
    """Which changed inputs of a resource type force a new resource (the rest are updated in place).

    Either `replace` lists the replace-forcing inputs, or `in_place` lists the only inputs that are
    updated in place (every other input forces a replacement).
    """

    replace: frozenset[str] = frozenset()
    in_place: Optional[frozenset[str]] = None
    compared: Optional[frozenset[str]] = None
    """When set, the provider's diff looks at these inputs only; a change of any other is no change."""

    def forces_replace(self, key: str) -> bool:
        if self.in_place is not None:
            return key not in self.in_place
        return key in self.replace

    def counts(self, key: str) -> bool:
        return self.compared is None or key in self.compared


# THE table of replace-forcing inputs, by resource type (input names as the program declares them:
# camelCase for bridged providers, snake_case for the project's dynamic providers). Sources:
# PULUMI-NOTES ("Containers", "Data safety") and the providers' own diff.
REPLACE_RULES: dict[str, ReplaceRule] = {
    # Only these are updated in place on a running container; envs, labels, networksAdvanced, ports,
    # uploads, image, name, cpus, command, volumes/mounts, healthcheck... start a new container.
    CONTAINER: ReplaceRule(in_place=frozenset({"memory", "memorySwap", "memoryReservation", "cpuShares", "cpuSet", "restart"})),
    NETWORK: ReplaceRule(in_place=frozenset()),
    DATABASE: ReplaceRule(replace=frozenset({"name", "template", "encoding", "lcCollate", "lcCtype"})),
    ROLE: ReplaceRule(),  # name, password, login, connection limit: ALTER ROLE in place
    GRANT: ReplaceRule(in_place=frozenset()),
    PASSWORD: ReplaceRule(in_place=frozenset()),  # keepers, length, special...: a new value
    DNS_RECORD: ReplaceRule(replace=frozenset({"zoneId", "type"})),
    # The same as CaddyRouteProvider._REPLACE / CaddyServerProvider._REPLACE (a test keeps them equal).
    CADDY_ROUTE: ReplaceRule(replace=frozenset({"admin_url", "server", "route_id"})),
    CADDY_SERVER: ReplaceRule(replace=frozenset({"admin_url", "server"})),
    # A server change is an UPDATE that moves the data; admin passwords and other servers' entries are
    # not compared (DatabasePlacementProvider._TRACKED; a test keeps them equal).
    PLACEMENT: ReplaceRule(compared=frozenset({"tenant", "database", "role", "server", "host", "port"})),
    # A purge happens once: its diff never reports a change.
    PURGE: ReplaceRule(compared=frozenset()),
}
DEFAULT_RULE = ReplaceRule()
"""Types not in the table (providers, resources added later): an update; the engine preview knows better."""

# Inputs that carry no desired state (the dynamic providers' name carrier).
IGNORED_INPUTS = frozenset({"resource_name"})

CREATE, UPDATE, REPLACE, DELETE = "create", "update", "replace", "delete"
SYMBOLS = {CREATE: "+", UPDATE: "~", REPLACE: "±", DELETE: "−"}
OP_ORDER = (CREATE, UPDATE, REPLACE, DELETE)

# Files whose change alters what the program declares (compared to the base, with this code on both sides).
PROGRAM_PATHS = ("components/", "fleet/program.py", "fleet/derive.py", "fleet/spec.py", "__main__.py", "requirements.txt")


def short_type(type_: str) -> str:
    """`docker:index/container:Container` -> `Container`."""
    return type_.rsplit(":", 1)[-1]


# ---------------------------------------------------------------- the comparison


@dataclass
class ResourceChange:
    """One resource that a deploy would create, update, replace or delete."""

    op: str
    type: str
    name: str
    tenant: Optional[str]
    keys: tuple[str, ...] = ()
    """Inputs that differ (update, replace)."""
    replace_keys: tuple[str, ...] = ()
    """The inputs among `keys` that force the replacement."""
    secret_keys: frozenset[str] = frozenset()
    retained: bool = False
    """A delete the engine skips on the server (retain_on_delete): the data stays."""
    caused_by: tuple[str, ...] = ()
    """Replaced resources whose new outputs (a new password, a new port) change this one's inputs."""
    values: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Old and new value of changed non-secret scalar inputs, for people."""

    @property
    def kind(self) -> str:
        return short_type(self.type)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"op": self.op, "type": self.type, "name": self.name}
        if self.keys:
            doc["inputs"] = list(self.keys)
        if self.replace_keys:
            doc["replace_on"] = list(self.replace_keys)
        if self.caused_by:
            doc["caused_by"] = list(self.caused_by)
        if self.retained:
            doc["retained"] = True
        return doc


@dataclass
class TenantChange:
    """What happens to one tenant: its kind of change, the words for it, its resource changes."""

    tenant: str
    kind: str
    """`added`, `removed`, `purge` or `changed`."""
    words: list[str]
    resources: list[ResourceChange]
    own_file_changed: bool
    plan: Optional[str] = None

    def counts(self) -> dict[str, int]:
        return {op: sum(1 for change in self.resources if change.op == op) for op in OP_ORDER}


@dataclass
class Preview:
    """The tenant-level comparison of a base and a head, with the head's policy verdicts."""

    stack: str
    base_label: str
    tenants: list[TenantChange] = field(default_factory=list)
    shared: list[ResourceChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    violations: Optional[list[Any]] = None
    """The head's policy violations (fleet.policy_check.Violation); None when the check is unavailable."""
    policy_count: Optional[int] = None
    problems: list[str] = field(default_factory=list)
    """The head's spec problems (then nothing else was compared, exit 2)."""
    base_problems: list[str] = field(default_factory=list)
    """The base could not be read by this code (then no comparison, only the head's verdicts)."""

    @property
    def exit_code(self) -> int:
        """0 clean, 1 a mandatory policy fails, 2 the head's spec is invalid (as `fleet plan`)."""
        if self.problems:
            return 2
        if self.violations and any(getattr(violation, "mandatory", False) for violation in self.violations):
            return 1
        return 0

    def resource_changes(self) -> list[ResourceChange]:
        return [change for tenant in self.tenants for change in tenant.resources] + self.shared


@dataclass
class Side:
    """One side of the comparison: what the program declares, and the validated fleet it came from."""

    evaluation: Evaluation
    fleet: Optional[Fleet]
    """None when the side has no stack config (a new stack: nothing deployed yet)."""
    stack_file: dict[str, Any] = field(default_factory=dict)
    """The raw `config:` of Pulumi.<stack>.yaml, to tell which keys (secret ones too) changed."""


def _key(resource: Declared) -> tuple[str, str]:
    return (resource.type, resource.name)


def _inputs(resource: Declared) -> dict[str, Any]:
    return {key: value for key, value in resource.raw_inputs.items() if key not in IGNORED_INPUTS}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _diff_resource(base: Declared, head: Declared) -> Optional[ResourceChange]:
    """Update, replace or nothing, from the inputs that differ and REPLACE_RULES."""
    old, new = _inputs(base), _inputs(head)
    rule = REPLACE_RULES.get(head.type, DEFAULT_RULE)
    keys = tuple(sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key) and rule.counts(key)))
    provider_changed = (base.provider or "").rsplit("::", 1)[0] != (head.provider or "").rsplit("::", 1)[0]
    if not keys and not provider_changed:
        return None
    replace_keys = tuple(key for key in keys if rule.forces_replace(key))
    if provider_changed and head.custom and not head.type.startswith("pulumi:providers:"):
        replace_keys = (*replace_keys, "(provider)")
    secret = frozenset(base.secret_inputs | head.secret_inputs)
    change = ResourceChange(
        op=REPLACE if replace_keys else UPDATE,
        type=head.type,
        name=head.name,
        tenant=head.tenant,
        keys=keys,
        replace_keys=replace_keys,
        secret_keys=secret,
    )
    change.values = {key: (old.get(key), new.get(key)) for key in keys if key not in secret and _is_scalar(old.get(key)) and _is_scalar(new.get(key))}
    return change


# -- propagation: a replaced resource gets new outputs (a new password, a new published port), and
# whatever consumes them changes with it. Under mocks the outputs are deterministic, so the two sides
# look alike; follow the values the mocks invent into the inputs of dependents, as the engine would.


def _leaves(value: Any) -> set:
    if isinstance(value, dict):
        return set().union(*(_leaves(item) for item in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_leaves(item) for item in value)) if value else set()
    return {value} if isinstance(value, (str, int)) and not isinstance(value, bool) else set()


def _invented_values(resource: Declared) -> set:
    """Values the mock provider made up for this resource (its id and computed outputs)."""
    try:
        from pulumi.runtime.mocks import MockResourceArgs

        from fleet.plan import FleetMocks

        resource_id, outputs = FleetMocks().new_resource(
            MockResourceArgs(typ=resource.type, name=resource.name, inputs=dict(resource.raw_inputs), provider=resource.provider, resource_id=None, custom=True)
        )
    except Exception:  # noqa: BLE001 - a mock we can't replay only loses the propagation
        return set()
    inputs = resource.raw_inputs
    invented = {resource_id} if resource_id else set()
    for key, value in (outputs or {}).items():
        if inputs.get(key) != value:
            invented |= _leaves(value) - _leaves(inputs.get(key))
    return {value for value in invented if len(str(value)) >= 4}


def _mentions(value: Any, invented: set) -> bool:
    for leaf in _leaves(value):
        for mark in invented:
            if leaf == mark:
                return True
            if isinstance(leaf, str):
                text = str(mark)
                if isinstance(mark, int):
                    if re.search(rf"(?<!\d){text}(?!\d)", leaf):
                        return True
                elif text in leaf:
                    return True
    return False


def _propagate(changes: dict[tuple[str, str], ResourceChange], base: dict, head: dict) -> None:
    queue = [key for key, change in changes.items() if change.op == REPLACE]
    dependents: dict[str, list[Declared]] = {}
    for resource in head.values():
        for urn in resource.options.get("dependencies", []):
            dependents.setdefault(urn, []).append(resource)
    while queue:
        source = head[queue.pop(0)]
        invented = _invented_values(source)
        if not invented:
            continue
        for dependent in dependents.get(source.urn, []):
            key = _key(dependent)
            if key not in base:
                continue
            rule = REPLACE_RULES.get(dependent.type, DEFAULT_RULE)
            touched = tuple(name for name, value in _inputs(dependent).items() if rule.counts(name) and _mentions(value, invented))
            if not touched:
                continue
            change = changes.get(key)
            if change is None:
                change = ResourceChange(op=UPDATE, type=dependent.type, name=dependent.name, tenant=dependent.tenant, secret_keys=frozenset(dependent.secret_inputs))
                changes[key] = change
            was_replace = change.op == REPLACE
            change.keys = tuple(sorted(set(change.keys) | set(touched)))
            change.replace_keys = tuple(sorted(set(change.replace_keys) | {name for name in touched if rule.forces_replace(name)}))
            change.caused_by = tuple(sorted(set(change.caused_by) | {source.name}))
            for name in touched:
                change.values.pop(name, None)  # the new value is only known after the deploy
            if change.replace_keys:
                change.op = REPLACE
                if not was_replace:
                    queue.append(key)


def compare_resources(base: Evaluation, head: Evaluation) -> list[ResourceChange]:
    """Every custom resource a deploy of `head` over `base` would create, update, replace or delete."""
    old = {_key(resource): resource for resource in base.resources if resource.custom}
    new = {_key(resource): resource for resource in head.resources if resource.custom}
    changes: dict[tuple[str, str], ResourceChange] = {}
    for key, resource in new.items():
        if key not in old:
            changes[key] = ResourceChange(op=CREATE, type=resource.type, name=resource.name, tenant=resource.tenant)
        else:
            change = _diff_resource(old[key], resource)
            if change is not None:
                changes[key] = change
    for key, resource in old.items():
        if key not in new:
            changes[key] = ResourceChange(
                op=DELETE, type=resource.type, name=resource.name, tenant=resource.tenant, retained=bool(resource.options.get("retainOnDelete"))
            )
    _propagate(changes, old, new)
    return sorted(changes.values(), key=lambda change: (change.tenant or "", OP_ORDER.index(change.op), change.type, change.name))


# ---------------------------------------------------------------- words for a tenant (from the specs)


def _number(value: float) -> str:
    return f"{value:g}"


def _size_words(base_plan, base_spec: TenantSpec, head_plan, head_spec: TenantSpec) -> list[str]:
    words = []
    for role in derive.APP_ROLES:
        old = derive.container_size(base_plan, base_spec, role)
        new = derive.container_size(head_plan, head_spec, role)
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


def _plan_of(fleet: Optional[Fleet], spec: TenantSpec):
    return fleet.plans.get(spec.plan) if fleet is not None else None


def describe_change(base_spec: TenantSpec, head_spec: TenantSpec, base_fleet: Optional[Fleet], head_fleet: Optional[Fleet]) -> list[str]:
    """The change of one tenant's file in words: plan, size, server, status, secrets, domains, branding."""
    words: list[str] = []
    base_plan, head_plan = _plan_of(base_fleet, base_spec), _plan_of(head_fleet, head_spec)
    sizes = _size_words(base_plan, base_spec, head_plan, head_spec) if base_plan is not None and head_plan is not None else []
    if base_spec.plan != head_spec.plan:
        words.append(f"plan {base_spec.plan} → {head_spec.plan}" + (f" ({'; '.join(sizes)})" if sizes else ""))
    elif sizes:
        cause = "override" if base_spec.overrides != head_spec.overrides else "plan catalog"
        words.append(f"resized: {'; '.join(sizes)} ({cause})")
    if base_spec.database.server != head_spec.database.server:
        words.append(f"moved {base_spec.database.server} → {head_spec.database.server} (data copy, downtime)")
    if base_spec.status != head_spec.status:
        words.append("suspended (app stopped, logins refused; data kept)" if head_spec.status == "suspended" else "resumed")
    if base_spec.rotation != head_spec.rotation:
        words.append(f"secrets rotated (rotation {base_spec.rotation} → {head_spec.rotation})")
    added = [domain for domain in head_spec.domains if domain not in base_spec.domains]
    removed = [domain for domain in base_spec.domains if domain not in head_spec.domains]
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


def _hostnames(spec: TenantSpec, fleet: Optional[Fleet]) -> list[str]:
    return derive.hostnames(spec, fleet.environment) if fleet is not None else list(spec.domains)


def _purge_words(spec: TenantSpec) -> str:
    reason = f" (reason: {spec.purge.reason})" if spec.purge is not None and spec.purge.reason else ""
    return f"PURGE: data will be dropped after a final backup{reason}"


# ---------------------------------------------------------------- the tenant-level preview


def _stack_config_changes(base: Side, head: Side) -> list[str]:
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


def _plan_catalog_changes(base: Side, head: Side) -> list[str]:
    if base.fleet is None or head.fleet is None:
        return []
    names = set(base.fleet.plans) | set(head.fleet.plans)
    return sorted(name for name in names if base.fleet.plans.get(name) != head.fleet.plans.get(name))


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

    config_changes = _stack_config_changes(base, head)
    catalog_changes = _plan_catalog_changes(base, head)
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
        preview.warnings.extend(_data_warnings(tenant, old, new))

    if len(indirect) > 1:
        causes = _causes(config_changes, catalog_changes)
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
    old, new = _plan_of(base_fleet, spec), _plan_of(head_fleet, spec)
    if old is None or new is None:
        return old is not new
    sizes = any(derive.container_size(old, spec, role) != derive.container_size(new, spec, role) for role in derive.APP_ROLES)
    limits = (old.user_limit, old.connections_limit, old.db_connections) != (new.user_limit, new.connections_limit, new.db_connections)
    return sizes or limits


def _causes(config_changes: list[str], catalog_changes: list[str]) -> str:
    causes = []
    if catalog_changes:
        causes.append(f"plan catalog ({', '.join(catalog_changes)})")
    if config_changes:
        causes.append(f"stack config ({', '.join(config_changes)})")
    return " and ".join(causes) or "a change outside the tenant files"


def _tenant_change(name, old, new, resources, base: Side, head: Side, config_changes, catalog_changes) -> Optional[TenantChange]:
    if old is None and new is None:  # resources of a tenant no spec names: shouldn't happen, keep them visible
        return TenantChange(name, "changed", ["resources without a tenant spec"], resources, own_file_changed=False)
    if old is None:
        hostnames = ", ".join(_hostnames(new, head.fleet))
        words = [f"plan {new.plan}, database on {new.database.server}, hostnames {hostnames}"]
        if new.status == "suspended":
            words.append("suspended from the start")
        if new.purge is not None:
            words.append(_purge_words(new))
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
        return TenantChange(name, "purge", [_purge_words(new), *words], resources, own_file_changed=True, plan=new.plan)
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


def _data_warnings(tenant: TenantChange, old: Optional[TenantSpec], new: Optional[TenantSpec]) -> list[str]:
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


# ---------------------------------------------------------------- policies of the head


def policy_module():
    """fleet.policy_check when it is there (it is written alongside this module), else None."""
    try:
        from fleet import policy_check
    except ImportError:
        return None
    return policy_check if hasattr(policy_check, "check") else None


def head_violations(head: Side) -> tuple[Optional[list[Any]], Optional[int]]:
    """The head's policy violations and the number of policies, or (None, None) without a policy check."""
    policy_check = policy_module()
    if policy_check is None or head.fleet is None:
        return None, None
    violations = policy_check.check(head.evaluation, head.fleet)
    pack = getattr(policy_check, "pack", None)
    count = len(pack.ALL_POLICIES) if pack is not None and hasattr(pack, "ALL_POLICIES") else None
    return violations, count


# ---------------------------------------------------------------- git: the base's files


class BaseError(Exception):
    """The base can't be read from git (unknown ref, not a git checkout...): a command-line problem."""


def _git(root: Path, *args: str, binary: bool = False) -> Any:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise BaseError("git is not installed") from None
    if result.returncode != 0:
        raise BaseError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout if binary else result.stdout.decode()


def resolve_base(root: Path, ref: str) -> str:
    """The commit a base ref names (a branch, tag, sha, `HEAD~1`...)."""
    if not ref or ref.startswith("-"):
        raise BaseError(f"not a git ref: {ref!r}")
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except BaseError:
        raise BaseError(
            f"base {ref!r} is not a commit of the repository at {root} "
            "(in CI, fetch it: actions/checkout with fetch-depth: 0, or `git fetch origin <branch>`)"
        ) from None


def export_base(root: Path, commit: str, relative_paths: list[str], dest: Path) -> Path:
    """Extract the given paths (relative to `root`) as they are at `commit` into `dest`; returns the base's root in it."""
    prefix = _git(root, "rev-parse", "--show-prefix").strip()
    wanted = [f"{prefix}{path}" for path in relative_paths]
    present = [path for path in wanted if _git(root, "ls-tree", "--name-only", commit, "--", path).strip()]
    if present:
        archive = _git(root, "archive", "--format=tar", commit, "--", *present, binary=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    base_root = dest / prefix if prefix else dest
    base_root.mkdir(parents=True, exist_ok=True)
    return base_root


def program_changes(root: Path, commit: str) -> list[str]:
    """Program files (not tenant files) that differ between `commit` and the working tree."""
    try:
        changed = _git(root, "diff", "--name-only", "--relative", commit, "--").split()
        changed += _git(root, "ls-files", "--others", "--exclude-standard").split()
    except BaseError:
        return []
    return sorted({path for path in changed if path.startswith(PROGRAM_PATHS)})


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


def build_preview(root: Path, base_ref: str, *, stack: str = "dev", tenants_dir: Optional[Path] = None, only: Optional[Iterable[str]] = None) -> Preview:
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
        if base.fleet is None:
            preview.notes.append(f"Pulumi.{stack}.yaml is new: nothing of this stack is deployed yet")
    code = program_changes(root, commit)
    if code:
        shown = ", ".join(code[:6]) + (f" and {len(code) - 6} more" if len(code) > 6 else "")
        preview.warnings.append(
            f"⚠ this change also edits program code ({shown}): both sides were evaluated with the new code, "
            "so what the code change itself does shows only in the engine preview"
        )
    preview.violations, preview.policy_count = head_violations(head)
    return preview


# ---------------------------------------------------------------- rendering


KIND_LABELS = {"added": "+ added", "removed": "− removed", "purge": "− PURGE", "changed": "~ changed"}
DETAILS_INLINE_MAX = 8
"""A one-tenant change with at most this many resource changes lists them inline; more go in <details>."""
TABLE_INLINE_MAX = 10
"""More tenants than this and the tenant table goes in <details> too (the headline and ⚠ lines stay visible)."""
MAX_DETAIL_LINES = 400
"""Resource lines in Markdown beyond this are cut (a PR comment holds 65,536 characters)."""


def format_counts(counts: dict[str, int]) -> str:
    """`+9 ~1 ±2 −8`, zeros left out; `no resource change` when all are zero."""
    parts = [f"{SYMBOLS[op]}{counts[op]}" for op in OP_ORDER if counts.get(op)]
    return " ".join(parts) or "no resource change"


def _value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_resource(change: ResourceChange) -> str:
    """`± santarita-backend-0 (Container): replace on cpus 0.5 → 1; in place memory 512 → 1024` (secret values never shown)."""
    text = f"{SYMBOLS[change.op]} {change.name} ({change.kind})"
    if change.op == DELETE and change.retained:
        return f"{text}: retained on the server"
    if change.op in (CREATE, DELETE):
        return text

    def shown(key: str) -> str:
        if key in change.values:
            old, new = change.values[key]
            return f"{key} {_value(old)} → {_value(new)}"
        return f"{key} (secret)" if key in change.secret_keys else key

    forcing = [shown(key) for key in change.replace_keys if key in change.keys] + [key for key in change.replace_keys if key not in change.keys]
    others = [shown(key) for key in change.keys if key not in change.replace_keys]
    if change.op == REPLACE:
        detail = f"replace on {', '.join(forcing)}" + (f"; in place {', '.join(others)}" if others else "")
    else:
        detail = ", ".join(others)
    if change.caused_by:
        detail += f" (new {', '.join(change.caused_by)})"
    return f"{text}: {detail}"


HEADLINE_KINDS = (("added", "added"), ("removed", "removed"), ("purge", "PURGE"), ("changed", "changed"))


def _headline(preview: Preview) -> str:
    if not preview.tenants:
        return "no tenant changes" + (" (shared resources change)" if preview.shared else "")
    noun = "1 tenant changes" if len(preview.tenants) == 1 else f"{len(preview.tenants)} tenants change"
    parts = []
    for kind, label in HEADLINE_KINDS:
        names = [tenant.tenant for tenant in preview.tenants if tenant.kind == kind]
        if names:
            parts.append(f"{label} {', '.join(names)}")
    return f"{noun}: {'; '.join(parts)}"


def _verdict_text(preview: Preview) -> list[str]:
    if preview.violations is None:
        return ["Policies: not checked (fleet.policy_check is not available in this checkout)."]
    policy_check = policy_module()
    if policy_check is not None and hasattr(policy_check, "format_violations"):
        return policy_check.format_violations(preview.violations, preview.policy_count).splitlines()
    return [f"Policies: {len(preview.violations)} violation(s)."]


def render_text(preview: Preview) -> str:
    """The preview for a terminal."""
    lines = [f"Fleet plan: stack {preview.stack}, base {preview.base_label} → working tree (offline, under mocks)"]
    if preview.problems:
        lines.append(f"The head's fleet spec is invalid ({len(preview.problems)} problem(s)); nothing was compared:")
        lines += [f"  - {problem}" for problem in preview.problems]
        return "\n".join(lines) + "\n"
    if preview.base_problems:
        lines.append("The base can't be read by this checkout's code, so there is no comparison:")
        lines += [f"  - {problem}" for problem in preview.base_problems]
    else:
        lines.append(_headline(preview))
    for tenant in preview.tenants:
        lines.append("")
        lines.append(f"{KIND_LABELS[tenant.kind]} {tenant.tenant}: {'; '.join(tenant.words)}  [{format_counts(tenant.counts())}]")
        lines += [f"    {describe_resource(change)}" for change in tenant.resources]
    if preview.shared:
        lines.append("")
        lines.append(f"shared: [{format_counts({op: sum(1 for c in preview.shared if c.op == op) for op in OP_ORDER})}]")
        lines += [f"    {describe_resource(change)}" for change in preview.shared]
    if preview.warnings:
        lines.append("")
        lines += preview.warnings
    if preview.notes:
        lines.append("")
        lines += [f"note: {note}" for note in preview.notes]
    lines.append("")
    lines += _verdict_text(preview)
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """Text as an inline code span of a list item (entities are not decoded there: only backticks need care)."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def _md_label(label: str) -> str:
    """`origin/main (1a2b3c4)` -> `` `origin/main` (1a2b3c4) ``."""
    ref, _, commit = label.partition(" ")
    return f"`{ref}` {commit}".strip()


def _md(text: str) -> str:
    """Text for a Markdown table cell or list item."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _md_policies(preview: Preview) -> list[str]:
    """The head's policy verdict, violations grouped by tenant (mandatory first); many go in <details>."""
    if preview.violations is None:
        return ["**Policies:** not checked (`fleet.policy_check` is not available)"]
    count = f" {preview.policy_count}" if preview.policy_count else ""
    if not preview.violations:
        return [f"**Policies:** ✅ all{count} passed"]
    mandatory = sum(1 for violation in preview.violations if violation.mandatory)
    advisory = len(preview.violations) - mandatory
    verdict = "❌ a deploy would be refused" if mandatory else "⚠️ advisory only, a deploy may go ahead"
    head = f"**Policies:** {verdict}: {mandatory} mandatory, {advisory} advisory violation(s)"
    groups: dict[str, list[Any]] = {}
    for violation in preview.violations:
        groups.setdefault(violation.tenant or "", []).append(violation)
    items = []
    for tenant in sorted(groups, key=lambda name: (name == "", name)):
        items.append(f"- **{tenant}**" if tenant else "- **fleet-wide**")
        for violation in sorted(groups[tenant], key=lambda v: (not v.mandatory, v.policy, v.resource or "")):
            message = violation.message.removeprefix(f"tenant {tenant}: ") if tenant else violation.message
            items.append(f"  - {'**mandatory**' if violation.mandatory else 'advisory'} `{violation.policy}`: {_md(message)}")
    if len(preview.violations) > 10:
        return [head, "", "<details><summary>violations by tenant</summary>", "", *items, "", "</details>"]
    return [head, *items]


def render_markdown(preview: Preview, *, command: Optional[str] = None) -> str:
    """The preview as a pull-request comment: short for one tenant, collapsed details for many."""
    lines = [f"### Fleet plan · stack `{preview.stack}` · base {_md_label(preview.base_label)}", ""]
    if preview.problems:
        lines.append(f"❌ **The fleet spec is invalid** ({len(preview.problems)} problem(s)); nothing is declared:")
        lines.append("")
        lines += [f"- {_md(problem)}" for problem in preview.problems]
        return "\n".join(lines) + "\n"
    if preview.base_problems:
        lines.append("The base can't be read by this pull request's code, so there is no comparison:")
        lines += [f"- {_md(problem)}" for problem in preview.base_problems]
        lines.append("")
    else:
        lines += [f"**{_headline(preview)}**", ""]
    if preview.warnings:
        lines += [f"- {_md(warning)}" for warning in preview.warnings]
        lines.append("")
    if preview.tenants:
        table = ["| | tenant | what happens | resources |", "|---|---|---|---|"]
        for tenant in preview.tenants:
            symbol = KIND_LABELS[tenant.kind].split(" ", 1)[0]
            table.append(f"| {symbol} | **{tenant.tenant}** | {_md('; '.join(tenant.words))} | {format_counts(tenant.counts())} |")
        if len(preview.tenants) > TABLE_INLINE_MAX:
            lines += [f"<details><summary>{len(preview.tenants)} tenants</summary>", "", *table, "", "</details>"]
        else:
            lines += table
        lines.append("")
    changes = preview.resource_changes()
    if changes:
        detail = []
        groups = [(tenant.tenant, tenant.resources) for tenant in preview.tenants if tenant.resources]
        if preview.shared:
            groups.append(("shared", preview.shared))
        for name, group in groups:
            # a blank line first: a line right after a list item would continue that item
            detail += ["", f"**{name}**", ""] if detail else [f"**{name}**", ""]
            detail += [f"- {_code(describe_resource(change))}" for change in group]
        if len(detail) > MAX_DETAIL_LINES:
            cut = len(detail) - MAX_DETAIL_LINES
            detail = detail[:MAX_DETAIL_LINES] + [f"- … {cut} more lines: run the command below locally"]
        if len(preview.tenants) <= 1 and not preview.shared and len(changes) <= DETAILS_INLINE_MAX:
            lines += detail
        else:
            lines += [f"<details><summary>{len(changes)} resource changes</summary>", "", *detail, "", "</details>"]
        lines.append("")
    if preview.notes:
        lines += [f"<sub>{_md(note)}</sub><br>" for note in preview.notes]
        lines.append("")
    lines += _md_policies(preview)
    lines.append("")
    how = f" (`{command}`)" if command else ""
    lines.append(
        f"<sub>Offline plan{how}: the real program under mocks, no engine and no credentials. "
        "Ports and generated secrets are placeholders; the engine preview has the last word.</sub>"
    )
    return "\n".join(lines) + "\n"


def render_json(preview: Preview) -> dict[str, Any]:
    """The preview for machines."""
    policy_check = policy_module()
    violations = None
    if preview.violations is not None:
        violations = policy_check.violations_document(preview.violations) if policy_check is not None and hasattr(policy_check, "violations_document") else [vars(v) for v in preview.violations]
    return {
        "stack": preview.stack,
        "base": preview.base_label,
        "exit_code": preview.exit_code,
        "problems": preview.problems,
        "base_problems": preview.base_problems,
        "tenants": {
            tenant.tenant: {
                "change": tenant.kind,
                "plan": tenant.plan,
                "words": tenant.words,
                "counts": tenant.counts(),
                "resources": [change.document() for change in tenant.resources],
            }
            for tenant in preview.tenants
        },
        "shared": [change.document() for change in preview.shared],
        "warnings": preview.warnings,
        "notes": preview.notes,
        "policies": {"checked": preview.violations is not None, "count": preview.policy_count, "violations": violations},
    }


# ---------------------------------------------------------------- guard on the engine's own preview


REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced"})


def unrequested_database_replacements(engine_preview: dict[str, Any]) -> list[str]:
    """URNs of databases that `pulumi preview --json` would replace: no tenant file ever asks for that.

    (A removal or a move deletes a database with retain_on_delete, which keeps the data: allowed. A
    purge drops data through its own resource, never by replacing the Database.)
    """
    found = []
    for step in engine_preview.get("steps") or []:
        urn = step.get("urn", "")
        if step.get("op") in REPLACE_OPS and f"{DATABASE}::" in urn and urn not in found:
            found.append(urn)
    return found


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m fleet.preview --guard preview.json`: fail (exit 1) when the engine's preview replaces a database."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m fleet.preview", description="Checks on the engine's own preview (for CI before `pulumi up`).")
    parser.add_argument("--guard", metavar="PREVIEW_JSON", required=True, help="output of `pulumi preview --json`")
    args = parser.parse_args(argv)
    try:
        document = json.loads(Path(args.guard).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"Error: can't read {args.guard}: {error}", file=sys.stderr)
        return 2
    replaced = unrequested_database_replacements(document)
    for urn in replaced:
        print(f"⚠ the engine would REPLACE database {urn}: a new, empty database. Not deploying.", file=sys.stderr)
    if not replaced:
        print("guard: no database is replaced.")
    return 1 if replaced else 0


if __name__ == "__main__":
    raise SystemExit(main())
