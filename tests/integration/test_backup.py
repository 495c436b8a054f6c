"""Backups and restores of real tenant databases: pg_dump -Fc per tenant, verified, retention, restore, failures.

The shipped tenants' roles and databases are created on a real PostgreSQL cluster the way the official
provider creates them (LOGIN role with password and connection limit, database owned by it from
template0, CONNECT/TEMPORARY revoked from PUBLIC), then filled with rows as each tenant's app would.
No engine: the inventory reads passwords from a JSON secrets file or a StaticSecrets source.

`FleetOnServers` is shared with test_verify_status.py and test_registry.py (move it into tests/support
when convenient).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from components.backup import PASSWORD_ENV, TARGET_ENV, backup_command, backup_target
from fleet.bench.servers import PostgresCluster
from fleet.cli.main import main
from fleet.model import db_limits, derive
from fleet.model.spec import Retention
from fleet.ops import backups, restore
from fleet.ops.inventory import load_inventory
from fleet.ops.secrets import StaticSecrets
from fleet.postgres import catalog, drops, dumps
from fleet.postgres.access import ServerAccess
from fleet.postgres.privileges import lock_shared_databases
from tests.support.fixtures import running
from tests.support.tenant_db import cluster_access, provision_tenant_database
from tests.unit.graph import FleetWorkspace

STACK = "ops-test"
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


class FleetOnServers:
    """An editable copy of the shipped tenants whose databases live on real clusters (server key -> cluster)."""

    def __init__(self, root: Path, clusters: dict[str, PostgresCluster], *, backups_dir: Path | None = None) -> None:
        self.root = root
        self.workspace = FleetWorkspace(root)
        self.clusters = clusters
        config = self.workspace.config
        config.pop("server_passwords", None)
        config["servers"] = {
            key: {"host": "127.0.0.1", "port": cluster.port, "admin_user": cluster.admin_user, "max_connections": 100, "sslmode": "disable"}
            for key, cluster in clusters.items()
        }
        config["backups"] = {"dir": str(backups_dir or root / "backups")}
        self.config = config
        self.passwords: dict[str, str] = {}
        self.secrets_path: Path | None = None  # where a test that runs the CLI wrote write_secrets_file()

    @property
    def server_passwords(self) -> dict[str, str]:
        return {key: cluster.admin_password for key, cluster in self.clusters.items()}

    def secrets(self) -> StaticSecrets:
        return StaticSecrets(self.server_passwords, self.passwords, "test clusters")

    def inventory(self, secrets=None):
        return load_inventory(STACK, root=self.root, tenants_dir=self.workspace.tenants_dir, config=self.config, secrets=secrets or self.secrets())

    def write_stack_file(self) -> Path:
        """`<root>/Pulumi.<STACK>.yaml` with the plain config, for the CLI's --root."""
        path = self.root / f"Pulumi.{STACK}.yaml"
        path.write_text(yaml.safe_dump({"config": {f"fleet:{key}": value for key, value in self.config.items()}}, sort_keys=False))
        return path

    def write_secrets_file(self, path: Path | None = None) -> Path:
        path = path or self.root / "secrets.json"
        path.write_text(json.dumps({"server_passwords": self.server_passwords, "database_passwords": self.passwords}))
        path.chmod(0o600)
        return path

    def provision(self, names=None, *, legacy: bool = False) -> None:
        """Create each tenant's roles and database as the official provider would (idempotent: brings them to the spec).

        `legacy`: as tenants created before the owner/app split are (the login role owns the database)."""
        inventory = self.inventory(StaticSecrets(self.server_passwords))
        for cluster in {id(cluster): cluster for cluster in self.clusters.values()}.values():
            lock_shared_databases(cluster_access(cluster))  # the platform's ServerLockdown
        for entry in inventory.select(names):
            password = self.passwords.setdefault(entry.name, f"pw-{entry.name}-{os.urandom(6).hex()}")
            provision_tenant_database(
                cluster_access(self.clusters[entry.server_key]), entry.database, entry.role, password,
                connection_limit=entry.connection_limit, login=entry.active, legacy=legacy,
                settings=db_limits.app_role_limits(entry.spec, entry.plan).settings(),
                database_connection_limit=db_limits.database_connection_limit(entry.spec, entry.plan, jobs=bool(derive.container_jobs(entry.spec, entry.plan))),
            )

    def seed(self, tenant: str, tables: dict[str, int]) -> None:
        """Create tables with the given row counts as the tenant's own role (as its app would); rows include tabs and newlines."""
        entry = self.inventory().tenant(tenant)
        cluster = self.clusters[entry.server_key]
        with self.admin_connect(tenant) as connection:
            connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(entry.role)))
            for table, rows in tables.items():
                name = sql.Identifier(table)
                connection.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id serial PRIMARY KEY, body text)").format(name))
                connection.execute(sql.SQL("TRUNCATE {}").format(name))
                connection.execute(
                    sql.SQL("INSERT INTO {} (body) SELECT 'row ' || g || E'\\twith a tab\\nand a newline' FROM generate_series(1, %s) g").format(name), [rows]
                )
        assert cluster  # the tenant's own server

    def admin_connect(self, tenant: str):
        entry = self.inventory().tenant(tenant)
        return self.clusters[entry.server_key].connect(entry.database)

    def counts(self, tenant: str, database: str | None = None) -> dict[str, int]:
        inventory = self.inventory()
        entry = inventory.tenant(tenant)
        return catalog.table_counts(inventory.admin_access(entry.server_key), database or entry.database)


