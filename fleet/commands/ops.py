"""`fleet backup|restore|verify|status`: operate the deployed fleet from the same tenant files and stack secrets.

Every verb reads the stack's tenants and servers offline (`Pulumi.<stack>.yaml`, `tenants/`) and its
passwords from `--secrets` (see fleet.inventory): `auto` (default) takes `FLEET_SERVER_PASSWORD_<KEY>`
and `FLEET_DATABASE_PASSWORD_<TENANT>` from the environment and asks the deployed stack through the
engine for the rest. `--json` prints one document for machines; otherwise a table, with progress on
stderr. See docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from fleet.cli import EXIT_FAILED, EXIT_OK, FleetError, project_root

FAIL_STYLE = "bold red"


# ---------------------------------------------------------------- shared


def load(args: argparse.Namespace):
    """The inventory of the stack the command names."""
    from fleet.inventory import load_inventory, secret_source

    root = Path(args.root) if args.root else project_root()
    secrets = secret_source(args.secrets, args.stack, root)
    return load_inventory(args.stack, root=root, secrets=secrets, backups_dir=getattr(args, "dir", None))


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(file=sys.stderr if stderr else sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False)


def _print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _progress(json_output: bool):
    """A function printing one progress line to stderr (quiet under --json: stdout stays one document)."""
    console = _console(stderr=True)

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


# ---------------------------------------------------------------- backup


def cmd_backup(args: argparse.Namespace) -> int:
    """Back up tenants (pg_dump -Fc, verified, retention after success); exit 1 when any failed."""
    from fleet import backup

    if args.target_env:
        return _backup_job(args)
    if args.retention_days is not None:
        raise FleetError("--retention-days is for the scheduled job (--target-env); operators' backups use each tenant's plan")
    inventory = load(args)
    names = None if args.all else args.tenant
    tenants = [entry.name for entry in inventory.select(names)]
    show = _progress(args.json)
    total = len(tenants)
    position = {name: index for index, name in enumerate(tenants, 1)}

    def started(tenant: str) -> None:
        show(f"[{position[tenant]}/{total}] {tenant}: dumping...")

    def done(result) -> None:
        show(f"[{position[result.tenant]}/{total}] {result.tenant}: {_backup_outcome(result)}")

    def run() -> list:
        return backup.backup_many(inventory, tenants, on_start=started, on_done=done)

    if args.daily_at:
        for _ in backup.run_daily(lambda: _report_backups(run(), args.json, inventory.backups_dir) == EXIT_OK, args.daily_at):
            pass
        return EXIT_OK
    return _report_backups(run(), args.json, inventory.backups_dir)


def _backup_outcome(result) -> str:
    if not result.ok:
        return f"FAILED: {result.error}"
    pruned = f", pruned {len(result.pruned)}" if result.pruned else ""
    return f"ok {human_bytes(result.bytes)}, {result.tables} tables, {result.rows} rows, {result.seconds:.1f} s{pruned}"


def _report_backups(results: list, json_output: bool, folder: Path) -> int:
    failed = [result for result in results if not result.ok]
    if json_output:
        _print_json({"dir": str(folder), "ok": not failed, "backups": [result.to_mapping() for result in results]})
    else:
        from rich.table import Table

        table = Table(title=f"backups in {folder}", title_justify="left")
        for column in ("tenant", "server", "result", "file", "size", "tables", "rows", "pruned"):
            table.add_column(column, overflow="fold")
        for result in results:
            table.add_row(
                result.tenant,
                result.server,
                "ok" if result.ok else f"[{FAIL_STYLE}]FAILED[/]: {result.error}",
                Path(result.path).name if result.path else "-",
                human_bytes(result.bytes) if result.ok else "-",
                str(result.tables) if result.ok else "-",
                str(result.rows) if result.ok else "-",
                str(len(result.pruned)),
            )
        console = _console()
        console.print(table)
        console.print(f"{len(results) - len(failed)} of {len(results)} tenant(s) backed up" + (f"; failed: {', '.join(r.tenant for r in failed)}" if failed else "."))
    return EXIT_FAILED if failed else EXIT_OK


def _backup_job(args: argparse.Namespace) -> int:
    """The scheduled job's mode: one tenant, from FLEET_BACKUP_TARGET/FLEET_BACKUP_PASSWORD, no tenant files needed."""
    from components.backup import PASSWORD_ENV, TARGET_ENV
    from fleet import backup

    if not args.dir:
        raise FleetError("--target-env needs --dir (the backup folder)")
    try:
        data = json.loads(os.environ.get(TARGET_ENV, ""))
        target = backup.BackupTarget.from_mapping(data, os.environ.get(PASSWORD_ENV, ""), args.retention_days)
    except ValueError as error:
        raise FleetError(f"{TARGET_ENV} is not valid: {error}") from None
    except backup.BackupError as error:
        raise FleetError(f"{TARGET_ENV}: {error}") from None
    if args.tenant and args.tenant != [target.tenant]:
        raise FleetError(f"--tenant {', '.join(args.tenant)} does not match {TARGET_ENV}'s tenant {target.tenant}")
    folder = Path(args.dir)
    show = _progress(args.json)

    def run() -> bool:
        show(f"{target.tenant}: dumping...")
        result = backup.backup_one(target, folder)
        show(f"{target.tenant}: {_backup_outcome(result)}")
        return _report_backups([result], args.json, folder) == EXIT_OK

    if args.daily_at:
        for _ in backup.run_daily(run, args.daily_at):
            pass  # a failed night is logged; the job keeps its schedule
        return EXIT_OK
    return EXIT_OK if run() else EXIT_FAILED


