"""The pure parts of the operations work: retention on a fake clock, names, schedules, formatting, secret
sources, the inventory, and the scheduled backup and registry components under Pulumi mocks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import pulumi
import pytest

from components.backup import (
    PASSWORD_ENV,
    TARGET_ENV,
    ScheduledBackup,
    ScheduledBackupArgs,
    backup_command,
)
from components.providers.registry import TenantRegistryRowProvider
from components.registry import RegistrySettings, declare_registry, row_values
from fleet.cli.common import human_age, human_bytes
from fleet.cli.main import build_parser
from fleet.errors import FleetError, InputError
from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.model.spec import Retention
from fleet.offline.mocks import Evaluation
from fleet.offline.mocks import run_under_mocks as _run_under_mocks
from fleet.ops import backups, restore, status, verify
from fleet.ops.inventory import load_inventory
from fleet.ops.secrets import (
    ChainedSecrets,
    EnvSecrets,
    FileSecrets,
    StaticSecrets,
    env_suffix,
)
from fleet.paths import PROJECT_ROOT
from tests.unit.graph import FleetWorkspace

UTC = timezone.utc
DEFAULT_DOCKER = cast(pulumi.ProviderResource, None)
"""No docker provider: the job's container goes to the default one, which is all the mocks need."""
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def backups_every_day(days: int, start: datetime = T0) -> list[backups.BackupFile]:
    return [backups.BackupFile(Path(f"x-{day}.dump"), "x", start + timedelta(days=day), 1) for day in range(days)]


# ---------------------------------------------------------------- retention on a fake clock


@pytest.mark.parametrize("plan, days", [("basic", 7), ("pro", 30), ("enterprise", 90)])
def test_retention_keeps_the_plans_days_of_daily_backups(plan, days):
    fleet = load_fleet(PROJECT_ROOT / "tenants", dev_config())
    assert fleet.plans[plan].backup_retention_days == days
    history = backups_every_day(120)
    now = history[-1].taken_at
    kept = [b for b in history if b not in backups.expired(history, days, now)]
    # A backup exactly `days` old is still kept; one a day older is gone.
    assert kept[0].taken_at == now - timedelta(days=days) and len(kept) == days + 1


def test_retention_never_removes_the_newest_backup_however_old():
    history = backups_every_day(3)
    much_later = T0 + timedelta(days=400)
    assert backups.expired(history, 7, much_later) == history[:2]
    assert backups.expired([], 7, much_later) == []


def test_tiers_keep_30_dailies_52_weeklies_and_monthlies_as_002_asks():
    history = backups_every_day(800)  # daily backups for over two years
    now = history[-1].taken_at
    kept = backups.kept(history, Retention(daily=30, weekly=52, monthly=0), now)
    recent = [b for b in kept if b.taken_at >= now - timedelta(days=30)]
    older = [b for b in kept if b.taken_at < now - timedelta(days=30)]
    assert len(recent) == 31  # every backup of the last 30 days (and the one exactly 30 days old)
    # Beyond that, one per ISO week, the newest of its week, for a year: nothing older than 52 weeks.
    assert all(b.taken_at >= now - timedelta(weeks=52) for b in older)
    weeks = {b.taken_at.isocalendar()[:2] for b in older}
    assert len(weeks) == len(older) and 45 <= len(older) <= 48
    assert all(b.taken_at.isoweekday() == 7 or b.taken_at.isocalendar()[:2] == now.isocalendar()[:2] for b in older)  # Sundays: the week's newest
    with_months = backups.kept(history, Retention(daily=7, weekly=0, monthly=24), now)
    months = [b for b in with_months if b.taken_at < now - timedelta(days=7)]
    # The current month's newest is today's (a daily); the 23 months before it keep their last day's backup.
    assert len(months) == 23 and all((b.taken_at + timedelta(days=1)).month != b.taken_at.month for b in months)
    assert (now.year, now.month) == (2029, 1) and (months[0].taken_at.year, months[0].taken_at.month) == (2027, 2)  # 24 months, this one included


