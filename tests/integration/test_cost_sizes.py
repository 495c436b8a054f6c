"""`fleet cost --sizes live`: the databases' sizes measured on a real PostgreSQL replace the plans' allowance."""

from __future__ import annotations

import contextlib
import io
import json
from decimal import Decimal

import pytest

from fleet.bench.servers import PostgresCluster
from fleet.cli.main import main
from tests.integration.test_backup import STACK, FleetOnServers
from tests.support.fixtures import running

PRICES = {"currency": "BRL", "ram_gb": 20, "cpu": 30, "database_gb": 1000, "backup_gb": 1}


@pytest.fixture(scope="module")
def cluster():
    # Its own cluster: provisioning locks the server down (no CONNECT for PUBLIC), which the session's shared one must not get.
    with running(PostgresCluster("cost-sizes-admin-5e1b")) as (server,):
        yield server


def test_live_sizes_are_measured_on_the_servers(tmp_path, cluster):
    fleet = FleetOnServers(tmp_path, {"shared-1": cluster, "dedicated-1": cluster})
    fleet.provision(["santarita", "gurupi"])
    fleet.config["tenants"] = ["santarita", "gurupi"]
    fleet.config["prices"] = PRICES
    fleet.write_stack_file()
    secrets = fleet.write_secrets_file()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["cost", "--root", str(tmp_path), "--stack", STACK, "--secrets", str(secrets), "--sizes", "live", "--json"])
    assert code == 0
    rows = {row["tenant"]: row for row in json.loads(out.getvalue())["tenants"]}
    assert set(rows) == {"santarita", "gurupi"}
    for row in rows.values():
        assert row["quantities"]["database_source"] == "measured"
        measured_gb = Decimal(row["quantities"]["database_gb"])
        assert Decimal("0.001") <= measured_gb < Decimal("0.1")  # a new database: a few MB
        # priced at 1000 a GB: the cost follows the measured size (the quantity shown is rounded to 0.001 GB)
        assert abs(Decimal(row["cost"]["database"]) - measured_gb * 1000) <= Decimal("0.5")