@pytest.fixture(scope="module")
def cluster():
    with running(PostgresCluster("backup-admin-secret")) as (server,):
        yield server


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, cluster):
    """Both server keys of the dev config on one cluster; every shipped tenant provisioned and seeded."""
    fleet = FleetOnServers(tmp_path_factory.mktemp("backup-fleet"), {"shared-1": cluster, "dedicated-1": cluster})
    fleet.provision()
    for index, tenant in enumerate(sorted(fleet.passwords)):
        fleet.seed(tenant, {"items": 10 * (index + 1), "users": index + 2})
    return fleet


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "backups"


def clock_at(*moments: datetime) -> Callable[[], datetime]:
    """A fake clock returning the given moments in turn (the last one forever)."""
    remaining = list(moments)

    def now() -> datetime:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return now


def inventory_in(fleet, folder: Path):
    inventory = fleet.inventory()
    inventory.backups_dir = folder
    return inventory


def path_of(result: backups.BackupResult) -> Path:
    """Where a backup that was made is."""
    assert result.path is not None, result.error
    return Path(result.path)


# ---------------------------------------------------------------- backing up


def test_backups_of_every_tenant_are_verified_dumps_named_by_tenant_and_utc_time(fleet, folder):
    inventory = inventory_in(fleet, folder)
    results = backups.backup_many(inventory, [entry.name for entry in inventory.select()], clock=clock_at(T0))

    assert [result.tenant for result in results] == ["catasaltas", "gurupi", "novaroma", "pirapora", "santarita"]
    assert all(result.ok for result in results), [result.error for result in results]
    for result in results:
        path = path_of(result)
        assert path == folder / result.tenant / f"{result.tenant}-20261101T020000Z.dump"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a tenant's data
        manifest = json.loads(path.with_suffix(".json").read_text())
        expected = fleet.counts(result.tenant)
        # The manifest's counts are read back from the dump itself, and equal the live tables'.
        assert manifest["tables"] == expected and result.rows == sum(expected.values()) and result.tables == 2
        assert manifest["sha256"] == dumps.sha256_of(path) and manifest["tenant"] == result.tenant
        assert list(path.parent.glob("*.partial")) == []
    # The suspended tenant (its role may not log in) is backed up as the admin all the same.
    assert results[0].tenant == "catasaltas" and results[0].ok


def test_row_counts_read_from_a_dump_survive_tabs_and_newlines_in_rows(fleet, tmp_path):
    inventory = fleet.inventory()
    access = inventory.admin_access("shared-1")
    file = dumps.dump(access, "tenant_gurupi", tmp_path / "gurupi.dump")
    assert backups.dump_row_counts(file.path) == fleet.counts("gurupi")
    assert backups.check_dump(file.path).counts == fleet.counts("gurupi")