def test_tiers_never_drop_the_newest_and_an_int_means_days():
    history = backups_every_day(3)
    much_later = T0 + timedelta(days=400)
    assert backups.expired(history, Retention(daily=1, weekly=1, monthly=1), much_later) == history[:2]
    assert backups.expired(history, 1, history[-1].taken_at) == history[:1]


def test_a_tenants_retention_is_its_own_else_its_plans_tiers_else_its_days(workspace):
    import yaml

    plans_file = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(plans_file.read_text())
    plans["plans"]["pro"]["backup_retention"] = {"daily": 30, "weekly": 52}
    plans_file.write_text(yaml.safe_dump(plans, sort_keys=False))
    workspace.edit("gurupi", backup_retention={"daily": 14, "monthly": 12})
    fleet = load_fleet(workspace.tenants_dir, workspace.config)
    retention = {t.name: derive.retention(t, fleet.plan_of(t)) for t in fleet.tenants}
    assert retention["gurupi"] == Retention(daily=14, weekly=0, monthly=12)
    assert retention["santarita"] == Retention(daily=30, weekly=52, monthly=0)
    assert retention["novaroma"] == Retention(daily=7)  # basic's backup_retention_days


def test_prune_removes_dumps_and_manifests_of_that_tenant_only(tmp_path):
    for day in range(10):
        path = backups.backup_path(tmp_path, "gurupi", T0 + timedelta(days=day))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"dump")
        backups.manifest_path(path).write_text("{}")
    stray = tmp_path / "gurupi" / "notes.txt"
    stray.write_text("keep me")
    partial = tmp_path / "gurupi" / "gurupi-20261001T020000Z.dump.partial"
    partial.write_bytes(b"in progress")
    other = backups.backup_path(tmp_path, "novaroma", T0)
    other.parent.mkdir(parents=True)
    other.write_bytes(b"dump")

    removed = backups.prune(tmp_path, "gurupi", 3, now=T0 + timedelta(days=9))
    assert [p.name for p in removed] == [f"gurupi-{backups.stamp(T0 + timedelta(days=d))}.dump" for d in range(6)]
    left = sorted(p.name for p in (tmp_path / "gurupi").iterdir())
    assert len([n for n in left if n.endswith(".dump")]) == 4 and len([n for n in left if n.endswith(".json")]) == 4
    assert stray.exists() and partial.exists() and other.exists()


def test_backup_names_carry_tenant_and_utc_time():
    local = datetime(2026, 11, 23, 23, 30, tzinfo=timezone(timedelta(hours=-3)))
    path = backups.backup_path(Path("backups"), "santa-rita", local)
    assert path == Path("backups/santa-rita/santa-rita-20261124T023000Z.dump")
    assert backups.parse_backup_name(path) == ("santa-rita", datetime(2026, 11, 24, 2, 30, tzinfo=UTC))
    for name in ("santa-rita-20261124T023000Z.json", "santa-rita-20261124T023000Z.dump.partial", "notes.dump", "x-2026.dump"):
        assert backups.parse_backup_name(Path(name)) is None


def test_a_default_restore_name_says_what_it_is_and_fits_postgres():
    assert restore.default_restore_name("tenant_gurupi", T0) == "tenant_gurupi_restored_20261101t020000"
    with pytest.raises(backups.BackupError, match="--into"):
        restore.default_restore_name("tenant_" + "x" * 40, T0)


def test_compare_counts_names_each_differing_table():
    assert restore.compare_counts({"public.a": 3}, {"public.a": 3}) == []
    assert restore.compare_counts({"public.a": 3, "public.b": 1}, {"public.a": 2, "public.c": 0}) == [
        "public.a: 3 rows in the dump, 2 restored",
        "public.b: 1 rows in the dump, missing after the restore",
        "public.c: not in the dump, 0 restored",
    ]


# ---------------------------------------------------------------- the daily schedule


def test_next_run_is_the_next_time_of_day_in_utc():
    assert derive.next_run(datetime(2026, 11, 1, 1, 59, tzinfo=UTC), "02:00") == datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    assert derive.next_run(datetime(2026, 11, 1, 2, 0, tzinfo=UTC), "02:00") == datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    assert derive.next_run(datetime(2026, 11, 1, 22, 0, tzinfo=timezone(timedelta(hours=-3))), "02:00") == datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    for bad in ("2am", "24:00", "02:60", ""):
        with pytest.raises(InputError, match="HH:MM"):
            derive.next_run(T0, bad)


