"""Cost per tenant: the arithmetic (Decimal), the rule for shared resources, currencies, `fleet cost` and the PR summary."""

from __future__ import annotations

import contextlib
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from fleet.cli.main import main
from fleet.errors import SpecError
from fleet.model.costs import fleet_costs
from fleet.model.load import load_fleet

PRICES = {
    "currency": "BRL",
    "ram_gb": "20.00",
    "cpu": "30.00",
    "database_gb": "2.50",
    "backup_gb": "0.10",
    "backup_ratio": "0.3",
    "proxy": "90.00",
    "shared_redis": "40.00",
}

PLANS = {
    "small": {
        "backend": {"cpu": 0.25, "memory_mb": 256, "replicas": 1},
        "frontend": {"cpu": 0.25, "memory_mb": 256, "replicas": 1},
        "user_limit": 3, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7,
        "max": {"backend": {"cpu": 0.5, "memory_mb": 512, "replicas": 1}, "frontend": {"cpu": 0.25, "memory_mb": 256, "replicas": 1}},
        "price": {"amount": 247, "currency": "BRL", "period": "month"},
        "database_gb": 2,
        "redis": "shared",
        "redis_memory_mb": 64,
    },
    "big": {
        "backend": {"cpu": 1.0, "memory_mb": 1024, "replicas": 2},
        "frontend": {"cpu": 0.5, "memory_mb": 512, "replicas": 1},
        "user_limit": 50, "connections_limit": 20, "db_connections": 40, "backup_retention_days": 30,
        "backup_retention": {"daily": 30, "weekly": 12, "monthly": 6},
        "max": {"backend": {"cpu": 2.0, "memory_mb": 2048, "replicas": 4}, "frontend": {"cpu": 1.0, "memory_mb": 1024, "replicas": 2}},
        "workers": {"queue": {"command": ["node", "worker.js"], "cpu": 0.5, "memory_mb": 512, "replicas": 1}},
        "price": {"amount": 7164, "currency": "BRL", "period": "year"},
        "database_gb": 10,
        "redis": "shared",
        "redis_memory_mb": 192,
    },
    "unpriced": {
        "backend": {"cpu": 0.25, "memory_mb": 256, "replicas": 1},
        "frontend": {"cpu": 0.25, "memory_mb": 256, "replicas": 0},
        "user_limit": 3, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7,
        "max": {"backend": {"cpu": 0.5, "memory_mb": 512, "replicas": 1}, "frontend": {"cpu": 0.25, "memory_mb": 256, "replicas": 0}},
    },
}


def tenant(name: str, plan: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "display_name": name.title(), "plan": plan, "database": {"server": "shared-1"}, **extra}


TENANTS = [tenant("alpha", "small"), tenant("bravo", "big"), tenant("charlie", "unpriced"), tenant("delta", "small", status="suspended")]


def environment(prices: Optional[dict[str, Any]] = PRICES) -> dict[str, Any]:
    config: dict[str, Any] = {
        "base_domain": "fleet.test",
        "servers": {"shared-1": {"host": "127.0.0.1", "max_connections": 200, "sslmode": "disable"}},
        "docker_host": {"memory_mb": 65536, "cpus": 32},
        "images": {"backend": "example/backend:1.0.0", "frontend": "example/frontend:1.0.0"},
        "redis": {"host": "127.0.0.1", "memory_mb": 1024},
    }
    if prices is not None:
        config["prices"] = prices
    return config


def write_fleet(root: Path, plans: dict[str, Any] = PLANS, tenants: list[dict[str, Any]] = TENANTS, prices: Optional[dict[str, Any]] = PRICES) -> Path:
    folder = root / "tenants"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_plans.yaml").write_text(yaml.safe_dump({"plans": plans}))
    for spec in tenants:
        (folder / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec))
    stack = {"config": {f"fleet:{key}": value for key, value in environment(prices).items()}}
    (root / "Pulumi.test.yaml").write_text(yaml.safe_dump(stack))
    return folder


def costs_of(tmp_path: Path, **kwargs: Any):
    folder = write_fleet(tmp_path, **kwargs)
    fleet = load_fleet(folder, environment(kwargs.get("prices", PRICES)), root=tmp_path)
    return fleet, fleet_costs(fleet)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- arithmetic


