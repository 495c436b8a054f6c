"""`fleet drill`: restore each tenant's latest backup into a scratch database, check it, drop it, record the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from fleet.cli.common import FAIL_STYLE, add_common_options, human_bytes, load, make_console, print_json, progress
from fleet.errors import EXIT_FAILED, EXIT_OK
from fleet.ops import drills


def cmd_drill(args: argparse.Namespace) -> int:
    """Restore drills: each tenant's newest backup restored into `fleet_drill_...`, rows, checksums and tables checked
    against its manifest, the scratch database dropped (also on failure); the result recorded beside the backups."""
    inventory = load(args)
    tenants = [entry.name for entry in inventory.select(args.tenant)]
    show = progress(args.json)

    def done(result: drills.DrillResult) -> None:
        show(f"{result.tenant}: {'ok' if result.ok else 'FAILED'} in {result.seconds:.1f}s")

    results = drills.drill_many(inventory, tenants, server=args.server, on_done=done)
    failed = [result for result in results if not result.ok]
    if args.json:
        print_json({"ok": not failed, "drills": [result.to_mapping() for result in results]})
    else:
        table = Table(title="restore drills", title_justify="left")
        for column in ("tenant", "server", "backup", "size", "tables", "rows", "seconds", "result"):
            table.add_column(column, overflow="fold")
        for result in results:
            outcome = "ok" if result.ok else f"[{FAIL_STYLE}]FAILED[/]: " + "; ".join(result.problems)
            table.add_row(
                result.tenant, result.server, Path(result.backup).name if result.backup else "-", human_bytes(result.backup_bytes),
                str(result.tables), str(result.rows), f"{result.seconds:.1f}", outcome,
            )
        console = make_console()
        console.print(table)
        console.print(f"{len(results) - len(failed)} of {len(results)} drill(s) passed; every scratch database was dropped" if all(
            r.scratch_dropped or r.scratch_database is None for r in results) else "[red]a scratch database could not be dropped: see above[/]")
    return EXIT_FAILED if failed else EXIT_OK


def register(verbs) -> None:
    """Add the verb `drill`."""
    drill = verbs.add_parser("drill", help="prove backups: restore each tenant's latest into a scratch database and check it", description=cmd_drill.__doc__)
    add_common_options(drill)
    drill.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    drill.add_argument("--server", metavar="KEY", help="server to restore on (default: each tenant's own; its owner role must exist there)")
    drill.add_argument("--dir", help="backup folder (default: fleet:backups.dir)")
    drill.set_defaults(handler=cmd_drill)
