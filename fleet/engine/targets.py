"""Which engine URNs belong to a tenant: the `target` list of `fleet up --tenant X` on a shared stack.

A tenant's resources are those under its `Tenant` component (followed through parent links) and its
registry row, in the new program and in the deployed state (so a removed tenant can be targeted).
"""


from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from fleet.model import derive
from fleet.model.type_tokens import REGISTRY_ROW, TENANT_TYPE
from fleet.offline.mocks import Evaluation


def urn_name(urn: str) -> str:
    """The logical name at the end of a URN."""
    return urn.rsplit("::", 1)[-1]


def _registry_row_names(tenants: Collection[str]) -> set[str]:
    return {derive.registry_row_prefix() + name for name in tenants}


def declared_targets(evaluation: Evaluation, tenants: Collection[str]) -> set[str]:
    """Engine URNs of what the program declares for these tenants."""
    rows = _registry_row_names(tenants)
    engine_urns = evaluation.engine_urns()
    return {
        engine_urns[resource.urn]
        for resource in evaluation.resources
        if resource.tenant in tenants or (resource.type == REGISTRY_ROW and resource.name in rows)
    }


def deployed_tenants(resources: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Tenant name -> URNs of its resources in a deployment's state (`export_stack().deployment["resources"]`)."""
    by_urn = {resource["urn"]: resource for resource in resources}
    owners: dict[str, str | None] = {}

    def owner(urn: str) -> str | None:
        if urn not in owners:
            owners[urn] = None  # guards against a cycle in a corrupt state
            resource = by_urn.get(urn)
            if resource is None:
                return None
            if resource.get("type") == TENANT_TYPE:
                owners[urn] = urn_name(urn)
            elif resource.get("type") == REGISTRY_ROW and urn_name(urn).startswith(derive.registry_row_prefix()):
                owners[urn] = urn_name(urn).removeprefix(derive.registry_row_prefix())
            elif resource.get("parent"):
                owners[urn] = owner(resource["parent"])
        return owners[urn]

    grouped: dict[str, set[str]] = {}
    for urn in by_urn:
        name = owner(urn)
        if name is not None:
            grouped.setdefault(name, set()).add(urn)
    return grouped


def tenant_targets(evaluation: Evaluation, deployed: Iterable[Mapping[str, Any]], tenants: Collection[str]) -> list[str]:
    """Every URN, declared or deployed, that belongs to one of `tenants`: nothing of any other tenant or of the platform."""
    urns = declared_targets(evaluation, tenants)
    for name, owned in deployed_tenants(deployed).items():
        if name in tenants:
            urns |= owned
    return sorted(urns)
