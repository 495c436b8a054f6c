"""What each tenant costs a month, its list price and its margin: pure arithmetic on the models, in Decimal.

`fleet_costs(fleet)` is what `python -m fleet cost` shows and what the PR summary compares. The rules
(docs/cost.md):

- RAM and CPU: the limits of the containers that run (the app's services, workers, a dedicated Redis's memory),
  times their replicas; none while suspended. The backup job and one-shot jobs run minutes a day: not counted.
- Database: the measured size when one is given, else the plan's `database_gb` allowance (else 0, noted).
- Backups: copies kept (retention's daily + weekly + monthly) x one backup's size (`backup_ratio` x database).
- Shared resources: the proxy's monthly cost is split equally among the stack's tenants (each has routes on it,
  a suspended one its maintenance page); the shared Redis's is split among the tenants with `redis: shared`
  in proportion to their plans' `redis_memory_mb`. The whole cost is recovered, whatever the headroom.
- A price and the costs must be in one currency: a plan priced in another is an error naming it, never a sum.

Each item is rounded to cents (half up) and the total is the sum of the rounded items, so a table adds up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Mapping, Optional

from fleet.errors import Problem, SpecError
from fleet.model import derive
from fleet.model.spec import Environment, Fleet, Plan, Price, Prices, TenantSpec

CENT = Decimal("0.01")
MB_PER_GB = Decimal(1024)
BYTES_PER_GB = Decimal(1024**3)
MONTHS_PER_YEAR = Decimal(12)
ITEMS = ("ram", "cpu", "database", "backups", "proxy", "shared_redis")
"""The cost items of a tenant, in the order tables show them."""
PERIOD = "month"


def money(value: Decimal) -> Decimal:
    """An amount rounded to cents, half up (how an invoice rounds)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def monthly_price(price: Price) -> Decimal:
    """A list price per month: a yearly one counts as a twelfth."""
    return price.amount / MONTHS_PER_YEAR if price.period == "year" else price.amount


