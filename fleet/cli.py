"""`python -m fleet <verb>`: the front door for people and CI.

Verbs live in fleet/commands/ (one module per group): `plan` (offline, mocks), `schema`, `up`/`preview`/`refresh`/`destroy`
(the real engine through the Automation API). Every verb has `--help`; `--json` is for machines.
Exit codes: 0 fine, 1 the operation failed, 2 the spec (or the command line) is invalid,
3 nothing deployed because provider plugins are missing (the offline plan is shown instead).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from fleet.spec import SpecError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class FleetError(Exception):
    """An operation failed in a way the user can fix; `main` prints it as `Error: ...` and exits 1."""


def project_root() -> Path:
    """The folder holding Pulumi.yaml and tenants/ (this checkout)."""
    from fleet.program import PROJECT_ROOT

    return PROJECT_ROOT


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m fleet`, with every verb of fleet.commands."""
    from fleet.commands import COMMANDS

    parser = argparse.ArgumentParser(prog="python -m fleet", description="tenant-fleet: tenant YAML files in, per-tenant infrastructure out.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")
    for module in COMMANDS:
        importlib.import_module(module).register(verbs)
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
    except BrokenPipeError:
        # The reader went away (`fleet plan --json | head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
