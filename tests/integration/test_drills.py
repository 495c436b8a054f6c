"""Restore drills on a real PostgreSQL 15: a good drill, a damaged backup, a manifest the data doesn't match, the
tenant filter, and what `fleet status` shows. The scratch database is always gone afterwards."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from psycopg import sql

from fleet.bench.servers import PostgresCluster
from fleet.cli.main import main
from fleet.ops import backups, drills, status
from tests.integration.test_backup import STACK, T0, FleetOnServers, clock_at
from tests.support.fixtures import running


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with running(PostgresCluster("drill-admin-secret")) as (cluster,):
        fleet = FleetOnServers(tmp_path_factory.mktemp("drill-fleet"), {"shared-1": cluster, "dedicated-1": cluster})
        fleet.provision()
        for tenant in ("gurupi", "novaroma"):
            fleet.seed(tenant, {"items": 500, "users": 7})
        with fleet.admin_connect("gurupi") as connection:  # types whose text form depends on session settings
            connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(fleet.inventory().tenant("gurupi").role)))
            connection.execute(
                "CREATE TABLE kinds (id int PRIMARY KEY, ratio float8, amount numeric(12,4), at timestamptz, span interval, blob bytea,"
                " doc jsonb, gone text, doubled int GENERATED ALWAYS AS (id * 2) STORED)"
            )
            connection.execute(
                "INSERT INTO kinds (id, ratio, amount, at, span, blob, doc, gone) SELECT g, g / 3.0, g * 1.0001, '2026-11-30 01:02:03+00'::timestamptz + g * interval '1 hour',"
                " g * interval '90 minutes', decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'name', 'São ' || g), 'x' FROM generate_series(1, 300) g"
            )
            connection.execute("ALTER TABLE kinds DROP COLUMN gone")
        fleet.config["backups"] = {"dir": str(fleet.root / "backups")}
        yield fleet


def scratch_databases(fleet) -> list[str]:
    with fleet.clusters["shared-1"].connect() as admin:
        return [name for (name,) in admin.execute("select datname from pg_database where datname like 'fleet\\_drill\\_%%'").fetchall()]


def backup(fleet, tenant: str, when=T0) -> Path:
    inventory = fleet.inventory()
    (result,) = backups.backup_many(inventory, [tenant], clock=clock_at(when))
    assert result.ok, result.error
    assert result.path is not None
    return Path(result.path)


def test_a_good_drill_checks_rows_checksums_and_tables_then_drops_its_scratch_copy(fleet):
    dump = backup(fleet, "gurupi")
    manifest = json.loads(dump.with_suffix(".json").read_text())
    assert set(manifest["checksums"]) == set(manifest["tables"]) == {"public.items", "public.users", "public.kinds"}
    steps: list[str] = []
    result = drills.run_drill(fleet.inventory(), "gurupi", clock=clock_at(T0 + timedelta(hours=1)), on_step=steps.append)
    assert result.ok, result.problems
    assert (result.tables, result.rows, result.backup, result.server) == (3, 807, str(dump), "shared-1")
    assert result.scratch_database == "fleet_drill_gurupi_20261101t030000" and result.scratch_dropped
    assert steps[1] == "restoring 807 rows into fleet_drill_gurupi_20261101t030000 on shared-1"
    assert scratch_databases(fleet) == []
    (record,) = drills.drill_history(fleet.inventory().backups_dir, "gurupi")
    assert record["ok"] and record["seconds"] > 0 and record["backup"] == str(dump)
    assert fleet.counts("gurupi")["public.items"] == 500  # the live database was not touched


def test_a_damaged_backup_fails_names_the_problem_and_leaves_no_scratch_database(fleet):
    dump = backup(fleet, "novaroma", T0 + timedelta(days=1))
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    result = drills.run_drill(fleet.inventory(), "novaroma", clock=clock_at(T0 + timedelta(days=1, hours=1)))
    assert not result.ok
    assert result.problems == [f"{dump}: content differs from the sha256 recorded when it was written (damaged or replaced)"]
    assert result.scratch_database is None and scratch_databases(fleet) == []


def test_rows_that_differ_from_the_manifest_fail_after_the_restore_and_the_scratch_copy_still_goes(fleet):
    dump = backup(fleet, "novaroma", T0 + timedelta(days=2))
    path = dump.with_suffix(".json")
    manifest = json.loads(path.read_text())
    manifest["checksums"]["public.users"] = "0123456789abcdef"  # what the rows were when the backup was taken
    manifest["tables"]["public.items"] = 501
    path.write_text(json.dumps(manifest))
    result = drills.run_drill(fleet.inventory(), "novaroma", clock=clock_at(T0 + timedelta(days=2, hours=1)))
    assert not result.ok and result.scratch_dropped and scratch_databases(fleet) == []
    assert result.problems[0] == "manifest vs restored: public.items: 501 rows in the dump, 500 restored"
    assert result.problems[1].startswith("checksum of public.users: 0123456789abcdef in the manifest, ")


def test_the_cli_drills_only_the_chosen_tenant_and_status_shows_the_last_good_drill(fleet, capsys):
    fleet.write_stack_file()
    secrets = fleet.write_secrets_file()
    common = ["--stack", STACK, "--root", str(fleet.root), "--secrets", str(secrets)]
    assert main(["drill", "--tenant", "gurupi", "--json", *common]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [drill["tenant"] for drill in document["drills"]] == ["gurupi"] and document["ok"]
    assert main(["drill", "--tenant", "novaroma", "--json", *common]) == 1  # its newest backup is the one with a wrong manifest
    assert scratch_databases(fleet) == []

    inventory = fleet.inventory()
    last = drills.last_good_drill(inventory.backups_dir, "gurupi")
    assert last is not None
    rows, _ = status.fleet_status(inventory, ["gurupi", "novaroma"], clock=clock_at(T0 + timedelta(days=3)))
    by_tenant = {row.tenant: row for row in rows}
    assert by_tenant["gurupi"].last_drill == last["started_at"]
    assert by_tenant["novaroma"].last_drill is None  # it never had a good one

    # A plan with a weekly schedule flags a tenant whose last good drill is older, or missing.
    catalog = fleet.workspace.tenants_dir / "_plans.yaml"
    original = catalog.read_text()
    catalog.write_text(original.replace("    backup_retention_days:", "    drills: {every: 7d}\n    backup_retention_days:"))  # every plan
    try:
        inventory = fleet.inventory()
        age = drills.drill_age_days(last, T0) or 0.0
        later = clock_at(T0 + timedelta(days=7 + max(0.0, -age) + 1))
        rows, _ = status.fleet_status(inventory, ["gurupi", "novaroma"], clock=later)
        flags = {row.tenant: row.flags for row in rows}
        assert any(flag.startswith("restore drill ") and flag.endswith("d old (plan: every 7d)") for flag in flags["gurupi"]), flags
        assert "no restore drill (plan: every 7d)" in flags["novaroma"]
    finally:
        catalog.write_text(original)


def test_status_of_an_offboarded_tenant_shows_its_timer_and_final_backup(fleet):
    """Not a drill, but the same backups: what `fleet status` says of a tenant whose data is kept until its purge is proposed."""
    dump = backup(fleet, "catasaltas", T0 + timedelta(days=4))
    original = fleet.workspace.read("catasaltas")
    fleet.workspace.edit("catasaltas", status="offboarded", offboarded_on="2026-11-05")
    try:
        rows, _ = status.fleet_status(fleet.inventory(), ["catasaltas"], clock=clock_at(T0 + timedelta(days=10)))
        (row,) = rows
        assert (row.status, row.final_backup) == ("offboarded", str(dump))
        assert row.offboarding == "offboarded 2026-11-05, kept until 2026-12-05 (24 days left)"
        rows, _ = status.fleet_status(fleet.inventory(), ["catasaltas"], clock=clock_at(T0 + timedelta(days=40)))
        assert "retention ended 2026-12-05: purge proposed" in rows[0].flags
    finally:
        fleet.workspace.write("catasaltas", original)