def test_a_tenants_cost_is_its_containers_database_backups_and_shares(tmp_path):
    _, costs = costs_of(tmp_path)
    alpha = costs.cost("alpha")
    # 2 containers of 256 MB = 0.5 GB x 20.00; 0.5 CPU x 30.00; 2 GB x 2.50;
    # backups: 7 kept copies x (2 GB x 0.3) = 4.2 GB x 0.10; proxy 90.00 / 4 tenants;
    # shared Redis 40.00 x 64 / (64 + 192 + 64): delta (suspended) keeps its user, so it still counts.
    assert alpha.items == {
        "ram": Decimal("10.00"), "cpu": Decimal("15.00"), "database": Decimal("5.00"),
        "backups": Decimal("0.42"), "proxy": Decimal("22.50"), "shared_redis": Decimal("8.00"),
    }
    assert alpha.total == Decimal("60.92")
    assert alpha.price == Decimal("247") and alpha.margin == Decimal("186.08")
    assert alpha.margin_percent == Decimal("75.3")
    assert all(isinstance(amount, Decimal) for amount in alpha.items.values())


def test_replicas_workers_tiers_and_a_yearly_price(tmp_path):
    _, costs = costs_of(tmp_path)
    bravo = costs.cost("bravo")
    # 2 x 1024 + 512 + worker 512 = 3072 MB = 3 GB; 2 x 1.0 + 0.5 + 0.5 = 3 CPU
    assert bravo.quantities["ram_gb"] == Decimal("3") and bravo.quantities["cpu"] == Decimal("3")
    assert bravo.items["ram"] == Decimal("60.00") and bravo.items["cpu"] == Decimal("90.00")
    # 30 daily + 12 weekly + 6 monthly = 48 copies x 3 GB
    assert bravo.quantities["backup_copies"] == 48 and bravo.items["backups"] == Decimal("14.40")
    assert bravo.items["shared_redis"] == Decimal("24.00")
    assert bravo.price == Decimal("597")  # 7164 a year is 597 a month, exactly
    assert bravo.margin == Decimal("597.00") - bravo.total


def test_a_suspended_tenant_runs_no_containers_but_its_data_still_costs(tmp_path):
    _, costs = costs_of(tmp_path)
    delta = costs.cost("delta")
    assert delta.items["ram"] == Decimal("0.00") and delta.items["cpu"] == Decimal("0.00")
    assert delta.items["database"] == Decimal("5.00") and delta.items["backups"] == Decimal("0.42")
    assert any("suspended" in note for note in delta.notes)


def test_a_plan_without_a_price_has_a_cost_and_no_margin(tmp_path):
    _, costs = costs_of(tmp_path)
    charlie = costs.cost("charlie")
    assert charlie.price is None and charlie.margin is None and charlie.margin_percent is None
    assert charlie.items["ram"] == Decimal("5.00")  # full stack: one 256 MB backend, no frontend
    assert charlie.items["shared_redis"] == Decimal("0.00")  # its plan has no Redis
    assert any("database size unknown" in note for note in charlie.notes) and charlie.items["database"] == Decimal("0.00")


def test_measured_sizes_replace_the_plans_allowance(tmp_path):
    fleet, _ = costs_of(tmp_path)
    measured = fleet_costs(fleet, {"alpha": 5 * 1024**3})
    assert measured is not None  # the fleet sets prices
    alpha = measured.cost("alpha")
    assert alpha is not None
    assert alpha.quantities["database_source"] == "measured" and alpha.items["database"] == Decimal("12.50")
    assert alpha.items["backups"] == Decimal("1.05")  # 7 x 1.5 GB x 0.10
    bravo = measured.cost("bravo")
    assert bravo is not None and bravo.quantities["database_source"] == "plan"


def test_a_plans_named_services_are_priced_with_their_overrides(tmp_path):
    plans = {
        "web": {
            "services": {
                "web": {"image": "example/web:1.0.0", "cpu": 0.5, "memory_mb": 512, "replicas": 2, "routes": ["app-", "api-", "domains", "api_domains"],
                        "max": {"cpu": 1.0, "memory_mb": 1024, "replicas": 2}},
                "admin": {"image": "example/admin:1.0.0", "cpu": 0.25, "memory_mb": 256, "replicas": 1},
            },
            "user_limit": 3, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7,
        },
    }
    tenants = [tenant("foxtrot", "web", overrides={"services": {"web": {"memory_mb": 1024}}})]
    _, costs = costs_of(tmp_path, plans=plans, tenants=tenants)
    foxtrot = costs.cost("foxtrot")
    # web: 2 x 1024 MB (its override) + admin 256 MB = 2.25 GB; 2 x 0.5 + 0.25 = 1.25 CPU
    assert (foxtrot.quantities["ram_gb"], foxtrot.quantities["cpu"]) == (Decimal("2.25"), Decimal("1.25"))
    assert (foxtrot.items["ram"], foxtrot.items["cpu"]) == (Decimal("45.00"), Decimal("37.50"))


