"""`fleet cost`: each tenant's monthly cost by item, its price and its margin, as a table or JSON.

The arithmetic is fleet.model.costs; this module loads the fleet, the optional measured sizes, and renders.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path
from typing import Optional

from rich.table import Table

from fleet.cli.common import make_console, print_json
from fleet.errors import EXIT_OK, InputError
from fleet.model.costs import ITEMS, FleetCost, money
from fleet.model.costs import fleet_costs as compute_costs
from fleet.model.load import display_path, load_fleet
from fleet.model.spec import PLAN_CATALOG_FILE, Fleet
from fleet.offline.plan import stack_config
from fleet.paths import PROJECT_ROOT

ITEM_LABELS = {"ram": "RAM", "cpu": "CPU", "database": "database", "backups": "backups", "proxy": "proxy", "shared_redis": "shared Redis"}


def _fleet(args: argparse.Namespace, root: Path, tenants_dir: Path) -> Fleet:
    fleet = load_fleet(tenants_dir, stack_config(args.stack, root), root=tenants_dir.parent, environment_display=f"Pulumi.{args.stack}.yaml")
    if fleet.environment.tenants is not None:
        fleet = fleet.select(set(fleet.environment.tenants))
    return fleet


def _measured(args: argparse.Namespace, root: Path, tenants_dir: Path) -> Optional[dict[str, int]]:
    if not args.sizes:
        return None
    from fleet.ops import sizes

    if args.sizes == "live":
        from fleet.ops.inventory import load_inventory
        from fleet.ops.secrets import secret_source

        inventory = load_inventory(args.stack, root=root, tenants_dir=tenants_dir, secrets=secret_source(args.secrets, args.stack, root))
        return sizes.live_sizes(inventory)
    return sizes.sizes_from_file(Path(args.sizes))


def cmd_cost(args: argparse.Namespace) -> int:
    """Each tenant's monthly cost (RAM, CPU, database, backups, its share of the proxy and shared Redis), price and margin."""
    root = Path(args.root).resolve() if args.root else PROJECT_ROOT
    tenants_dir = Path(args.tenants).resolve() if args.tenants else root / "tenants"
    fleet = _fleet(args, root, tenants_dir)
    costs = compute_costs(fleet, _measured(args, root, tenants_dir), plans_display=display_path(tenants_dir / PLAN_CATALOG_FILE, tenants_dir.parent))
    if costs is None:
        raise InputError(
            f"Pulumi.{args.stack}.yaml sets no fleet:prices: say what RAM, CPU, database and backups cost a month "
            "(`fleet:prices: {currency: BRL, ram_gb: 20, cpu: 30, database_gb: 1.5, backup_gb: 0.2}`, docs/cost.md)"
        )
    if args.tenant:
        unknown = sorted(set(args.tenant) - {row.tenant for row in costs.tenants})
        if unknown:
            raise InputError(f"unknown tenant(s) {', '.join(unknown)}; tenants: {', '.join(row.tenant for row in costs.tenants)}")
        costs = FleetCost(costs.currency, [row for row in costs.tenants if row.tenant in set(args.tenant)])
    if args.json:
        print_json(costs.to_mapping(args.stack))
    else:
        print_costs(costs, args.stack)
    return EXIT_OK


def print_costs(costs: FleetCost, stack: str) -> None:
    """One row per tenant: the items, the total, the price, the margin; then the fleet's totals and notes."""
    console = make_console()
    table = Table(title=f"cost · stack {stack} · {costs.currency} a month", title_justify="left")
    for column in ("tenant", "plan", *(ITEM_LABELS[item] for item in ITEMS), "cost", "price", "margin"):
        table.add_column(column, justify="left" if column in ("tenant", "plan") else "right")
    for row in costs.tenants:
        margin = "-" if row.margin is None else f"{row.margin}" + (f" ({row.margin_percent}%)" if row.margin_percent is not None else "")
        if row.margin is not None and row.margin < 0:
            margin = f"[bold red]{margin}[/]"
        table.add_row(
            row.tenant, row.plan, *(str(row.items[item]) for item in ITEMS), str(row.total), "-" if row.price is None else str(money(row.price)), margin,
        )
    table.add_section()
    sums = [str(sum((row.items[item] for row in costs.tenants), Decimal("0.00"))) for item in ITEMS]
    table.add_row("total", "", *sums, str(costs.total), str(costs.price), str(costs.margin))
    console.print(table)
    for row in costs.tenants:
        for note in row.notes:
            console.print(f"{row.tenant}: {note}", markup=False)
    console.print("Shared: the proxy is split equally among the tenants; the shared Redis by redis_memory_mb (docs/cost.md).", markup=False)


def register(verbs) -> None:
    """Add the `cost` verb."""
    cost = verbs.add_parser("cost", help="each tenant's monthly cost, price and margin (fleet:prices, plans' price)", description=cmd_cost.__doc__)
    cost.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read (default: dev)")
    cost.add_argument("--root", help="checkout holding Pulumi.<stack>.yaml and tenants/ (default: this project)")
    cost.add_argument("--tenants", help="tenants folder (default: <root>/tenants)")
    cost.add_argument("--tenant", action="append", help="only this tenant (repeatable; shares are still of the whole fleet)")
    cost.add_argument(
        "--sizes", metavar="FILE|live",
        help="measured database sizes instead of the plans' database_gb: a `fleet status --json` file, or `live` (the servers, needs secrets)",
    )
    cost.add_argument("--secrets", default="auto", metavar="SOURCE", help="with --sizes live: where the servers' passwords come from (default: auto)")
    cost.add_argument("--json", action="store_true", help="machine-readable output")
    cost.set_defaults(handler=cmd_cost)