@dataclass(frozen=True)
class TenantCost:
    """One tenant's monthly cost by item, the quantities behind it, its list price and margin."""

    tenant: str
    plan: str
    status: str
    currency: str
    items: dict[str, Decimal]
    """Cost per item of ITEMS, rounded to cents."""
    quantities: dict[str, Any]
    """ram_gb, cpu, database_gb (and its source), backup_copies, backup_gb, proxy_share, redis_share."""
    price: Optional[Decimal]
    """The plan's list price a month, or None when the plan has none."""
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> Decimal:
        return sum(self.items.values(), Decimal(0))

    @property
    def margin(self) -> Optional[Decimal]:
        return None if self.price is None else money(self.price) - self.total

    @property
    def margin_percent(self) -> Optional[Decimal]:
        """Margin as a share of the price, in percent with one decimal; None without a price or with a price of 0."""
        if self.price is None or self.price == 0 or self.margin is None:
            return None
        return (self.margin * 100 / money(self.price)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    def to_mapping(self) -> dict[str, Any]:
        """JSON-able: amounts as strings with two decimals (exact), quantities as strings or numbers."""
        return {
            "tenant": self.tenant,
            "plan": self.plan,
            "status": self.status,
            "cost": {**{item: str(amount) for item, amount in self.items.items()}, "total": str(self.total)},
            "price": None if self.price is None else str(money(self.price)),
            "margin": None if self.margin is None else str(self.margin),
            "margin_percent": None if self.margin_percent is None else str(self.margin_percent),
            "quantities": {key: str(value) if isinstance(value, Decimal) else value for key, value in self.quantities.items()},
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class FleetCost:
    """Every tenant's cost in one currency, and the fleet's totals."""

    currency: str
    tenants: list[TenantCost] = field(default_factory=list)

    def cost(self, tenant: str) -> Optional[TenantCost]:
        return next((row for row in self.tenants if row.tenant == tenant), None)

    @property
    def total(self) -> Decimal:
        return sum((row.total for row in self.tenants), Decimal("0.00"))

    @property
    def price(self) -> Decimal:
        """The sum of the known prices (tenants without one add nothing)."""
        return sum((money(row.price) for row in self.tenants if row.price is not None), Decimal("0.00"))

    @property
    def margin(self) -> Decimal:
        """The sum of the known margins (tenants without a price are left out)."""
        return sum((row.margin for row in self.tenants if row.margin is not None), Decimal("0.00"))

    def to_mapping(self, stack: str) -> dict[str, Any]:
        return {
            "stack": stack,
            "currency": self.currency,
            "period": PERIOD,
            "tenants": [row.to_mapping() for row in self.tenants],
            "totals": {"cost": str(self.total), "price": str(self.price), "margin": str(self.margin)},
        }


def currency_problems(fleet: Fleet, plans_display: str = "tenants/_plans.yaml") -> list[Problem]:
    """One problem per plan whose price is in another currency than `fleet:prices` (none without prices)."""
    prices = fleet.environment.prices
    if prices is None:
        return []
    return [
        Problem(
            plans_display, None, f"plans.{name}.price.currency",
            f"plan {name} is priced in {plan.price.currency}, but fleet:prices are in {prices.currency}: "
            "costs and prices must be in one currency (convert the price, or the stack's prices)",
        )
        for name, plan in sorted(fleet.plans.items())
        if plan.price is not None and plan.price.currency != prices.currency
    ]


def _app_footprint(plan: Plan, tenant: TenantSpec, environment: Environment) -> tuple[Decimal, Decimal]:
    """(memory in MB, CPU cores) of what runs: the app's services (backend and frontend, or a plan's named ones),
    workers, a dedicated Redis's memory."""
    memory, cpus = Decimal(0), Decimal(0)
    for service in derive.services(plan, tenant, environment):
        replicas = derive.replica_count(plan, tenant, service.name)
        memory += Decimal(service.size.memory_mb) * replicas
        cpus += Decimal(str(service.size.cpu)) * replicas
    for name, worker in plan.workers.items():
        replicas = derive.worker_count(plan, tenant, name)
        memory += Decimal(worker.memory_mb) * replicas
        cpus += Decimal(str(worker.cpu)) * replicas
    if plan.redis == "dedicated" and tenant.status == "active":
        memory += Decimal(plan.redis_memory_mb)
    return memory, cpus


def backup_copies(tenant: TenantSpec, plan: Plan) -> int:
    """How many backups retention keeps at most: every daily one, plus the weekly and monthly tiers' newest."""
    retention = derive.retention(tenant, plan)
    return retention.daily + retention.weekly + retention.monthly


def tenant_cost(
    tenant: TenantSpec,
    fleet: Fleet,
    prices: Prices,
    *,
    measured_bytes: Optional[int] = None,
    proxy_share: Decimal = Decimal(0),
    redis_share: Decimal = Decimal(0),
) -> TenantCost:
    """One tenant's monthly cost; `proxy_share` and `redis_share` are its fractions of the shared resources."""
    plan = fleet.plan_of(tenant)
    notes: list[str] = []
    memory_mb, cpus = _app_footprint(plan, tenant, fleet.environment)
    ram_gb = memory_mb / MB_PER_GB
    if measured_bytes is not None:
        database_gb, source = Decimal(measured_bytes) / BYTES_PER_GB, "measured"
    elif plan.database_gb is not None:
        database_gb, source = plan.database_gb, "plan"
    else:
        database_gb, source = Decimal(0), "unknown"
        notes.append(f"database size unknown: plan {tenant.plan} sets no database_gb and none was measured (priced at 0)")
    copies = backup_copies(tenant, plan)
    backup_gb = database_gb * prices.backup_ratio * copies
    items = {
        "ram": money(ram_gb * prices.ram_gb),
        "cpu": money(cpus * prices.cpu),
        "database": money(database_gb * prices.database_gb),
        "backups": money(backup_gb * prices.backup_gb),
        "proxy": money(prices.proxy * proxy_share),
        "shared_redis": money(prices.shared_redis * redis_share),
    }
    quantities: dict[str, Any] = {
        "ram_gb": ram_gb.normalize(),
        "cpu": cpus.normalize(),
        "database_gb": database_gb.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP),
        "database_source": source,
        "backup_copies": copies,
        "backup_gb": backup_gb.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP),
        "proxy_share": proxy_share.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
        "redis_share": redis_share.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
    }
    if tenant.status != "active":
        notes.append(f"{tenant.status}: no containers run, the database and backups still cost")
    price = monthly_price(plan.price) if plan.price is not None else None
    if price is None:
        notes.append(f"plan {tenant.plan} has no price: no margin")
    return TenantCost(tenant.name, tenant.plan, tenant.status, prices.currency, items, quantities, price, tuple(notes))


def shares(fleet: Fleet) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(proxy share, shared-Redis share) per tenant: the rule for shared resources.

    The proxy: an equal share for every tenant of the stack (each has routes on it). The shared Redis: a share
    in proportion to `redis_memory_mb` among the tenants whose plan says `redis: shared`.
    """
    names = [tenant.name for tenant in fleet.tenants]
    proxy = {name: Decimal(1) / len(names) for name in names} if names else {}
    weights = {tenant.name: Decimal(fleet.plan_of(tenant).redis_memory_mb) for tenant in fleet.tenants if fleet.plan_of(tenant).redis == "shared"}
    total = sum(weights.values(), Decimal(0))
    redis = {name: weight / total for name, weight in weights.items()} if total else {}
    return proxy, redis


def fleet_costs(fleet: Fleet, measured_bytes: Optional[Mapping[str, int]] = None, *, plans_display: str = "tenants/_plans.yaml") -> Optional[FleetCost]:
    """Every tenant's monthly cost, or None when the stack sets no `fleet:prices`.

    `measured_bytes`: database sizes by tenant (from `fleet status`); tenants missing from it use their plan's
    allowance. Raises SpecError naming every plan priced in another currency.
    """
    prices = fleet.environment.prices
    if prices is None:
        return None
    problems = currency_problems(fleet, plans_display)
    if problems:
        raise SpecError(problems)
    proxy, redis = shares(fleet)
    measured = measured_bytes or {}
    rows = [
        tenant_cost(
            tenant, fleet, prices,
            measured_bytes=measured.get(tenant.name),
            proxy_share=proxy.get(tenant.name, Decimal(0)),
            redis_share=redis.get(tenant.name, Decimal(0)),
        )
        for tenant in fleet.tenants
    ]
    return FleetCost(prices.currency, rows)


def signed(amount: Decimal) -> str:
    """`+90.00`, `-12.50`, `0.00`."""
    return f"+{amount}" if amount > 0 else str(amount)
