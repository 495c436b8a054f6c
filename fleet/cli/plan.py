"""`fleet plan`: the offline plan as a table or JSON, with policy verdicts; with --base, the PR summary.
"""


from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from fleet.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from fleet.offline import policies
from fleet.offline.plan import plan_stack
from fleet.offline.report import plan_document, print_plan_table
from fleet.paths import PROJECT_ROOT
from fleet.preview import git, render, summary
from fleet.preview import usage as usage_module


def _output_format(args: argparse.Namespace) -> str:
    return "json" if args.json else (args.format or "text")


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what the program declares for a stack, with no engine and no credentials; with --base, what changes."""
    root = Path(args.root).resolve() if args.root else PROJECT_ROOT
    tenants_dir = Path(args.tenants).resolve() if args.tenants else root / "tenants"
    output = _output_format(args)
    if args.base:
        return _cmd_preview(args, root, tenants_dir, output)
    if output == "markdown":
        print("Error: --format markdown is the pull-request summary: it needs --base <git ref>", file=sys.stderr)
        return EXIT_INVALID


    selection = args.tenant or None
    evaluation = plan_stack(args.stack, root, tenants_dir=tenants_dir, selection=selection)
    fleet_plans = {name: spec.plan for name, spec in evaluation.specs.items()}
    violations = policies.check_stack(evaluation, args.stack, root, tenants_dir)
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
    return {"checked": True, "violations": policies.violations_document(violations)}


def print_violations(violations, out) -> None:
    """The policy verdicts, grouped by tenant."""
    print(policies.format_violations(violations), file=out)


def _cmd_preview(args: argparse.Namespace, root: Path, tenants_dir: Path, output: str) -> int:
    """`fleet plan --base REF`: the tenant-level comparison of the base and the working tree."""

    try:
        usage, source = _usage(args, root, tenants_dir)
        preview = summary.build_preview(
            root, args.base, stack=args.stack, tenants_dir=tenants_dir, only=args.tenant or None, usage=usage, usage_source=source,
            today=args.today,
        )
    except git.BaseError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_INVALID
    if output == "json":
        json.dump(render.render_json(preview), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif output == "markdown":
        command = f"python -m fleet plan --base {args.base}" + (f" --stack {args.stack}" if args.stack != "dev" else "")
        sys.stdout.write(render.render_markdown(preview, command=command))
    else:
        sys.stdout.write(render.render_text(preview))
    if preview.problems:
        print(f"Error: {len(preview.problems)} problem(s) in the fleet spec (listed above). Nothing was declared.", file=sys.stderr)
    return preview.exit_code


def _usage(args: argparse.Namespace, root: Path, tenants_dir: Path):
    """What the apps report they use: none, a JSON file, or the live registry (needs the stack's secrets)."""
    if not args.usage:
        return None, ""
    if args.usage == "registry":
        from fleet.ops.inventory import load_inventory
        from fleet.ops.usage import registry_usage

        return registry_usage(load_inventory(args.stack, root=root, tenants_dir=tenants_dir))
    return usage_module.load_usage_file(Path(args.usage)), f"usage in {args.usage}"


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
    plan.add_argument(
        "--today", type=date.fromisoformat, metavar="YYYY-MM-DD", help="with --base: the day offboarding timers are counted to (default: today, UTC)"
    )
    plan.add_argument("--base", metavar="REF", help="git ref to compare with (a branch, tag or commit): prints what changes, per tenant")
    plan.add_argument("--format", choices=("text", "markdown", "json"), help="output: text (default), markdown (with --base: the pull-request comment), json")
    plan.add_argument("--json", action="store_true", help="the same as --format json")
    plan.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    plan.add_argument("--tenants", help="tenants folder (default: <root>/tenants)")
    plan.add_argument("--root", help="checkout holding Pulumi.<stack>.yaml and tenants/ (default: this project)")
    plan.add_argument(
        "--usage", metavar="FILE|registry",
        help="with --base: flag limits a change lowers under what tenants use, from a JSON file {tenant: {limit: count}} or the live registry",
    )
    plan.set_defaults(handler=cmd_plan)
