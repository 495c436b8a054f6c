"""`fleet plan`: what the program declares for a stack, offline (the real program under mocks)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleet.cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK, project_root

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
    "pulumi-python:dynamic/postgres:DatabasePlacement": ("server", "database", "role"),
    "pulumi-python:dynamic/postgres:TenantPurge": ("tenant", "server", "database", "role"),
    "pulumi-python:dynamic/registry:TenantRegistryTable": ("database", "schema", "table"),
    "pulumi-python:dynamic/registry:TenantRegistryRow": ("name", "plan", "status", "hostnames"),
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


def _policy_verdicts(evaluation, stack: str, root: Path, tenants_dir: Path):
    """The head's policy violations, or None when fleet.policy_check is not there (then nothing is checked)."""
    from fleet.preview import policy_module

    policy_check = policy_module()
    if policy_check is None:
        return None
    return policy_check.check_stack(evaluation, stack, root, tenants_dir)


def _output_format(args: argparse.Namespace) -> str:
    return "json" if args.json else (args.format or "text")


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what the program declares for a stack, with no engine and no credentials; with --base, what changes."""
    root = Path(args.root).resolve() if args.root else project_root()
    tenants_dir = Path(args.tenants).resolve() if args.tenants else root / "tenants"
    output = _output_format(args)
    if args.base:
        return _cmd_preview(args, root, tenants_dir, output)
    if output == "markdown":
        print("Error: --format markdown is the pull-request summary: it needs --base <git ref>", file=sys.stderr)
        return EXIT_INVALID

    from fleet.plan import plan_stack

    selection = args.tenant or None
    evaluation = plan_stack(args.stack, root, tenants_dir=tenants_dir, selection=selection)
    fleet_plans = {name: spec.plan for name, spec in evaluation.specs.items()}
    violations = _policy_verdicts(evaluation, args.stack, root, tenants_dir)
    if output == "json":
        document = plan_document(evaluation, fleet_plans)
        document["policies"] = _policies_document(violations)
        json.dump(document, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print_plan_table(evaluation, fleet_plans, sys.stdout)
        print_violations(violations, sys.stdout)
    return EXIT_FAILED if violations and any(violation.mandatory for violation in violations) else EXIT_OK


def _policies_document(violations) -> dict[str, Any]:
    from fleet.preview import policy_module

    if violations is None:
        return {"checked": False, "violations": None}
    return {"checked": True, "violations": policy_module().violations_document(violations)}


def print_violations(violations, out) -> None:
    """The policy verdicts, grouped by tenant (or a line saying the policy check is not available)."""
    from fleet.preview import policy_module

    if violations is None:
        print("Policies: not checked (fleet.policy_check is not available in this checkout).", file=out)
        return
    print(policy_module().format_violations(violations), file=out)


def _cmd_preview(args: argparse.Namespace, root: Path, tenants_dir: Path, output: str) -> int:
    """`fleet plan --base REF`: the tenant-level comparison of the base and the working tree."""
    from fleet import preview as previews

    try:
        preview = previews.build_preview(root, args.base, stack=args.stack, tenants_dir=tenants_dir, only=args.tenant or None)
    except previews.BaseError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_INVALID
    if output == "json":
        json.dump(previews.render_json(preview), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif output == "markdown":
        command = f"python -m fleet plan --base {args.base}" + (f" --stack {args.stack}" if args.stack != "dev" else "")
        sys.stdout.write(previews.render_markdown(preview, command=command))
    else:
        sys.stdout.write(previews.render_text(preview))
    if preview.problems:
        print(f"Error: {len(preview.problems)} problem(s) in the fleet spec (listed above). Nothing was declared.", file=sys.stderr)
    return preview.exit_code


def register(verbs) -> None:
    """Add the `plan` verb."""
    plan = verbs.add_parser(
        "plan",
        help="show what the program declares, offline (no engine, no credentials); with --base, what a change does per tenant",
        description=(
            "Offline plan: the real program under Pulumi mocks, then the policy pack. With --base REF: compare the fleet at "
            "that git ref with the working tree, per tenant (the pull-request summary). "
            "Exit codes: 0 clean, 1 a mandatory policy fails, 2 invalid spec (or command line)."
        ),
    )
    plan.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read (default: dev)")
    plan.add_argument("--base", metavar="REF", help="git ref to compare with (a branch, tag or commit): prints what changes, per tenant")
    plan.add_argument("--format", choices=("text", "markdown", "json"), help="output: text (default), markdown (with --base: the pull-request comment), json")
    plan.add_argument("--json", action="store_true", help="the same as --format json")
    plan.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    plan.add_argument("--tenants", help="tenants folder (default: <root>/tenants)")
    plan.add_argument("--root", help="checkout holding Pulumi.<stack>.yaml and tenants/ (default: this project)")
    plan.set_defaults(handler=cmd_plan)
