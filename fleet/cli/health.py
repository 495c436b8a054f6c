"""`fleet verify` and `fleet status`.
"""


from __future__ import annotations

import argparse
import sys

from rich.table import Table

from fleet.cli.common import (
    FAIL_STYLE,
    add_common_options,
    human_age,
    human_bytes,
    load,
    make_console,
    print_json,
    progress,
)
from fleet.errors import EXIT_FAILED, EXIT_OK
from fleet.ops import status, verify

# ---------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    """Check isolation, PUBLIC, limits and every hostname against the live servers; exit 1 on any failure."""

    inventory = load(args)
    chosen = inventory.select(args.tenant)
    progress(args.json)(f"verifying {len(chosen)} tenant(s) on {len({entry.server_key for entry in chosen})} server(s)...")
    checks = verify.verify_fleet(inventory, args.tenant, http=not args.no_http, proxy=args.proxy, insecure=args.insecure)
    failed = [check for check in checks if check.outcome == "fail"]
    if args.json:
        print_json({"stack": inventory.stack, "ok": not failed, "failures": [check.line() for check in failed], "checks": [check.to_mapping() for check in checks]})
    else:
        print_checks(checks, make_console())
    for check in failed:
        print(f"FAIL {check.line()}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def print_checks(checks: list, console) -> None:
    """A table per tenant: one line per check."""

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

    inventory = load(args)
    tenants, servers = status.fleet_status(inventory, args.tenant)
    if args.json:
        print_json({"stack": inventory.stack, "tenants": [row.to_mapping() for row in tenants], "servers": [row.to_mapping() for row in servers]})
    else:
        print_status(tenants, servers, make_console())
    return EXIT_FAILED if any(row.error for row in tenants) else EXIT_OK


def print_status(tenants: list, servers: list, console) -> None:
    """The status table, then one line per server."""

    table = Table(title="status", title_justify="left")
    for column in ("tenant", "plan", "status", "version", "server", "db size", "connections", "containers", "jobs", "newest backup", "last drill", "flags"):
        table.add_column(column, overflow="fold")
    for row in tenants:
        limit = "?" if row.connection_limit is None else ("none" if row.connection_limit < 0 else str(row.connection_limit))
        connections = "?" if row.connections is None else f"{row.connections}/{limit}"
        flags = ", ".join(row.flags)
        if row.error:
            flags = f"[{FAIL_STYLE}]{row.error}[/]" + (f"; {flags}" if flags else "")
        elif row.flags:
            flags = f"[yellow]{flags}[/]"
        jobs = (row.migrations or "-") + (f" ({', '.join(row.modules)})" if row.modules else "")
        table.add_row(
            row.tenant, row.plan, row.status, row.app_version or "-", row.server, human_bytes(row.size_bytes), connections, row.containers, jobs,
            human_age(row.backup_age_hours), (row.last_drill or "never")[:16].replace("T", " "), flags,
        )
    console.print(table)
    for row in tenants:
        if row.offboarding:
            console.print(f"{row.tenant}: {row.offboarding}; final backup: {row.final_backup or '[yellow]none found[/]'}")
    for server in servers:
        if server.error:
            console.print(f"server {server.server}: [{FAIL_STYLE}]{server.error}[/]")
        else:
            console.print(
                f"server {server.server}: {server.connections}/{server.max_connections} connections"
                + (f"  [yellow]{', '.join(server.flags)}[/]" if server.flags else "")
            )


def register(verbs) -> None:
    """Add the verbs `verify` and `status`."""
    verify = verbs.add_parser("verify", help="check isolation, PUBLIC, limits and hostnames against the live servers", description=cmd_verify.__doc__)
    add_common_options(verify)
    verify.add_argument("--tenant", action="append", help="only this tenant (repeatable; isolation is still checked against every neighbour)")
    verify.add_argument("--no-http", action="store_true", help="skip the hostname checks through the proxy")
    verify.add_argument("--proxy", metavar="HOST:PORT", help="where to reach the proxy (default: fleet:proxy.listen[0], ':443' meaning 127.0.0.1:443)")
    verify.add_argument("--insecure", action="store_true", help="don't verify the proxy's TLS certificates")
    verify.set_defaults(handler=cmd_verify)

    status = verbs.add_parser("status", help="sizes, connections, containers and backup age per tenant", description=cmd_status.__doc__)
    add_common_options(status)
    status.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    status.set_defaults(handler=cmd_status)
