"""`fleet up|preview|refresh|destroy`, `fleet changed` and `fleet migrate-stacks`: the program through the real engine.

One stack per environment by default; with `fleet:stacks: per-tenant`, a stack per tenant, run only where
something changed (fleet.engine.fanout). See fleet.engine.verbs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fleet.engine import fanout, migrate, plugins, verbs
from fleet.errors import EXIT_NOT_DEPLOYED, EXIT_OK, InputError
from fleet.model import derive
from fleet.offline.plan import stack_config
from fleet.offline.policies import load_stack_fleet
from fleet.paths import PROJECT_ROOT

VERBS = (
    ("up", "deploy the stack (per-tenant stacks: only those that changed)"),
    ("preview", "show what a deploy would change"),
    ("refresh", "read the live state back (per-tenant stacks: every stack, naming those that drifted)"),
    ("destroy", "remove the stack's resources (databases and roles are retained)"),
)


def per_tenant(environment: str, root: Path) -> bool:
    """Whether an environment keeps a stack per tenant (`fleet:stacks: per-tenant`)."""
    return stack_config(environment, root).get("stacks") == "per-tenant"


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root).resolve() if args.root else PROJECT_ROOT


def cmd_engine(args: argparse.Namespace) -> int:
    """Run the program through the real engine (Automation API)."""
    environment, tenant = derive.split_stack(args.stack)
    selection = list(args.tenant or []) + ([tenant] if tenant else [])
    root = _root(args)
    if per_tenant(environment, root):
        return verbs.run_fleet_verb(
            args.verb, environment, selection=selection or None, force_all=args.all, platform_only=args.platform, parallel=args.parallel,
            json_output=args.json, yes=args.yes, root=root,
        )
    if tenant or args.all or args.parallel or args.platform:
        raise InputError(f"--stack {args.stack}, --all, --parallel and --platform are for environments with a stack per tenant (fleet:stacks: per-tenant)")
    return verbs.run_engine_verb(args.verb, args.stack, selection=selection or None, json_output=args.json, yes=args.yes, root=root)


def cmd_changed(args: argparse.Namespace) -> int:
    """The stacks that `fleet up` would run, without running the engine: for a CI matrix."""
    root = _root(args)
    fleet = load_stack_fleet(args.stack, root)
    fanout.require_per_tenant(fleet, args.stack)
    changes = fanout.change_set(fleet, args.stack, root, fanout.deployed_stacks(), force_all=args.all)
    if args.json:
        json.dump(changes.document(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for stack in changes.stacks():
            print(stack)
        print(f"{len(changes.stacks())} stack(s) to run, {len(changes.unchanged)} unchanged", file=sys.stderr)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    """Install the official provider plugins the program may need, at the versions requirements.txt pins."""
    installed, failed = plugins.install_plugins()
    for entry in installed:
        print(f"installed provider plugin {entry}")
    if failed:
        print(
            f"could not download provider plugin(s) {', '.join(failed)} on this machine: `fleet up` will show the offline plan "
            "and name them (exit 3) until they are installed",
            file=sys.stderr,
        )
        return EXIT_NOT_DEPLOYED
    if not installed and not args.quiet:
        print("every provider plugin is installed")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """Move each tenant's resources out of the single stack into its own stack, touching no resource."""
    report = migrate.migrate_to_tenant_stacks(args.stack, _root(args), yes=args.yes, progress=None if args.json else print)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_OK


def register(verbs_parser) -> None:
    """Add the engine verbs."""
    for verb, text in VERBS:
        engine = verbs_parser.add_parser(verb, help=f"{text}, with the real engine")
        engine.add_argument("--stack", default="dev", help="stack or environment (default: dev); `<env>.<tenant>` is one tenant's stack")
        engine.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
        engine.add_argument("--all", action="store_true", help="per-tenant stacks: run every stack, changed or not")
        engine.add_argument("--parallel", type=int, metavar="N", help="per-tenant stacks: run N at once (default: the cores)")
        engine.add_argument("--platform", action="store_true", help="per-tenant stacks: only the platform stack <env> (when it changed, or with --all)")
        engine.add_argument("--json", action="store_true", help="print the change summary as JSON")
        engine.add_argument("--yes", action="store_true", help="don't ask for confirmation")
        engine.add_argument("--root", help="project folder with Pulumi.<stack>.yaml and tenants/ (default: this checkout)")
        engine.set_defaults(handler=cmd_engine)
    changed = verbs_parser.add_parser("changed", help="list the stacks `fleet up` would run (per-tenant stacks; for a CI matrix)")
    changed.add_argument("--stack", default="dev", help="environment (default: dev)")
    changed.add_argument("--all", action="store_true", help="every stack, changed or not")
    changed.add_argument("--json", action="store_true", help="a JSON document with the list under `stacks`")
    changed.add_argument("--root", help="project folder (default: this checkout)")
    changed.set_defaults(handler=cmd_changed)
    plugins_verb = verbs_parser.add_parser("plugins", help="install the official provider plugins at their pinned versions (where they can be downloaded)")
    plugins_verb.add_argument("action", choices=["install"])
    plugins_verb.add_argument("--quiet", action="store_true", help="say nothing when there is nothing to do")
    plugins_verb.set_defaults(handler=cmd_plugins)
    migrate_verb = verbs_parser.add_parser("migrate-stacks", help="split a single-stack environment into a platform stack and one stack per tenant")
    migrate_verb.add_argument("--stack", default="dev", help="the environment's single stack (default: dev)")
    migrate_verb.add_argument("--yes", action="store_true", help="don't ask for confirmation")
    migrate_verb.add_argument("--json", action="store_true", help="print what moved as JSON")
    migrate_verb.add_argument("--root", help="project folder (default: this checkout)")
    migrate_verb.set_defaults(handler=cmd_migrate)
