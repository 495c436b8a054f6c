"""The monthly cost and margin change of a pull request, per tenant and for the fleet (from fleet.model.costs).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

from fleet.errors import SpecError
from fleet.model.costs import FleetCost, TenantCost, fleet_costs, money, signed
from fleet.model.spec import Fleet


def side_costs(fleet: Optional[Fleet], warnings: list[str], label: str) -> Optional[FleetCost]:
    """A side's costs; None without a fleet or without `fleet:prices`; a currency mismatch becomes a ⚠ warning."""
    if fleet is None:
        return None
    try:
        return fleet_costs(fleet)
    except SpecError as error:
        warnings.extend(f"⚠ costs of the {label} not shown: {problem.message}" for problem in error.problems)
        return None


def _price(row: TenantCost) -> str:
    return "no price" if row.price is None else str(money(row.price))


def _margin(row: TenantCost) -> str:
    return "no price" if row.margin is None else str(row.margin)


def tenant_cost_words(name: str, base: Optional[FleetCost], head: Optional[FleetCost], *, purged_before: bool = False) -> Optional[str]:
    """The tenant's monthly cost and margin change in words; None when there is nothing to say.

    Changed: `monthly cost BRL 85.40 → 120.10 (+34.70), margin 161.60 → 276.90 (+115.30)`. Added: its cost, price
    and margin. Removed: what stops (price, app) and what goes on until a purge (its retained database and backups).
    """
    old = base.cost(name) if base is not None else None
    new = head.cost(name) if head is not None else None
    if new is not None and old is None:
        return f"monthly cost {new.currency} {new.total}, price {_price(new)}, margin {_margin(new)}"
    if old is not None and new is None:
        kept = Decimal(0) if purged_before else old.items["database"] + old.items["backups"]
        words = f"monthly cost {old.currency} {old.total} → {kept} ({signed(kept - old.total)}), price {_price(old)} → none"
        if kept:
            words += f"; its retained database and backups cost {kept} until purged"
        return words
    if old is None or new is None:
        return None
    if old.currency != new.currency:
        return f"monthly cost {old.currency} {old.total} → {new.currency} {new.total} (currency changed: not compared)"
    if old.total == new.total and old.margin == new.margin:
        return None
    words = f"monthly cost {new.currency} {old.total} → {new.total} ({signed(new.total - old.total)})"
    if old.margin is not None and new.margin is not None:
        words += f", margin {old.margin} → {new.margin} ({signed(new.margin - old.margin)})"
    elif new.margin is not None or old.margin is not None:
        words += f", margin {_margin(old)} → {_margin(new)}"
    return words


def fleet_cost_note(base: Optional[FleetCost], head: Optional[FleetCost]) -> Optional[str]:
    """The fleet's monthly cost and margin before and after, when both sides are priced in one currency and differ."""
    if base is None or head is None or base.currency != head.currency:
        return None
    if base.total == head.total and base.margin == head.margin:
        return None
    return (
        f"fleet monthly cost {head.currency} {base.total} → {head.total} ({signed(head.total - base.total)}), "
        f"margin {base.margin} → {head.margin} ({signed(head.margin - base.margin)})"
    )