# ---------------------------------------------------------------- restore


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a dump into a fresh database (or, confirmed, in place of the live one) and compare row counts."""
    from fleet import backup

    inventory = load(args)
    entry = inventory.tenant(args.tenant)
    dump = Path(getattr(args, "from"))
    if not dump.is_file():
        raise FleetError(f"{dump}: no such file")
    if args.replace and not args.yes:
        _confirm_replace(entry)
    show = _progress(args.json)
    try:
        result = backup.restore_backup(inventory, entry.name, dump, into=args.into, replace=args.replace, on_step=lambda text: show(f"{entry.name}: {text}"))
    except backup.BackupError as error:
        raise FleetError(str(error)) from None
    if args.json:
        _print_json(result.to_mapping())
    else:
        console = _console()
        if result.ok:
            console.print(f"restored {dump.name} into database {result.database} on {entry.server_key}: {result.tables} tables, {result.rows} rows, row counts equal to the dump's ({result.seconds:.1f} s)")
            if result.replaced:
                console.print(f"the former live database is kept as {result.previous_database} (connections to it are blocked); drop it once you are sure")
        else:
            console.print(f"[{FAIL_STYLE}]restored into {result.database}, but row counts differ from the dump:[/]")
            for line in result.mismatches:
                console.print(f"  - {line}", markup=False)
            if args.replace:
                console.print("the live database was not touched")
    return EXIT_OK if result.ok else EXIT_FAILED


def _confirm_replace(entry) -> None:
    if not sys.stdin.isatty():
        raise FleetError(f"--replace swaps the restored copy in for {entry.name}'s live database {entry.database}; confirm with --yes (no terminal to ask on)")
    print(
        f"This replaces {entry.name}'s live database {entry.database} on {entry.server_key} with the restored copy;\n"
        f"open sessions are ended and the current database is renamed aside (kept). Type the tenant's name to confirm: ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    if sys.stdin.readline().strip() != entry.name:
        raise FleetError("not confirmed; nothing was changed")


# ---------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    """Check isolation, PUBLIC, limits and every hostname against the live servers; exit 1 on any failure."""
    from fleet import ops

    inventory = load(args)
    chosen = inventory.select(args.tenant)
    _progress(args.json)(f"verifying {len(chosen)} tenant(s) on {len({entry.server_key for entry in chosen})} server(s)...")
    checks = ops.verify_fleet(inventory, args.tenant, http=not args.no_http, proxy=args.proxy, insecure=args.insecure)
    failed = [check for check in checks if check.outcome == "fail"]
    if args.json:
        _print_json({"stack": inventory.stack, "ok": not failed, "failures": [check.line() for check in failed], "checks": [check.to_mapping() for check in checks]})
    else:
        print_checks(checks, _console())
    for check in failed:
        print(f"FAIL {check.line()}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def print_checks(checks: list, console) -> None:
    """A table per tenant: one line per check."""
    from rich.table import Table

    table = Table(title="verify", title_justify="left")
    for column in ("tenant", "check", "target", "result", "detail"):
        table.add_column(column, overflow="fold")
    styles = {"pass": "green", "fail": FAIL_STYLE, "skip": "yellow"}
    for check in checks:
        table.add_row(check.tenant, check.check, check.target or "", f"[{styles[check.outcome]}]{check.outcome}[/]", check.detail)
    console.print(table)
    counts = {outcome: sum(1 for check in checks if check.outcome == outcome) for outcome in ("pass", "fail", "skip")}
    console.print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped.")


# ---------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    """Per tenant: plan, server, size, connections vs limit, containers, newest backup; flags at 80 % of a limit."""
    from fleet import ops

    inventory = load(args)
    tenants, servers = ops.fleet_status(inventory, args.tenant)
    if args.json:
        _print_json({"stack": inventory.stack, "tenants": [row.to_mapping() for row in tenants], "servers": [row.to_mapping() for row in servers]})
    else:
        print_status(tenants, servers, _console())
    return EXIT_FAILED if any(row.error for row in tenants) else EXIT_OK


def print_status(tenants: list, servers: list, console) -> None:
    """The status table, then one line per server."""
    from rich.table import Table

    table = Table(title="status", title_justify="left")
    for column in ("tenant", "plan", "status", "server", "db size", "connections", "containers", "newest backup", "flags"):
        table.add_column(column, overflow="fold")
    for row in tenants:
        limit = "?" if row.connection_limit is None else ("none" if row.connection_limit < 0 else str(row.connection_limit))
        connections = "?" if row.connections is None else f"{row.connections}/{limit}"
        flags = ", ".join(row.flags)
        if row.error:
            flags = f"[{FAIL_STYLE}]{row.error}[/]" + (f"; {flags}" if flags else "")
        elif row.flags:
            flags = f"[yellow]{flags}[/]"
        table.add_row(row.tenant, row.plan, row.status, row.server, human_bytes(row.size_bytes), connections, row.containers, human_age(row.backup_age_hours), flags)
    console.print(table)
    for server in servers:
        if server.error:
            console.print(f"server {server.server}: [{FAIL_STYLE}]{server.error}[/]")
        else:
            console.print(f"server {server.server}: {server.connections}/{server.max_connections} connections" + (f"  [yellow]{', '.join(server.flags)}[/]" if server.flags else ""))


# ---------------------------------------------------------------- parser


def _common(parser: argparse.ArgumentParser) -> None:
    from fleet.inventory import SECRET_SOURCES_HELP

    parser.add_argument("--stack", default="dev", help="stack name (default: dev)")
    parser.add_argument("--secrets", default="auto", metavar="SOURCE", help=f"where passwords come from: {SECRET_SOURCES_HELP} (default: auto)")
    parser.add_argument("--root", help="folder with Pulumi.<stack>.yaml and tenants/ (default: this checkout)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register(verbs) -> None:
    """Add the operations verbs: backup, restore, verify, status."""
    backup = verbs.add_parser("backup", help="pg_dump -Fc tenants' databases, verify them, apply retention", description=cmd_backup.__doc__)
    _common(backup)
    which = backup.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", action="append", help="this tenant (repeatable)")
    which.add_argument("--all", action="store_true", help="every tenant of the stack")
    backup.add_argument("--dir", help="backup folder (default: fleet:backups.dir)")
    backup.add_argument("--daily-at", metavar="HH:MM", help="keep running and back up every day at this UTC time")
    backup.add_argument("--target-env", action="store_true", help="scheduled job: connection from $FLEET_BACKUP_TARGET, password from $FLEET_BACKUP_PASSWORD")
    backup.add_argument("--retention-days", type=int, help="scheduled job: days to keep (the tenant's plan)")
    backup.set_defaults(handler=cmd_backup)

    restore = verbs.add_parser("restore", help="restore a backup into a fresh database and compare row counts", description=cmd_restore.__doc__)
    _common(restore)
    restore.add_argument("tenant", help="whose backup it is")
    restore.add_argument("--from", required=True, metavar="FILE", help="the .dump file")
    restore.add_argument("--into", metavar="NAME", help="name of the new database (default: <database>_restored_<time>)")
    restore.add_argument("--replace", action="store_true", help="then swap it in for the live database (the live one is renamed aside, kept)")
    restore.add_argument("--yes", action="store_true", help="don't ask to confirm --replace")
    restore.set_defaults(handler=cmd_restore)

    verify = verbs.add_parser("verify", help="check isolation, PUBLIC, limits and hostnames against the live servers", description=cmd_verify.__doc__)
    _common(verify)
    verify.add_argument("--tenant", action="append", help="only this tenant (repeatable; isolation is still checked against every neighbour)")
    verify.add_argument("--no-http", action="store_true", help="skip the hostname checks through the proxy")
    verify.add_argument("--proxy", metavar="HOST:PORT", help="where to reach the proxy (default: fleet:proxy.listen[0], ':443' meaning 127.0.0.1:443)")
    verify.add_argument("--insecure", action="store_true", help="don't verify the proxy's TLS certificates")
    verify.set_defaults(handler=cmd_verify)

    status = verbs.add_parser("status", help="sizes, connections, containers and backup age per tenant", description=cmd_status.__doc__)
    _common(status)
    status.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    status.set_defaults(handler=cmd_status)