def test_retention_on_a_fake_clock_prunes_only_after_a_successful_backup_and_keeps_the_newest(fleet, folder):
    inventory = inventory_in(fleet, folder)
    target = backups.backup_target(inventory, "novaroma")  # basic: 7 days
    assert target.retention_days == 7
    days = [T0 + timedelta(days=day) for day in range(12)]
    for moment in days:
        assert backups.backup_one(target, folder, clock=clock_at(moment)).ok
    kept = [b.taken_at for b in backups.list_backups(folder, "novaroma")]
    # After the backup of day 11, everything older than day 4 is gone (day 4 itself is exactly 7 days old: kept).
    assert kept == days[4:]
    assert sorted(p.name for p in (folder / "novaroma").glob("*.json")) == [f"novaroma-{backups.stamp(d)}.json" for d in days[4:]]

    # A failing backup 60 days later prunes nothing, although every backup is past retention.
    fleet_password = target.access
    broken = backups.BackupTarget("novaroma", "tenant_novaroma", ServerAccess(fleet_password.host, fleet_password.port, "postgres", "wrong", "disable"), Retention(daily=7))
    failed = backups.backup_one(broken, folder, clock=clock_at(T0 + timedelta(days=60)))
    assert failed.error is not None
    assert not failed.ok and "password authentication failed" in failed.error and failed.pruned == []
    assert [b.taken_at for b in backups.list_backups(folder, "novaroma")] == days[4:]

    # The next successful backup prunes all older ones but itself.
    later = backups.backup_one(target, folder, clock=clock_at(T0 + timedelta(days=61)))
    assert later.ok and len(later.pruned) == len(days[4:])
    assert [b.taken_at for b in backups.list_backups(folder, "novaroma")] == [T0 + timedelta(days=61)]


def test_one_tenants_failure_does_not_stop_the_others_and_the_exit_code_says_so(fleet, folder, capsys):
    # A new tenant file whose database was never created on the server.
    fleet.workspace.write("itabira", {"name": "itabira", "display_name": "Itabira", "plan": "basic", "database": {"server": "shared-1"}})
    try:
        fleet.config["backups"] = {"dir": str(folder)}
        fleet.write_stack_file()
        secrets = fleet.write_secrets_file()
        code = main(["backup", "--all", "--stack", STACK, "--root", str(fleet.root), "--secrets", str(secrets), "--json"])
        document = json.loads(capsys.readouterr().out)
    finally:
        fleet.workspace.tenant_file("itabira").unlink()
    assert code == 1 and document["ok"] is False
    by_tenant = {entry["tenant"]: entry for entry in document["backups"]}
    assert set(by_tenant) == {"catasaltas", "gurupi", "itabira", "novaroma", "pirapora", "santarita"}
    assert not by_tenant["itabira"]["ok"] and 'database "tenant_itabira" does not exist' in by_tenant["itabira"]["error"]
    assert all(entry["ok"] for name, entry in by_tenant.items() if name != "itabira")
    assert not (folder / "itabira").exists() or list((folder / "itabira").iterdir()) == []


def test_a_missing_admin_password_fails_that_servers_tenants_only(fleet, folder):
    secrets = StaticSecrets({"shared-1": fleet.clusters["shared-1"].admin_password}, description="a partial secrets file")
    inventory = fleet.inventory(secrets)
    inventory.backups_dir = folder
    results = {r.tenant: r for r in backups.backup_many(inventory, ["gurupi", "pirapora"], clock=clock_at(T0))}
    assert results["gurupi"].ok
    assert results["pirapora"].error is not None
    assert not results["pirapora"].ok and "no admin password for server dedicated-1" in results["pirapora"].error
    assert "FLEET_SERVER_PASSWORD_DEDICATED_1" in results["pirapora"].error


# ---------------------------------------------------------------- corrupted dumps


def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: int(len(data) * 0.7)]))
    elif how == "header":
        data[0:5] = b"XXXXX"
        path.write_bytes(bytes(data))
    else:  # bytes flipped in the compressed data near the end
        for offset in range(len(data) - 300, len(data) - 200):
            data[offset] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "header", "flipped"])
def test_a_corrupted_dump_is_detected_and_never_restored(fleet, folder, how):
    inventory = inventory_in(fleet, folder)
    result = backups.backup_one(backups.backup_target(inventory, "santarita"), folder, clock=clock_at(T0))
    path = path_of(result)
    _corrupt(path, how)

    with pytest.raises(backups.BackupError, match="is not a readable dump"):
        backups.check_dump(path)  # without the manifest's checksum: the content itself is found bad
    with pytest.raises(backups.BackupError) as refused:
        restore.restore_backup(inventory, "santarita", path, into="tenant_santarita_corrupt", clock=clock_at(T0))
    assert "sha256" in str(refused.value) or "not a readable dump" in str(refused.value)
    assert not catalog.database_exists(inventory.admin_access("shared-1"), "tenant_santarita_corrupt")


