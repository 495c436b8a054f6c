"""`fleet up|preview|refresh|destroy`, `fleet changed` and `fleet migrate-stacks`: the program through the real engine.

One stack per environment by default; with `fleet:stacks: per-tenant`, a stack per tenant, run only where
something changed (fleet.engine.fanout). See fleet.engine.verbs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from fleet.engine import driver, fanout, migrate, plugins, recovery, verbs
from fleet.engine.ledger import Ledger
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
    """Run the program through the real engine (Automation API), in a process group ended when this run ends."""
    with run_group():
        return _engine(args)


@contextlib.contextmanager
def run_group() -> Iterator[None]:
    """Every process this run starts (workers, engines, their plugins) is marked as this run's; whatever is left of
    them is ended on the way out (also after Ctrl-C twice, or SIGTERM, or when an engine died). Processes that a
    run killed with -9 left behind are ended first."""

    def say(line: str) -> None:
        print(line, file=sys.stderr)

    recovery.end_orphaned_runs(say)
    run, record = recovery.start_run()
    interrupts = []

    def on_interrupt(number, _frame) -> None:
        interrupts.append(number)
        if number == signal.SIGINT and len(interrupts) == 1:
            say("interrupted: the engine is stopping cleanly (Ctrl-C again to stop it at once)")
            return
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, on_interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        recovery.end_run(run, record)


def _rollout_health(environment: str, root):
    """A rollout's check after each wave (when `fleet:rollout.health`): each tenant's hostnames through the proxy."""

    def check(tenants: list[str]) -> list[str]:
        from fleet.ops.inventory import load_inventory
        from fleet.ops.verify import verify_http

        inventory = load_inventory(environment, root=root)
        if not inventory.environment.rollout.health:
            return []
        return [f"{c.tenant}: {c.target} {c.detail}" for c in verify_http(inventory, inventory.select(tenants)) if c.outcome == "fail"]

    return check


def _engine(args: argparse.Namespace) -> int:
    environment, tenant = derive.split_stack(args.stack)
    selection = list(args.tenant or []) + ([tenant] if tenant else [])
    root = _root(args)
    if per_tenant(environment, root):
        return verbs.run_fleet_verb(
            args.verb, environment, selection=selection or None, force_all=args.all, platform_only=args.platform, parallel=args.parallel,
            json_output=args.json, yes=args.yes, root=root, health=_rollout_health(environment, root),
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


def cmd_unlock(args: argparse.Namespace) -> int:
    """Break the engine's lock on a stack, after saying who holds it and asking."""
    ledger = Ledger(driver.backend_url(args.backend))
    locks = ledger.locks(args.stack)
    if not locks:
        print(f"stack {args.stack} is not locked")
        return EXIT_OK
    for key, holder in locks:
        state = "its process is gone" if recovery.holder_is_gone(holder) else "it may still be running"
        print(
            f"lock on {args.stack}: pid {holder.get('pid')} of {holder.get('username', '?')}@{holder.get('hostname', '?')} "
            f"since {holder.get('timestamp', '?')} ({state})"
        )
        if not args.yes:
            if not sys.stdin.isatty():
                raise InputError("breaking a lock while its run may still be changing resources corrupts nothing only if that run is gone: add --yes")
            if input("Break it? [y/N] ").strip().lower() not in ("y", "yes"):
                continue
        ledger.remove(key)
        print("lock removed: the next `python -m fleet up` resolves what that run left pending")
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
    unlock = verbs_parser.add_parser("unlock", help="break the engine's lock on a stack (asks first; a dead local run's lock is released by itself)")
    unlock.add_argument("--stack", default="dev", help="the stack (default: dev)")
    unlock.add_argument("--backend", help="state backend URL or folder (default: $PULUMI_BACKEND_URL, else state/)")
    unlock.add_argument("--yes", action="store_true", help="don't ask")
    unlock.set_defaults(handler=cmd_unlock)
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
