"""`fleet guard PREVIEW_JSON`: fail when the engine's preview replaces a database the YAML did not ask to move.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fleet.errors import EXIT_FAILED, EXIT_OK, InputError
from fleet.preview.guard import unrequested_database_replacements


def cmd_guard(args: argparse.Namespace) -> int:
    """Exit 1 when the engine's own preview (`pulumi preview --json`) replaces a database."""
    path = Path(args.preview_json)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"can't read the engine preview {path}: {error}") from None
    if not isinstance(document, dict):
        raise InputError(f"{path} is not the output of `pulumi preview --json` (expected a JSON object)")
    replaced = unrequested_database_replacements(document)
    for urn in replaced:
        print(f"⚠ the engine would REPLACE database {urn}: a new, empty database. Not deploying.", file=sys.stderr)
    if not replaced:
        print("guard: no database is replaced.")
    return EXIT_FAILED if replaced else EXIT_OK


def register(verbs) -> None:
    """Add the `guard` verb."""
    guard = verbs.add_parser(
        "guard",
        help="fail when the engine's preview replaces a database (CI, before `pulumi up`)",
        description="Reads the output of `pulumi preview --json` and exits 1 when any step replaces a postgresql Database.",
    )
    guard.add_argument("preview_json", metavar="PREVIEW_JSON", help="output of `pulumi preview --json`")
    guard.set_defaults(handler=cmd_guard)