def test_a_dump_that_fails_verification_is_not_kept_and_prunes_nothing(fleet, folder, monkeypatch):
    inventory = inventory_in(fleet, folder)
    target = backups.backup_target(inventory, "gurupi")
    old = backups.backup_one(target, folder, clock=clock_at(T0))
    assert old.ok
    real_dump = dumps.dump

    def damaged_dump(access, database, path, **kwargs):
        written = real_dump(access, database, path, **kwargs)
        _corrupt(Path(path), "truncated")
        return written

    monkeypatch.setattr(dumps, "dump", damaged_dump)
    failed = backups.backup_one(target, folder, clock=clock_at(T0 + timedelta(days=100)))
    assert failed.error is not None
    assert not failed.ok and "not a readable dump" in failed.error
    assert [b.path.name for b in backups.list_backups(folder, "gurupi")] == [path_of(old).name]


# ---------------------------------------------------------------- restoring


def test_restore_goes_into_a_fresh_isolated_database_with_equal_row_counts(fleet, folder):
    inventory = inventory_in(fleet, folder)
    made = backups.backup_one(backups.backup_target(inventory, "pirapora"), folder, clock=clock_at(T0))
    access = inventory.admin_access("dedicated-1")
    before = fleet.counts("pirapora")

    result = restore.restore_backup(inventory, "pirapora", path_of(made), clock=clock_at(T0 + timedelta(hours=1)))
    try:
        assert result.ok and result.mismatches == [] and not result.replaced
        assert result.database == "tenant_pirapora_restored_20261101t030000"
        assert fleet.counts("pirapora", result.database) == before == fleet.counts("pirapora")
        with access.connect() as admin:
            owner, public_connect = admin.execute(
                "select pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') from pg_database where datname = %s", [result.database]
            ).fetchone()
        with access.connect(result.database) as restored:
            table_owners = {owner for (owner,) in restored.execute("select tableowner from pg_tables where schemaname = 'public'")}
        # Owned by the owner role, as the live database is; the app gets its grants before it could see it.
        assert owner == "tenant_pirapora_dbo" and public_connect is False and table_owners == {"tenant_pirapora_dbo"}
        with ServerAccess("127.0.0.1", access.port, "tenant_pirapora_app", fleet.passwords["pirapora"], "disable").connect(result.database) as app:
            assert app.execute("select count(*) from items").fetchone()[0] == before["public.items"]
            app.execute("insert into items (body) values ('written after the restore')")  # its sequence too
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(f"drop database {result.database}")

        # A restore never goes over an existing database, nor into the live one.
        with pytest.raises(backups.BackupError, match="already exists"):
            restore.restore_backup(inventory, "pirapora", path_of(made), into=result.database)
        with pytest.raises(backups.BackupError, match="live database"):
            restore.restore_backup(inventory, "pirapora", path_of(made), into="tenant_pirapora")
    finally:
        drops.drop_database(access, result.database)


def test_restore_refuses_another_tenants_backup(fleet, folder, tmp_path):
    inventory = inventory_in(fleet, folder)
    made = backups.backup_one(backups.backup_target(inventory, "gurupi"), folder, clock=clock_at(T0))
    with pytest.raises(backups.BackupError, match="a backup of tenant gurupi, not santarita"):
        restore.restore_backup(inventory, "santarita", path_of(made))
    stray = tmp_path / "copied-by-hand.dump"  # no manifest beside it: the tables' owner gives it away
    stray.write_bytes(path_of(made).read_bytes())
    with pytest.raises(backups.BackupError, match="holds tables of tenant_gurupi_app, not of santarita's roles tenant_santarita_app or tenant_santarita_dbo"):
        restore.restore_backup(inventory, "santarita", stray)


def test_restore_notices_row_counts_that_differ_from_the_dump(fleet, folder, monkeypatch):
    inventory = inventory_in(fleet, folder)
    made = backups.backup_one(backups.backup_target(inventory, "gurupi"), folder, clock=clock_at(T0))
    real_counts = catalog.table_counts
    monkeypatch.setattr(catalog, "table_counts", lambda access, database: {**real_counts(access, database), "public.items": 1})
    result = restore.restore_backup(inventory, "gurupi", path_of(made), into="tenant_gurupi_check", clock=clock_at(T0))
    try:
        assert not result.ok and len(result.mismatches) == 1
        assert result.mismatches[0].startswith("public.items: ") and result.mismatches[0].endswith("rows in the dump, 1 restored")
    finally:
        drops.drop_database(inventory.admin_access("shared-1"), "tenant_gurupi_check")