def test_the_daily_loop_sleeps_until_each_run_and_keeps_going_after_a_failure():
    now = [datetime(2026, 11, 1, 1, 0, tzinfo=UTC)]
    slept: list[float] = []
    outcomes = iter([False, True])

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)

    runs = list(backups.run_daily(lambda: next(outcomes), "02:00", clock=lambda: now[0], sleep=sleep, runs=2))
    assert runs == [False, True] and slept == [3600.0, 86400.0]


# ---------------------------------------------------------------- formatting


def test_human_sizes_and_ages():
    assert [human_bytes(v) for v in (None, 0, 999, 1536, 12_345_678, 5 * 10**12)] == ["?", "0 B", "999 B", "1.5 kB", "12.3 MB", "5.0 TB"]
    assert [human_age(v) for v in (None, 0.25, 5, 72)] == ["-", "15 min", "5.0 h", "3.0 d"]


def test_limit_flags_start_at_80_percent():
    assert status._share_flag("connections", 4, 5) == "connections 4/5 (80%)"
    assert status._share_flag("connections", 3, 5) is None
    assert status._share_flag("connections", 9, -1) is None and status._share_flag("connections", None, 5) is None


def test_a_check_reads_as_tenant_check_target_detail():
    check = verify.Check("santarita", "isolation", "fail", "role tenant_santarita_app connected to database tenant_gurupi", target="gurupi")
    assert check.line() == "santarita: isolation gurupi: role tenant_santarita_app connected to database tenant_gurupi"
    assert not check.ok and verify.Check("x", "http", "skip", "...").ok


def test_proxy_listen_addresses_are_reached_on_loopback():
    assert verify.proxy_address(":443") == ("127.0.0.1", 443)
    assert verify.proxy_address("0.0.0.0:8080") == ("127.0.0.1", 8080)
    assert verify.proxy_address("10.0.0.5:80") == ("10.0.0.5", 80)
    assert verify.proxy_address("[::]:443") == ("127.0.0.1", 443)


# ---------------------------------------------------------------- secrets and the inventory


def dev_config() -> dict:
    from fleet.offline.plan import stack_config

    return stack_config("dev", PROJECT_ROOT)


def test_secret_sources_and_their_order(tmp_path):
    environ = {"FLEET_SERVER_PASSWORD_SHARED_1": "from-env", "FLEET_DATABASE_PASSWORD_SANTA_RITA": "role-env"}
    env = EnvSecrets(environ)
    assert env_suffix("shared-1") == "SHARED_1"
    assert (env.server_password("shared-1"), env.database_password("santa-rita"), env.server_password("dedicated-1")) == ("from-env", "role-env", None)
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"server_passwords": {"shared-1": "from-file", "dedicated-1": "file-only"}}))
    path.chmod(0o600)
    chained = ChainedSecrets(FileSecrets(path), env)
    assert (chained.server_password("shared-1"), chained.server_password("dedicated-1"), chained.database_password("santa-rita")) == ("from-file", "file-only", "role-env")
    assert chained.description == f"file {path} then environment"
    path.write_text(json.dumps({"servers": {}}))
    with pytest.raises(FleetError, match="server_passwords and/or database_passwords"):
        FileSecrets(path)


def test_the_inventory_uses_derives_names_and_says_where_a_password_was_looked_for():
    inventory = load_inventory("dev", secrets=StaticSecrets({"shared-1": "x"}, description="a test source"))
    santarita = inventory.tenant("santarita")
    spec = santarita.spec
    assert (santarita.database, santarita.role) == (derive.database_name(spec), derive.role_name(spec))
    assert santarita.hostnames == tuple(derive.hostnames(spec, inventory.environment))
    assert (santarita.retention_days, santarita.connection_limit, santarita.server_key) == (30, 10, "shared-1")
    assert inventory.backups_dir == PROJECT_ROOT / "backups"
    assert inventory.admin_access("shared-1").admin_password == "x"
    with pytest.raises(FleetError, match=r"no admin password for server dedicated-1 \(looked in: a test source\); set FLEET_SERVER_PASSWORD_DEDICATED_1"):
        inventory.admin_access("dedicated-1")
    with pytest.raises(FleetError, match="FLEET_DATABASE_PASSWORD_GURUPI"):
        inventory.tenant_access("gurupi")
    with pytest.raises(FleetError, match="unknown tenant.*nobody.*tenants: catasaltas, gurupi"):
        inventory.select(["nobody"])


