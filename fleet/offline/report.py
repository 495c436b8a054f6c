"""The offline plan as people and machines read it: a table per tenant, or a JSON document.

Used by `fleet plan` and by the engine verbs, which show the offline plan when plugins are missing.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fleet.model import type_tokens
from fleet.offline.kube_report import kubernetes_inputs

KEY_INPUTS = {
    type_tokens.PASSWORD: ("length", "keepers"),
    type_tokens.ROLE: ("name", "login", "connectionLimit"),
    type_tokens.DATABASE: ("name", "encoding", "lcCollate"),
    type_tokens.GRANT: ("database", "role", "objectType", "privileges"),
    type_tokens.NETWORK: ("driver",),
    type_tokens.CONTAINER: ("image", "cpus", "memory", "restart"),
    type_tokens.DNS_RECORD: ("name", "type", "content", "proxied"),
    type_tokens.CADDY_ROUTE: ("route_id", "hosts", "upstreams", "maintenance"),
    type_tokens.CADDY_SERVER: ("server", "listen", "automatic_https"),
    type_tokens.PLACEMENT: ("server", "database", "role"),
    type_tokens.PURGE: ("tenant", "server", "database", "role"),
    type_tokens.REGISTRY_TABLE: ("database", "schema", "table"),
    type_tokens.REGISTRY_ROW: ("name", "plan", "status", "hostnames"),
    type_tokens.KUBE_READY_PODS: ("namespace", "selector", "port", "expected"),
}


def short_type(type_: str) -> str:
    """`docker:index/container:Container` -> `Container`."""
    return type_.rsplit(":", 1)[-1]


def key_inputs(resource) -> str:
    """The inputs that say the most about a resource, on one line."""
    if resource.type.startswith("kubernetes:") and not resource.type.startswith("kubernetes:index"):
        return kubernetes_inputs(resource.type, resource.inputs)
    keys = KEY_INPUTS.get(resource.type, ())
    parts = []
    for key in keys:
        value = resource.inputs.get(key)
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, list):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{key}={value}")
    return " ".join(parts)


def option_flags(resource) -> str:
    """retain, protect, delete-first: the options that keep data safe."""
    flags = [
        flag
        for flag, on in (
            ("retain", resource.options["retainOnDelete"]),
            ("protect", resource.options["protect"]),
            ("delete-first", resource.options["deleteBeforeReplace"]),
        )
        if on
    ]
    return ",".join(flags)


def plan_document(evaluation, fleet_plans: dict[str, str]) -> dict[str, Any]:
    """The plan as JSON: per tenant its plan and the custom resources it declares; shared resources apart."""
    tenants = {}
    for tenant, resources in sorted(evaluation.by_tenant().items()):
        tenants[tenant] = {
            "plan": fleet_plans.get(tenant),
            "resources": [resource.summary() for resource in resources if resource.custom],
        }
    return {
        "stack": evaluation.stack,
        "tenants": tenants,
        "shared": {"resources": [resource.summary() for resource in evaluation.shared() if resource.custom]},
    }


def print_plan_table(evaluation, fleet_plans: dict[str, str], out) -> None:
    """The plan for people: a table per tenant, then the shared resources and a count."""

    console = Console(file=out, width=160)
    grouped = evaluation.by_tenant()
    for tenant in sorted(grouped):
        table = Table(title=f"tenant {tenant} (plan {fleet_plans.get(tenant)})", title_justify="left", show_lines=False)
        for column in ("type", "name", "key inputs", "options"):
            table.add_column(column, overflow="fold")
        for resource in grouped[tenant]:
            if resource.custom:
                table.add_row(short_type(resource.type), resource.name, key_inputs(resource), option_flags(resource))
        console.print(table)
    shared = Table(title="shared", title_justify="left")
    for column in ("type", "name", "key inputs"):
        shared.add_column(column, overflow="fold")
    for resource in evaluation.shared():
        if resource.custom:
            shared.add_row(resource.type, resource.name, key_inputs(resource))
    console.print(shared)
    total = len(evaluation.custom_resources())
    console.print(f"{len(grouped)} tenants, {total} resources declared (stack {evaluation.stack}; offline, under mocks).")
