"""`python -m fleet <verb>`: the front door for people and CI.

Verbs: `plan` (offline, mocks), `schema` (JSON Schema of the YAML), `up`/`preview`/`refresh`/`destroy`
(the real engine through the Automation API). Every verb has `--help`; `--json` is for machines.
Exit codes: 0 fine, 1 the operation failed, 2 the spec (or the command line) is invalid,
3 nothing deployed because provider plugins are missing (the offline plan is shown instead).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from fleet.spec import SpecError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class FleetError(Exception):
    """An operation failed in a way the user can fix; `main` prints it as `Error: ...` and exits 1."""


def project_root() -> Path:
    """The folder holding Pulumi.yaml and tenants/ (this checkout)."""
    from fleet.program import PROJECT_ROOT

    return PROJECT_ROOT


# ---------------------------------------------------------------- plan


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


def _print_plan_table(evaluation, fleet_plans: dict[str, str], out) -> None:
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
        _print_plan_table(evaluation, fleet_plans, sys.stdout)
    return EXIT_OK


# ---------------------------------------------------------------- schema


def cmd_schema(args: argparse.Namespace) -> int:
    """Write the JSON Schemas of tenant files and the plan catalog (for editors' completion)."""
    from fleet.spec import PlanCatalog, TenantSpec

    schemas = {"tenant.schema.json": TenantSpec.model_json_schema(), "plans.schema.json": PlanCatalog.model_json_schema()}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, schema in schemas.items():
            (out / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"wrote {out / name}")
    else:
        json.dump(schemas, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    return EXIT_OK


# ---------------------------------------------------------------- engine verbs


def cmd_engine(args: argparse.Namespace) -> int:
    """Run the program through the real engine (Automation API)."""
    from fleet import operations

    return operations.run_engine_verb(args.verb, args.stack, selection=args.tenant or None, json_output=args.json, yes=args.yes)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m fleet`."""
    parser = argparse.ArgumentParser(prog="python -m fleet", description="tenant-fleet: tenant YAML files in, per-tenant infrastructure out.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")

    plan = verbs.add_parser("plan", help="show what the program declares, offline (no engine, no credentials)")
    plan.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read (default: dev)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    plan.add_argument("--tenants", help="tenants folder (default: ./tenants)")
    plan.set_defaults(handler=cmd_plan)

    schema = verbs.add_parser("schema", help="print or write the JSON Schemas of the YAML files")
    schema.add_argument("--out", help="folder to write tenant.schema.json and plans.schema.json into")
    schema.set_defaults(handler=cmd_schema)

    for verb, text in (("up", "deploy the stack"), ("preview", "show what a deploy would change"), ("refresh", "read the live state back"), ("destroy", "remove the stack's resources (data is retained)")):
        engine = verbs.add_parser(verb, help=f"{text}, with the real engine")
        engine.add_argument("--stack", default="dev", help="stack name (default: dev)")
        engine.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
        engine.add_argument("--json", action="store_true", help="print the change summary as JSON")
        engine.add_argument("--yes", action="store_true", help="don't ask for confirmation")
        engine.set_defaults(handler=cmd_engine)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one verb; print domain errors without a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as error:
        print(f"Error: {error}", file=sys.stderr)
        print("Nothing was declared. Fix the files above and run again.", file=sys.stderr)
        return EXIT_INVALID
    except FleetError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_FAILED
