"""What the operations verbs share: loading the inventory, common options, console output and units.
"""


from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

from rich.console import Console

from fleet.ops.inventory import load_inventory
from fleet.ops.secrets import SECRET_SOURCES_HELP, secret_source
from fleet.paths import PROJECT_ROOT

FAIL_STYLE = "bold red"


# ---------------------------------------------------------------- shared


def load(args: argparse.Namespace):
    """The inventory of the stack the command names."""

    root = Path(args.root) if args.root else PROJECT_ROOT
    secrets = secret_source(args.secrets, args.stack, root)
    return load_inventory(args.stack, root=root, secrets=secrets, backups_dir=getattr(args, "dir", None))


def make_console(stderr: bool = False):

    return Console(file=sys.stderr if stderr else sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False)


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def progress(json_output: bool):
    """A function printing one progress line to stderr (quiet under --json: stdout stays one document)."""
    console = make_console(stderr=True)

    def show(text: str) -> None:
        if not json_output:
            console.print(text, markup=False)

    return show


def human_bytes(value: Optional[int]) -> str:
    """1536 -> '1.5 kB'."""
    if value is None:
        return "?"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"


def human_age(hours: Optional[float]) -> str:
    """Hours as '45 min', '5.0 h', '3.2 d'; '-' when unknown."""
    if hours is None:
        return "-"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


# ---------------------------------------------------------------- parser


def add_common_options(parser: argparse.ArgumentParser) -> None:

    parser.add_argument("--stack", default="dev", help="stack name (default: dev)")
    parser.add_argument("--secrets", default="auto", metavar="SOURCE", help=f"where passwords come from: {SECRET_SOURCES_HELP} (default: auto)")
    parser.add_argument("--root", help="folder with Pulumi.<stack>.yaml and tenants/ (default: this checkout)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