def test_the_inventory_honours_a_shards_tenant_selection(tmp_path):
    workspace = FleetWorkspace(tmp_path)
    workspace.config["tenants"] = ["gurupi", "pirapora"]
    inventory = load_inventory("dev", root=tmp_path, tenants_dir=workspace.tenants_dir, config=workspace.config, secrets=StaticSecrets())
    assert [entry.name for entry in inventory.select()] == ["gurupi", "pirapora"]


def test_the_cli_demands_which_tenants_to_back_up_and_keeps_retention_for_the_job():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["backup"])
    with pytest.raises(SystemExit):
        parser.parse_args(["backup", "--all", "--tenant", "gurupi"])
    args = parser.parse_args(["backup", "--tenant", "gurupi", "--retention-days", "3"])
    with pytest.raises(FleetError, match="--retention-days/-weeks/-months are for the scheduled job"):
        args.handler(args)
    args = parser.parse_args(["restore", "gurupi", "--from", "x.dump"])
    assert getattr(args, "from") == "x.dump" and args.into is None and not args.replace


def test_a_backup_target_from_the_jobs_environment_needs_every_field():
    target = backups.BackupTarget.from_mapping({"tenant": "a", "database": "tenant_a", "host": "db", "port": 5433, "user": "tenant_a_app"}, "pw", 7)
    assert (target.access.host, target.access.port, target.access.admin_user, target.retention_days) == ("db", 5433, "tenant_a_app", 7)
    with pytest.raises(backups.BackupError, match="lacks database, retention_days"):
        backups.BackupTarget.from_mapping({"tenant": "a", "host": "db", "user": "u"}, "pw")


# ---------------------------------------------------------------- components under mocks


def declared(program) -> Evaluation:
    evaluation = Evaluation(stack="dev")
    _run_under_mocks(program, evaluation, "dev")
    return evaluation


def dev_fleet():
    return load_fleet(PROJECT_ROOT / "tenants", dev_config())


@pytest.mark.parametrize("configured", ["~/fleet-backups", "backups", "/srv/fleet-backups"])
def test_the_backup_job_a_purge_and_the_ops_commands_use_one_backup_folder(configured):
    from components.database import tenant_purge
    from fleet.model.spec import Purge
    from fleet.program import backup_folder

    config = {**dev_config(), "backups": {"dir": configured}}
    fleet = load_fleet(PROJECT_ROOT / "tenants", config)
    expected = {"~/fleet-backups": Path.home() / "fleet-backups", "backups": PROJECT_ROOT / "backups", "/srv/fleet-backups": Path("/srv/fleet-backups")}[configured]
    tenant = next(t for t in fleet.tenants if t.status == "active")  # a suspended tenant has no backup job
    purged = tenant.model_copy(update={"purge": Purge(confirm=tenant.name)})

    def program() -> None:
        folder = backup_folder(fleet.environment)  # what the program hands to both
        ScheduledBackup("b", ScheduledBackupArgs(tenant, fleet.plan_of(tenant), fleet.environment, DEFAULT_DOCKER, "pw", "ghcr.io/acme/tenant-fleet-ops:1.4.0", folder))
        tenant_purge(purged, fleet.environment, None, folder)

    evaluation = declared(program)
    (job,) = [r for r in evaluation.resources if r.type == "docker:index/container:Container"]
    (purge,) = [r for r in evaluation.resources if r.type.endswith("TenantPurge")]
    assert purge.raw_inputs["backup_dir"] == str(expected)
    assert job.raw_inputs["mounts"][0]["source"] == f"{expected}/{tenant.name}"  # the job sees only its tenant's folder of it
    assert load_inventory(config=config, secrets=StaticSecrets({})).backups_dir == expected