def test_no_prices_no_costs(tmp_path):
    _, costs = costs_of(tmp_path, prices=None)
    assert costs is None


# ---------------------------------------------------------------- the rule for shared resources


def test_shared_resources_are_split_by_the_documented_rule_and_fully_recovered(tmp_path):
    _, costs = costs_of(tmp_path)
    proxy = [row.items["proxy"] for row in costs.tenants]
    assert proxy == [Decimal("22.50")] * 4  # equal shares, suspended tenants included (their maintenance page)
    redis = {row.tenant: row.items["shared_redis"] for row in costs.tenants}
    assert redis == {"alpha": Decimal("8.00"), "bravo": Decimal("24.00"), "charlie": Decimal("0.00"), "delta": Decimal("8.00")}
    assert sum(proxy) == Decimal("90.00") and sum(redis.values()) == Decimal("40.00")


def test_a_new_tenant_lowers_everyones_proxy_share(tmp_path):
    _, costs = costs_of(tmp_path, tenants=[*TENANTS, tenant("echo", "unpriced")])
    assert {row.items["proxy"] for row in costs.tenants} == {Decimal("18.00")}


# ---------------------------------------------------------------- currencies


def test_a_price_in_another_currency_is_an_error_naming_every_such_plan(tmp_path):
    plans = {name: dict(plan) for name, plan in PLANS.items()}
    plans["small"]["price"] = {"amount": 49, "currency": "USD"}
    plans["big"]["price"] = {"amount": 119, "currency": "EUR"}
    folder = write_fleet(tmp_path, plans=plans)
    fleet = load_fleet(folder, environment(), root=tmp_path)
    with pytest.raises(SpecError) as raised:
        fleet_costs(fleet)
    text = str(raised.value)
    assert "plans.small.price.currency: plan small is priced in USD, but fleet:prices are in BRL" in text
    assert "plans.big.price.currency: plan big is priced in EUR" in text

    code, out, err = run("cost", "--root", str(tmp_path), "--stack", "test")
    assert code == 2 and out == ""
    assert "tenants/_plans.yaml: plans.small.price.currency: plan small is priced in USD" in err


def test_a_malformed_price_is_a_spec_error_naming_the_field(tmp_path):
    plans = {name: dict(plan) for name, plan in PLANS.items()}
    plans["small"]["price"] = {"amount": -1, "currency": "reais"}
    write_fleet(tmp_path, plans=plans)
    code, _, err = run("cost", "--root", str(tmp_path), "--stack", "test")
    assert code == 2
    assert "plans.small.price.amount" in err and "plans.small.price.currency" in err


# ---------------------------------------------------------------- fleet cost


def test_cost_json_shape(tmp_path):
    write_fleet(tmp_path)
    code, out, _ = run("cost", "--root", str(tmp_path), "--stack", "test", "--json")
    assert code == 0
    document = json.loads(out)
    assert set(document) == {"stack", "currency", "period", "tenants", "totals"}
    assert (document["stack"], document["currency"], document["period"]) == ("test", "BRL", "month")
    alpha = document["tenants"][0]
    assert set(alpha) == {"tenant", "plan", "status", "cost", "price", "margin", "margin_percent", "quantities", "notes"}
    assert alpha["cost"] == {
        "ram": "10.00", "cpu": "15.00", "database": "5.00", "backups": "0.42", "proxy": "22.50", "shared_redis": "8.00", "total": "60.92",
    }
    assert (alpha["price"], alpha["margin"], alpha["margin_percent"]) == ("247.00", "186.08", "75.3")
    assert alpha["quantities"]["database_source"] == "plan"
    charlie = document["tenants"][2]
    assert (charlie["price"], charlie["margin"]) == (None, None)
    totals = document["totals"]
    assert Decimal(totals["cost"]) == sum(Decimal(row["cost"]["total"]) for row in document["tenants"])
    assert Decimal(totals["margin"]) == sum(Decimal(row["margin"]) for row in document["tenants"] if row["margin"] is not None)