def test_restore_replace_through_the_cli_swaps_the_copy_in_and_keeps_the_old_database(fleet, folder, capsys):
    fleet.config["backups"] = {"dir": str(folder)}
    fleet.write_stack_file()
    secrets = fleet.write_secrets_file()
    inventory = fleet.inventory()
    assert main(["backup", "--tenant", "novaroma", "--stack", STACK, "--root", str(fleet.root), "--secrets", str(secrets)]) == 0
    capsys.readouterr()
    (dump,) = (folder / "novaroma").glob("*.dump")
    at_backup = fleet.counts("novaroma")
    fleet.seed("novaroma", {"items": 999})  # the live data moves on after the backup
    access = inventory.admin_access("shared-1")
    with fleet.clusters["shared-1"].connect("tenant_novaroma", user="tenant_novaroma_app", password=fleet.passwords["novaroma"]) as open_session:
        # Without --yes and no terminal to ask on, nothing happens.
        assert main(["restore", "novaroma", "--from", str(dump), "--replace", "--stack", STACK, "--root", str(fleet.root), "--secrets", str(secrets)]) == 1
        assert "confirm with --yes" in capsys.readouterr().err
        code = main(["restore", "novaroma", "--from", str(dump), "--replace", "--yes", "--json", "--stack", STACK, "--root", str(fleet.root), "--secrets", str(secrets)])
        result = json.loads(capsys.readouterr().out)
        with pytest.raises(psycopg.OperationalError):  # the session on the replaced database was ended
            open_session.execute("select 1")
    try:
        assert code == 0 and result["ok"] and result["replaced"] and result["database"] == "tenant_novaroma"
        assert fleet.counts("novaroma") == at_backup
        assert fleet.counts("novaroma", result["previous_database"])["public.items"] == 999
        # The tenant's app logs in to the swapped-in database as before; the kept one refuses connections.
        with fleet.clusters["shared-1"].connect("tenant_novaroma", user="tenant_novaroma_app", password=fleet.passwords["novaroma"]) as app:
            assert app.execute("select count(*) from items").fetchone()[0] == at_backup["public.items"]
        with access.connect() as admin:
            limits = dict(admin.execute("select datname, datconnlimit from pg_database where datname like 'tenant_novaroma%%'").fetchall())
        # The swapped-in copy carries the live database's planned connection limit; the kept one none.
        entry = inventory.tenant("novaroma")
        planned = db_limits.database_connection_limit(entry.spec, entry.plan, jobs=bool(derive.container_jobs(entry.spec, entry.plan)))
        assert limits == {"tenant_novaroma": planned, result["previous_database"]: 0}
    finally:
        drops.drop_database(access, result["previous_database"])
        fleet.seed("novaroma", {"items": 30})


# ---------------------------------------------------------------- the scheduled job's command line


def test_the_scheduled_jobs_command_backs_up_as_the_tenants_own_role(fleet, folder, monkeypatch, capsys):
    inventory = fleet.inventory()
    entry = inventory.tenant("santarita")
    target = backup_target(entry.spec, inventory.environment)
    monkeypatch.setenv(TARGET_ENV, json.dumps(target))
    monkeypatch.setenv(PASSWORD_ENV, fleet.passwords["santarita"])
    command = backup_command(entry.spec, entry.plan, "02:00")
    assert command[:4] == ["python", "-m", "fleet", "backup"] and command[command.index("--retention-days") + 1] == "30"
    # The job's own arguments, minus the daily loop and with this test's folder for /backups.
    argv = command[3:command.index("--daily-at")]
    argv[argv.index("--dir") + 1] = str(folder)

    # A wrong password fails the run (exit 1) and leaves no file; another tenant's name is refused.
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    assert main([*argv, "--json"]) == 1
    (failed,) = json.loads(capsys.readouterr().out)["backups"]
    assert not failed["ok"] and "password authentication failed" in failed["error"]
    assert main([*argv[:2], "gurupi", *argv[3:]]) == 1
    assert "does not match" in capsys.readouterr().err
    assert not list(folder.glob("santarita/*.dump"))

    monkeypatch.setenv(PASSWORD_ENV, fleet.passwords["santarita"])
    assert main([*argv, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["backups"]
    assert result["ok"] and result["tenant"] == "santarita" and result["rows"] == sum(fleet.counts("santarita").values())
    assert len(list((folder / "santarita").glob("*.dump"))) == 1
