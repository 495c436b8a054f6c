"""Resource-level diff of two offline plans, with the provider's replace rules.

Says per resource: created, updated in place, replaced (and on which inputs) or deleted.
"""


from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from pulumi.runtime.mocks import MockResourceArgs

from fleet.model.type_tokens import (
    CADDY_ROUTE,
    CADDY_SERVER,
    CONTAINER,
    DATABASE,
    DEFAULT_PRIVILEGES,
    DNS_RECORD,
    GRANT,
    HANDOVER,
    NETWORK,
    PASSWORD,
    PLACEMENT,
    PURGE,
    ROLE,
    ROLE_SETTINGS,
)
from fleet.offline.mocks import Declared, Evaluation, FleetMocks
from fleet.preview.changes import (
    CREATE,
    DELETE,
    OP_ORDER,
    REPLACE,
    UPDATE,
    ResourceChange,
)


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
    # `wait` and `waitTimeout` (wait for healthy after a create) are not ForceNew in the upstream container schema
    # (kreuzwerker/terraform-provider-docker, internal/provider/resource_docker_container.go): state only.
    CONTAINER: ReplaceRule(in_place=frozenset({"memory", "memorySwap", "memoryReservation", "cpuShares", "cpuSet", "restart", "wait", "waitTimeout"})),
    NETWORK: ReplaceRule(in_place=frozenset()),
    DATABASE: ReplaceRule(replace=frozenset({"name", "template", "encoding", "lcCollate", "lcCtype"})),
    ROLE: ReplaceRule(),  # name, password, login, connection limit: ALTER ROLE in place
    GRANT: ReplaceRule(in_place=frozenset()),
    DEFAULT_PRIVILEGES: ReplaceRule(in_place=frozenset()),
    PASSWORD: ReplaceRule(in_place=frozenset()),  # keepers, length, special...: a new value
    DNS_RECORD: ReplaceRule(replace=frozenset({"zoneId", "type"})),
    # The same as CaddyRouteProvider._REPLACE / CaddyServerProvider._REPLACE (a test keeps them equal).
    CADDY_ROUTE: ReplaceRule(replace=frozenset({"admin_url", "server", "route_id"})),
    CADDY_SERVER: ReplaceRule(replace=frozenset({"admin_url", "server"})),
    # A server change is an UPDATE that moves the data; admin passwords and other servers' entries are
    # not compared (DatabasePlacementProvider._TRACKED; a test keeps them equal).
    PLACEMENT: ReplaceRule(compared=frozenset({"tenant", "database", "role", "owner", "server", "host", "port"})),
    # Runs again (an update) when the database, a role or the server changes (components.providers.handover._TRACKED).
    HANDOVER: ReplaceRule(compared=frozenset({"database", "owner", "role", "server"})),
    # ALTER ROLE ... SET in place; admin credentials not compared (components.providers.role_settings._TRACKED).
    ROLE_SETTINGS: ReplaceRule(compared=frozenset({"role", "server", "settings"})),
    # A purge happens once: its diff never reports a change.
    PURGE: ReplaceRule(compared=frozenset()),
}
DEFAULT_RULE = ReplaceRule()
"""Types not in the table (providers, resources added later): an update; the engine preview knows better."""

# Inputs that carry no desired state (the dynamic providers' name carrier).
IGNORED_INPUTS = frozenset({"resource_name"})


def resource_key(resource: Declared) -> tuple[str, str]:
    return (resource.type, resource.name)


def compared_inputs(resource: Declared) -> dict[str, Any]:
    return {key: value for key, value in resource.raw_inputs.items() if key not in IGNORED_INPUTS}


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def diff_resource(base: Declared, head: Declared) -> Optional[ResourceChange]:
    """Update, replace or nothing, from the inputs that differ and REPLACE_RULES."""
    old, new = compared_inputs(base), compared_inputs(head)
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
    change.values = {key: (old.get(key), new.get(key)) for key in keys if key not in secret and is_scalar(old.get(key)) and is_scalar(new.get(key))}
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
            key = resource_key(dependent)
            if key not in base:
                continue
            rule = REPLACE_RULES.get(dependent.type, DEFAULT_RULE)
            touched = tuple(name for name, value in compared_inputs(dependent).items() if rule.counts(name) and _mentions(value, invented))
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
    old = {resource_key(resource): resource for resource in base.resources if resource.custom}
    new = {resource_key(resource): resource for resource in head.resources if resource.custom}
    changes: dict[tuple[str, str], ResourceChange] = {}
    for key, resource in new.items():
        if key not in old:
            changes[key] = ResourceChange(op=CREATE, type=resource.type, name=resource.name, tenant=resource.tenant)
        else:
            change = diff_resource(old[key], resource)
            if change is not None:
                changes[key] = change
    for key, resource in old.items():
        if key not in new:
            changes[key] = ResourceChange(
                op=DELETE, type=resource.type, name=resource.name, tenant=resource.tenant, retained=bool(resource.options.get("retainOnDelete"))
            )
    _propagate(changes, old, new)
    return sorted(changes.values(), key=lambda change: (change.tenant or "", OP_ORDER.index(change.op), change.type, change.name))