def test_every_active_tenant_gets_a_daily_backup_job_with_its_plans_retention():
    fleet = dev_fleet()

    def program() -> None:
        import pulumi_docker as docker

        provider = docker.Provider("docker-host", host="unix:///var/run/docker.sock")
        for tenant in fleet.tenants:
            ScheduledBackup(
                f"{tenant.name}-scheduled-backup",
                ScheduledBackupArgs(
                    tenant,
                    fleet.plan_of(tenant),
                    fleet.environment,
                    provider,
                    pulumi.Output.secret(f"pw-of-{tenant.name}"),
                    "ghcr.io/acme/tenant-fleet-ops:1.4.0",
                    "/srv/fleet-backups",
                ),
            )

    evaluation = declared(program)
    jobs = {r.name: r for r in evaluation.resources if r.type == "docker:index/container:Container"}
    assert set(jobs) == {"gurupi-backup", "novaroma-backup", "pirapora-backup", "santarita-backup"}  # catasaltas is suspended
    retention = {"gurupi": "30", "novaroma": "7", "pirapora": "90", "santarita": "30"}
    for tenant, days in retention.items():
        job = jobs[f"{tenant}-backup"]
        inputs = job.raw_inputs
        command = inputs["command"]
        assert command[:6] == ["python", "-m", "fleet", "backup", "--tenant", tenant]
        assert command[command.index("--retention-days") + 1] == days and command[command.index("--daily-at") + 1] == "02:00"
        assert inputs["image"] == "ghcr.io/acme/tenant-fleet-ops:1.4.0" and inputs["restart"] == "unless-stopped"
        assert (inputs["memory"], inputs["memorySwap"], inputs["cpus"]) == (256, 256, "0.25")  # limits, as every container has
        assert "envs" in job.secret_inputs and "pw-of" not in json.dumps(job.inputs)  # the password only as a secret
        env = dict(item.split("=", 1) for item in inputs["envs"])
        assert env[PASSWORD_ENV] == f"pw-of-{tenant}"
        target = json.loads(env[TARGET_ENV])
        assert target["user"] == f"tenant_{tenant}_app" and target["database"] == f"tenant_{tenant}" and "password" not in target
        # Only the tenant's own folder is mounted: a job can't read a neighbour's backups.
        assert inputs["mounts"] == [{"type": "bind", "source": f"/srv/fleet-backups/{tenant}", "target": f"/backups/{tenant}"}]
        labels = {label["label"]: label["value"] for label in inputs["labels"]}
        assert labels == {"tenant": tenant, "plan": fleet.tenant(tenant).plan, "component": "backup", "managed-by": "tenant-fleet"}
        assert job.provider and "docker-host" in job.provider


def test_a_backup_job_refuses_an_unpinned_image_and_a_bad_schedule():
    fleet = dev_fleet()
    tenant = fleet.tenant("gurupi")
    for image, schedule, message in (("ghcr.io/acme/ops:latest", "02:00", "pinned"), ("ghcr.io/acme/ops", "02:00", "pinned"), ("ops:1.0", "2am", "HH:MM")):
        errors: list[str] = []

        def program(image=image, schedule=schedule, errors=errors) -> None:
            try:
                ScheduledBackup("b", ScheduledBackupArgs(tenant, fleet.plan_of(tenant), fleet.environment, DEFAULT_DOCKER, "pw", image, "/srv/backups", schedule))
            except Exception as error:  # noqa: BLE001
                errors.append(str(error))

        declared(program)
        assert errors and message in errors[0]
    assert backup_command(tenant, fleet.plan_of(tenant), "03:30")[-2:] == ["--daily-at", "03:30"]


