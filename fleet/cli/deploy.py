"""`fleet up|preview|refresh|destroy`: the program through the real engine (see fleet.engine.verbs).
"""


from __future__ import annotations

import argparse

from fleet.engine import verbs as operations

VERBS = (
    ("up", "deploy the stack"),
    ("preview", "show what a deploy would change"),
    ("refresh", "read the live state back"),
    ("destroy", "remove the stack's resources (databases and roles are retained)"),
)


def cmd_engine(args: argparse.Namespace) -> int:
    """Run the program through the real engine (Automation API)."""

    return operations.run_engine_verb(args.verb, args.stack, selection=args.tenant or None, json_output=args.json, yes=args.yes)


def register(verbs) -> None:
    """Add the engine verbs."""
    for verb, text in VERBS:
        engine = verbs.add_parser(verb, help=f"{text}, with the real engine")
        engine.add_argument("--stack", default="dev", help="stack name (default: dev)")
        engine.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
        engine.add_argument("--json", action="store_true", help="print the change summary as JSON")
        engine.add_argument("--yes", action="store_true", help="don't ask for confirmation")
        engine.set_defaults(handler=cmd_engine)
