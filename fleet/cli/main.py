"""The parser of `python -m fleet` and `main`, which maps every `FleetError` to a message and an exit code.

Verbs live in the sibling modules listed in COMMANDS; each has `register(verbs)`. Exit codes are in
`fleet.errors`: 0 fine, 1 failed, 2 invalid spec or command line, 3 not deployed (plugins missing).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

import psycopg

from fleet.errors import EXIT_FAILED, EXIT_OK, FleetError, SpecError

COMMANDS = (
    "fleet.cli.plan",
    "fleet.cli.schema",
    "fleet.cli.deploy",
    "fleet.cli.backups",
    "fleet.cli.drills",
    "fleet.cli.admin",
    "fleet.cli.health",
    "fleet.cli.bench",
    "fleet.cli.policy",
    "fleet.cli.guard",
    "fleet.cli.metrics",
)
"""The verb modules, in the order `--help` lists them."""

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m fleet`, with every verb of COMMANDS."""
    parser = argparse.ArgumentParser(prog="python -m fleet", description="tenant-fleet: tenant YAML files in, per-tenant infrastructure out.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")
    for module in COMMANDS:
        importlib.import_module(module).register(verbs)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one verb; print expected failures as `Error: ...` without a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as error:
        print(f"Error: {error}", file=sys.stderr)
        print("Nothing was declared. Fix the files above and run again.", file=sys.stderr)
        return error.exit_code
    except FleetError as error:
        print(f"Error: {error}", file=sys.stderr)
        return error.exit_code
    except psycopg.OperationalError as error:  # a server down or refusing us: expected, and said in one line
        print(f"Error: a PostgreSQL server could not be used: {str(error).strip().splitlines()[0] if str(error).strip() else error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`fleet plan --json | head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except OSError as error:  # a file that can't be read or written, a port in use: expected, and said in one line
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_FAILED