def test_the_registry_declares_a_table_and_one_row_per_tenant_without_passwords():
    fleet = dev_fleet()
    server_passwords = pulumi.Output.secret({"shared-1": "admin-secret-shared"})

    def program() -> None:
        assert declare_registry(fleet, None) is None  # no fleet:registry configured: nothing declared
        declare_registry(fleet, server_passwords, RegistrySettings("shared-1", "fleet_registry"))

    evaluation = declared(program)
    table = evaluation.find("pulumi-python:dynamic/registry:TenantRegistryTable", "registry-table")
    assert (table.raw_inputs["database"], table.raw_inputs["table"], table.raw_inputs["port"]) == ("fleet_registry", "tenants", 5432)
    assert "admin_password" in table.secret_inputs and table.raw_inputs["admin_password"] == "admin-secret-shared"
    rows = {r.name: r for r in evaluation.resources if r.type == "pulumi-python:dynamic/registry:TenantRegistryRow"}
    assert set(rows) == {f"registry-row-{t.name}" for t in fleet.tenants}
    for row in rows.values():
        assert "admin_password" in row.secret_inputs and "additionalSecretOutputs" in row.options
        assert "admin_password" in row.options["additionalSecretOutputs"]
        plain = {key: value for key, value in row.raw_inputs.items() if key not in ("admin_password", "__provider")}
        assert "admin-secret" not in json.dumps(plain) and "password" not in json.dumps(sorted(plain))
        assert table.urn in row.options["dependencies"]  # written after the table exists
    pirapora = rows["registry-row-pirapora"].raw_inputs
    spec = fleet.tenant("pirapora")
    expected = {key: value for key, value in row_values(spec, fleet.plan_of(spec), fleet.environment).items() if value is not None}  # None is not sent
    assert {key: pirapora[key] for key in expected} == expected
    assert (pirapora["db_port"], pirapora["plan"], pirapora["backup_retention_days"]) == (5433, "enterprise", 90)


def test_registry_settings_come_from_the_stack_config_when_the_spec_has_them():
    assert RegistrySettings.from_config(None) is None
    assert RegistrySettings.from_config({"server": "shared-1", "database": "fleet_registry"}) == RegistrySettings("shared-1", "fleet_registry")


def test_the_registry_row_diff_is_explicit():
    provider = TenantRegistryRowProvider()
    fleet = dev_fleet()
    spec = fleet.tenant("gurupi")
    olds = {
        "host": "db",
        "port": 5432,
        "database": "r",
        "schema": "public",
        "table": "tenants",
        "admin_user": "postgres",
        "admin_password": "x",
        "sslmode": "disable",
        **row_values(spec, fleet.plan_of(spec), fleet.environment),
        "active": True,
    }
    news = {**olds, "port": 5432.0, "user_limit": 10.0}  # the wire has only doubles
    news.pop("active")
    assert provider.diff("id", olds, news).changes is False
    assert provider.diff("id", olds, {**news, "status": "suspended"}).replaces == []
    assert provider.diff("id", olds, {**news, "name": "other"}).replaces == ["name"]
    assert provider.diff("id", olds, {**news, "status": pulumi.runtime.rpc.UNKNOWN}).changes is True


def test_the_program_declares_the_registry_with_addresses_from_each_placement_and_marks_purges(workspace):
    workspace.config["registry"] = {"server": "shared-1", "database": "fleet_registry"}
    workspace.edit("novaroma", purge={"confirm": "novaroma", "reason": "contract ended"})
    evaluation = workspace.evaluate()
    rows = {r.name: r for r in evaluation.resources if r.type == "pulumi-python:dynamic/registry:TenantRegistryRow"}
    assert set(rows) == {f"registry-row-{name}" for name in evaluation.specs}
    placement = evaluation.find("pulumi-python:dynamic/postgres:DatabasePlacement", "pirapora-db-placement")
    assert placement.urn in rows["registry-row-pirapora"].options["dependencies"]  # follows a move only once it succeeded
    assert rows["registry-row-novaroma"].raw_inputs["status"] == "purged"
    assert rows["registry-row-catasaltas"].raw_inputs["status"] == "suspended"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "needs a database name"),
        ("Robert'); drop", "not a plain database name"),
        ("postgres", "the server's own databases"),
        ("tenant_gurupi", "live database"),
        ("tenant_novaroma_copy", "looks like another tenant's database (tenant_novaroma)"),
        ("x" * 64, "exceeds 63 bytes"),
    ],
)
def test_a_restore_target_must_be_a_fresh_plain_name_of_this_tenant(name, problem):
    found = restore.restore_target_problem(name, "gurupi", "tenant_gurupi", ["tenant_gurupi", "tenant_novaroma", "tenant_santa"])
    assert found is not None and problem in found


