"""`fleet plan`: what the program declares for a stack, offline (the real program under mocks)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleet.cli import EXIT_OK, project_root

KEY_INPUTS = {
    "random:index/randomPassword:RandomPassword": ("length", "keepers"),
    "postgresql:index/role:Role": ("name", "login", "connectionLimit"),
    "postgresql:index/database:Database": ("name", "encoding", "lcCollate"),
    "postgresql:index/grant:Grant": ("database", "role", "objectType", "privileges"),
    "docker:index/network:Network": ("driver",),
    "docker:index/container:Container": ("image", "cpus", "memory", "restart"),
    "cloudflare:index/dnsRecord:DnsRecord": ("name", "type", "content", "proxied"),
    "pulumi-python:dynamic/caddy:CaddyRoute": ("route_id", "hosts", "upstreams", "maintenance"),
    "pulumi-python:dynamic/caddy:CaddyServer": ("server", "listen", "automatic_https"),
}


def _short_type(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


def _key_inputs(resource) -> str:
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


def _option_flags(resource) -> str:
    flags = [flag for flag, on in (("retain", resource.options["retainOnDelete"]), ("protect", resource.options["protect"]), ("delete-first", resource.options["deleteBeforeReplace"])) if on]
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
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=160)
    grouped = evaluation.by_tenant()
    for tenant in sorted(grouped):
        table = Table(title=f"tenant {tenant} (plan {fleet_plans.get(tenant)})", title_justify="left", show_lines=False)
        for column in ("type", "name", "key inputs", "options"):
            table.add_column(column, overflow="fold")
        for resource in grouped[tenant]:
            if resource.custom:
                table.add_row(_short_type(resource.type), resource.name, _key_inputs(resource), _option_flags(resource))
        console.print(table)
    shared = Table(title="shared", title_justify="left")
    for column in ("type", "name", "key inputs"):
        shared.add_column(column, overflow="fold")
    for resource in evaluation.shared():
        if resource.custom:
            shared.add_row(resource.type, resource.name, _key_inputs(resource))
    console.print(shared)
    total = len(evaluation.custom_resources())
    console.print(f"{len(grouped)} tenants, {total} resources declared (stack {evaluation.stack}; offline, under mocks).")


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what the program declares for a stack, with no engine and no credentials."""
    from fleet.plan import plan_stack

    root = project_root()
    tenants_dir = Path(args.tenants) if args.tenants else root / "tenants"
    selection = args.tenant or None
    evaluation = plan_stack(args.stack, root, tenants_dir=tenants_dir, selection=selection)
    fleet_plans = {name: spec.plan for name, spec in evaluation.specs.items()}
    if args.json:
        json.dump(plan_document(evaluation, fleet_plans), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print_plan_table(evaluation, fleet_plans, sys.stdout)
    return EXIT_OK


def register(verbs) -> None:
    """Add the `plan` verb."""
    plan = verbs.add_parser("plan", help="show what the program declares, offline (no engine, no credentials)")
    plan.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read (default: dev)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    plan.add_argument("--tenants", help="tenants folder (default: ./tenants)")
    plan.set_defaults(handler=cmd_plan)