def test_cost_table_and_measured_sizes_from_a_status_file(tmp_path):
    write_fleet(tmp_path)
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"stack": "test", "tenants": [{"tenant": "alpha", "size_bytes": 5 * 1024**3}, {"tenant": "bravo", "size_bytes": None}]}))
    code, out, _ = run("cost", "--root", str(tmp_path), "--stack", "test", "--sizes", str(status), "--tenant", "alpha")
    assert code == 0
    assert "BRL a month" in out
    row = next(line for line in out.splitlines() if "alpha" in line)
    assert "12.50" in row and "247.00" in row
    assert "bravo" not in out.split("total")[0]


def test_cost_without_prices_says_how_to_set_them(tmp_path):
    write_fleet(tmp_path, prices=None)
    code, _, err = run("cost", "--root", str(tmp_path), "--stack", "test")
    assert code == 2 and "sets no fleet:prices" in err


def test_the_seed_examples_carry_their_list_prices():
    from fleet.paths import PROJECT_ROOT

    root = PROJECT_ROOT / "examples" / "004-crm-imobiliario"
    code, out, _ = run("cost", "--root", str(root), "--stack", "prod", "--json")
    assert code == 0
    prices = {row["plan"]: row["price"] for row in json.loads(out)["tenants"]}
    assert {prices["prime"], prices["k"], prices["k2"]} == {"247.00", "397.00", "597.00"}


# ---------------------------------------------------------------- the PR summary


@pytest.fixture(scope="module")
def priced_repo(tmp_path_factory):
    from tests.unit.test_preview import Repo

    repo = Repo(tmp_path_factory.mktemp("priced-fleet"))

    def price_plans(data):
        for name, amount in (("basic", 247), ("pro", 397), ("enterprise", 597)):
            data["plans"][name]["price"] = {"amount": amount, "currency": "BRL"}
            data["plans"][name]["database_gb"] = 2

    def price_stack(data):
        data["config"]["fleet:prices"] = {"currency": "BRL", "ram_gb": 20, "cpu": 30, "database_gb": 2.5, "backup_gb": 0.1, "proxy": 50}

    repo.edit_yaml("tenants/_plans.yaml", price_plans)
    repo.edit_yaml("Pulumi.dev.yaml", price_stack)
    repo.commit("price the plans and the resources")
    repo.git("tag", "-f", "base")
    return repo


@pytest.fixture
def priced(priced_repo):
    priced_repo.reset()
    return priced_repo


def test_the_summary_shows_the_cost_and_margin_change_of_a_plan_change(priced):
    priced.edit("novaroma", plan="pro")
    priced.commit("novaroma: basic -> pro")
    code, out, _ = priced.plan("--format", "markdown")
    assert code == 0
    # basic: 0.5 GB x 20 + 0.5 CPU x 30 + 2 GB x 2.5 + 7 x 0.6 GB x 0.1 + 50 / 5 = 40.42
    # pro: 0.75 GB x 20 + 0.75 CPU x 30 + 5 + 30 x 0.6 GB x 0.1 + 10 = 54.30
    assert "monthly cost BRL 40.42 → 54.30 (+13.88), margin 206.58 → 342.70 (+136.12)" in out
    assert "fleet monthly cost BRL" in out


def test_the_summary_shows_the_cost_of_an_added_and_of_a_removed_tenant(priced):
    from tests.unit.test_preview import ITABIRA

    priced.write("itabira", ITABIRA)
    priced.remove("pirapora")
    code, out, _ = priced.plan()
    assert code == 0
    assert "monthly cost BRL 40.42, price 247.00, margin 206.58" in out  # 6 tenants share the proxy either way
    removed = next(line for line in out.splitlines() if "pirapora" in line and "monthly cost" in line)
    assert "price 597.00 → none" in removed and "retained database and backups cost 10.40 until purged" in removed  # 2 x 2.5 + 90 x 0.6 x 0.1


def test_a_summary_with_a_mismatched_currency_warns_and_names_the_plan(priced):
    priced.edit_yaml("tenants/_plans.yaml", lambda data: data["plans"]["pro"]["price"].update(currency="USD"))
    code, out, _ = priced.plan()
    assert "⚠ costs of the head not shown: plan pro is priced in USD, but fleet:prices are in BRL" in out