def test_a_restore_target_may_extend_the_tenants_own_name_even_when_another_name_prefixes_it():
    databases = ["tenant_santa", "tenant_santa_rita"]
    assert restore.restore_target_problem("tenant_santa_rita_restored_20261129", "santa-rita", "tenant_santa_rita", databases) is None
    assert "tenant_santa_rita" in (restore.restore_target_problem("tenant_santa_rita_copy", "santa", "tenant_santa", databases) or "")
    assert restore.restore_target_problem("scratch_copy", "santa", "tenant_santa", databases) is None


def test_restore_refuses_bad_input_before_touching_a_server(tmp_path, capsys):
    from fleet.cli.main import main

    (tmp_path / "folder").mkdir()
    dump = tmp_path / "gurupi.dump"
    dump.write_bytes(b"PGDMP")
    assert main(["restore", "gurupi", "--from", str(tmp_path / "folder")]) == 2
    assert "is a folder, not a dump file" in capsys.readouterr().err
    assert main(["restore", "gurupi", "--from", str(dump), "--replace", "--into", "x"]) == 2  # before any question
    assert "don't combine it with --into" in capsys.readouterr().err
    assert main(["restore", "gurupi", "--from", str(tmp_path / "missing.dump")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_manifests_and_final_backup_sidecars_are_private_even_over_an_older_open_file(tmp_path):
    from fleet.postgres.dumps import write_private

    path = tmp_path / "acme" / "acme-final-20261129T000000Z.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)
    write_private(path, '{"reason": "contract ended"}\n')
    assert path.stat().st_mode & 0o777 == 0o600 and "contract ended" in path.read_text()


def test_verify_fails_a_backups_folder_or_file_others_can_read(tmp_path):
    from types import SimpleNamespace

    folder = tmp_path / "backups"
    (folder / "gurupi").mkdir(parents=True, mode=0o700)
    (folder / "gurupi").chmod(0o700)
    (folder / "gurupi" / "gurupi-20261129T000000Z.dump").write_bytes(b"PGDMP")
    (folder / "gurupi" / "gurupi-20261129T000000Z.dump").chmod(0o600)
    (folder / "novaroma").mkdir(mode=0o755)
    (folder / "novaroma").chmod(0o755)
    (folder / "novaroma" / "novaroma-final-20261129T000000Z.json").write_text("{}")
    (folder / "novaroma" / "novaroma-final-20261129T000000Z.json").chmod(0o644)
    tenants = [SimpleNamespace(name=name) for name in ("gurupi", "novaroma", "santarita")]
    checks = {check.tenant: check for check in verify.verify_backup_folders(folder, tenants)}
    assert checks["gurupi"].outcome == "pass"
    assert checks["novaroma"].outcome == "fail"
    assert checks["novaroma"].detail == "readable by others: novaroma (755), novaroma/novaroma-final-20261129T000000Z.json (644)"
    assert checks["santarita"].outcome == "skip"


def test_pruning_never_touches_a_purges_final_backup_nor_the_only_copy(tmp_path):
    from components.providers.postgres import final_backup_name

    folder = backups.tenant_folder(tmp_path, "gurupi")
    folder.mkdir(parents=True)
    final = folder / final_backup_name("gurupi", T0)
    final.write_bytes(b"final dump")
    only = backups.backup_path(tmp_path, "gurupi", T0)
    only.write_bytes(b"dump")
    assert backups.prune(tmp_path, "gurupi", Retention(daily=1), T0 + timedelta(days=3650)) == []
    assert final.exists() and only.exists()
    later = backups.backup_path(tmp_path, "gurupi", T0 + timedelta(days=100))
    later.write_bytes(b"dump")
    assert backups.prune(tmp_path, "gurupi", Retention(daily=1), T0 + timedelta(days=3650)) == [only]
    assert final.exists() and later.exists()
