"""Alert rules generated from the plans: thresholds from `alerts:`, seed defaults, `tenant` and `plan` labels,
and Prometheus's own `promtool` accepting the files and evaluating one rule on made-up series."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from fleet.cli.main import main
from fleet.model.load import load_fleet
from fleet.model.spec import AlertThresholds
from fleet.offline.plan import stack_config
from fleet.ops import alert_rules
from fleet.paths import PROJECT_ROOT
from tests.unit.graph import FleetWorkspace

EXAMPLES = sorted(path for path in (PROJECT_ROOT / "examples").iterdir() if (path / "tenants").is_dir())


def require_promtool() -> None:
    if shutil.which("promtool") is None:
        pytest.fail(f"promtool is missing: {alert_rules.PROMTOOL_HINT}", pytrace=False)


def assert_promtool_test_passes(plans, folder: Path, template: str, **fields: str) -> None:
    """Write the plans' rule files into `folder`, then `promtool test rules` on `template` (formatted with
    `rules=` the files and `fields`), which must pass."""
    require_promtool()
    written = alert_rules.write_rule_files(plans, folder)
    test_file = folder / "rules_test.yml"
    test_file.write_text(template.format(rules=", ".join(path.name for path in written), **fields))
    result = alert_rules.promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def shipped_plans():
    return load_fleet(PROJECT_ROOT / "tenants", stack_config("dev", PROJECT_ROOT), root=PROJECT_ROOT).plans


def test_defaults_are_the_seeds_numbers():
    defaults = AlertThresholds()
    # seed 001: CPU > 80 %, RAM > 90 %, 5 minutes down, 100 errors an hour
    assert (defaults.cpu_percent, defaults.memory_percent, defaults.down_minutes, defaults.errors_per_hour) == (80, 90, 5, 100)
    # the 80 % that `fleet status` flags, and a daily backup with two hours of slack (fleet.ops.verify)
    assert (defaults.connections_percent, defaults.backup_age_hours) == (80, 26)


def test_every_alert_has_tenant_and_plan_labels_and_names_the_tenant():
    files = alert_rules.rule_files(shipped_plans())
    assert set(files) == {f"tenant-fleet-{plan}.rules.yml" for plan in shipped_plans()}
    seen = 0
    for name, content in files.items():
        plan = name.removeprefix("tenant-fleet-").removesuffix(".rules.yml")
        for group in content["groups"]:
            for rule in group["rules"]:
                seen += 1
                assert rule["labels"]["plan"] == plan
                # `tenant` comes from the series: every expression keeps it and selects the plan's tenants by it
                assert f'on(tenant) tenant_fleet_tenant_info{{plan="{plan}", status="active"}}' in rule["expr"]
                assert "{{ $labels.tenant }}" in rule["annotations"]["summary"]
    assert seen == 6 * len(files)


def test_a_plans_thresholds_reach_its_rules(workspace: FleetWorkspace):
    catalog = yaml.safe_load((workspace.tenants_dir / "_plans.yaml").read_text())
    catalog["plans"]["pro"]["alerts"] = {"connections_percent": 50, "backup_age_hours": 2, "for_minutes": 0, "errors_per_hour": 7}
    (workspace.tenants_dir / "_plans.yaml").write_text(yaml.safe_dump(catalog))
    plans = load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent).plans
    rules = {rule.alert: rule for rule in alert_rules.plan_alerts("pro", plans["pro"])}
    assert ">= 50 and" in rules["TenantConnectionsNearLimit"].expr and rules["TenantConnectionsNearLimit"].minutes == 0
    assert "> 7200 or" in rules["TenantBackupTooOld"].expr
    assert "> 7 and" in rules["TenantHTTPErrors"].expr
    basic = {rule.alert: rule for rule in alert_rules.plan_alerts("basic", plans["basic"])}
    assert ">= 80 and" in basic["TenantConnectionsNearLimit"].expr and basic["TenantConnectionsNearLimit"].minutes == 5


def test_a_bad_threshold_is_refused_naming_file_plan_and_field(workspace: FleetWorkspace):
    catalog = yaml.safe_load((workspace.tenants_dir / "_plans.yaml").read_text())
    catalog["plans"]["pro"]["alerts"] = {"cpu_percent": 180, "memory_percent": 0}
    (workspace.tenants_dir / "_plans.yaml").write_text(yaml.safe_dump(catalog))
    with pytest.raises(Exception) as raised:
        load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent)
    text = str(raised.value)
    assert "_plans.yaml" in text and "pro" in text and "cpu_percent" in text and "memory_percent" in text


@pytest.mark.parametrize("example", [PROJECT_ROOT, *EXAMPLES], ids=lambda path: path.name)
def test_promtool_check_rules_accepts_every_catalogs_rules(example: Path, tmp_path: Path):
    require_promtool()
    plans = load_fleet(example / "tenants", _config_of(example), root=example).plans
    written = alert_rules.write_rule_files(plans, tmp_path)
    result = alert_rules.promtool("check", "rules", *map(str, written))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(plans)


def _config_of(example: Path):
    stacks = sorted(example.glob("Pulumi.*.yaml"))
    return stack_config(stacks[0].name.split(".")[1], example)


def test_the_cli_writes_checks_and_removes_stale_files(tmp_path: Path, capsys):
    require_promtool()
    stale = tmp_path / "tenant-fleet-gone.rules.yml"
    stale.write_text("groups: []\n")
    assert main(["alerts", "--out", str(tmp_path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "promtool check rules: 3 file(s) OK" in out
    assert not stale.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"tenant-fleet-{plan}.rules.yml" for plan in sorted(shipped_plans())]


PROMTOOL_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'tenant_fleet_tenant_info{{tenant="busy", plan="basic", status="active", server="shared-1", app_version="v1"}}'
        values: '1x20'
      - series: 'tenant_fleet_tenant_info{{tenant="calm", plan="basic", status="active", server="shared-1", app_version="v1"}}'
        values: '1x20'
      - series: 'tenant_fleet_tenant_info{{tenant="paused", plan="basic", status="suspended", server="shared-1", app_version="v1"}}'
        values: '1x20'
      - series: 'tenant_fleet_tenant_info{{tenant="big", plan="pro", status="active", server="shared-1", app_version="v1"}}'
        values: '1x20'
      # busy: 4 of 5 sessions (80 %) from minute 2 on; calm: 1 of 5; paused: 5 of 5 but suspended; big: 4 of 10 on pro
      - series: 'tenant_fleet_database_connections{{tenant="busy"}}'
        values: '1 1 4x18'
      - series: 'tenant_fleet_database_connection_limit{{tenant="busy"}}'
        values: '5x20'
      - series: 'tenant_fleet_database_connections{{tenant="calm"}}'
        values: '1x20'
      - series: 'tenant_fleet_database_connection_limit{{tenant="calm"}}'
        values: '5x20'
      - series: 'tenant_fleet_database_connections{{tenant="paused"}}'
        values: '5x20'
      - series: 'tenant_fleet_database_connection_limit{{tenant="paused"}}'
        values: '5x20'
      - series: 'tenant_fleet_database_connections{{tenant="big"}}'
        values: '4x20'
      - series: 'tenant_fleet_database_connection_limit{{tenant="big"}}'
        values: '10x20'
    alert_rule_test:
      # pending for the plan's 5 minutes, then firing for busy only
      - eval_time: 4m
        alertname: TenantConnectionsNearLimit
        exp_alerts: []
      - eval_time: 8m
        alertname: TenantConnectionsNearLimit
        exp_alerts:
          - exp_labels: {{tenant: busy, plan: basic, severity: warning}}
            exp_annotations:
              summary: 'Tenant busy: database connections at 80% of its limit (basic alerts at 80%)'
              description: 'Sessions of the login role of tenant busy reached 80% of its connection limit; new ones will soon be refused.'
"""


def test_promtool_test_rules_fires_the_connection_alert_for_the_tenant_past_it(tmp_path: Path):
    assert_promtool_test_passes(shipped_plans(), tmp_path, PROMTOOL_TEST)


def test_changing_a_plans_thresholds_runs_no_tenant_stack(workspace: FleetWorkspace):
    from fleet.engine.fingerprints import tenant_fingerprint

    before = load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent)
    catalog = yaml.safe_load((workspace.tenants_dir / "_plans.yaml").read_text())
    catalog["plans"]["pro"]["alerts"] = {"connections_percent": 60}
    (workspace.tenants_dir / "_plans.yaml").write_text(yaml.safe_dump(catalog))
    after = load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent)
    assert after.plans["pro"].alerts.connections_percent == 60
    # the rules follow the plan at the next scrape; the tenant's resources don't change, so neither does its stack's fingerprint
    assert tenant_fingerprint(before, before.tenant("gurupi"), workspace.config, "p") == tenant_fingerprint(after, after.tenant("gurupi"), workspace.config, "p")


def _plans_with_drills(workspace: FleetWorkspace, every: str = "7d"):
    catalog = yaml.safe_load((workspace.tenants_dir / "_plans.yaml").read_text())
    catalog["plans"]["pro"]["drills"] = {"every": every}
    (workspace.tenants_dir / "_plans.yaml").write_text(yaml.safe_dump(catalog))
    return load_fleet(workspace.tenants_dir, workspace.config, root=workspace.tenants_dir.parent).plans


def test_a_plan_with_a_drill_schedule_alerts_on_a_stale_or_missing_drill(workspace: FleetWorkspace):
    plans = _plans_with_drills(workspace, "7d")
    rules = {rule.alert: rule for rule in alert_rules.plan_alerts("pro", plans["pro"])}
    drill = rules["TenantRestoreDrillTooOld"]
    assert drill.expr.startswith(f"(tenant_fleet_drill_age_seconds > {7 * 86400} or tenant_fleet_drills_passed == 0) and on(tenant)")
    assert "python -m fleet drill --tenant {{ $labels.tenant }}" in drill.description
    # a plan with no schedule has no drill alert: nothing asked for drills
    assert "TenantRestoreDrillTooOld" not in {rule.alert for rule in alert_rules.plan_alerts("basic", plans["basic"])}


DRILL_PROMTOOL_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'tenant_fleet_tenant_info{{tenant="stale", plan="pro", status="active", server="shared-1", app_version="v1"}}'
        values: '1x5'
      - series: 'tenant_fleet_tenant_info{{tenant="fresh", plan="pro", status="active", server="shared-1", app_version="v1"}}'
        values: '1x5'
      - series: 'tenant_fleet_tenant_info{{tenant="never", plan="pro", status="active", server="shared-1", app_version="v1"}}'
        values: '1x5'
      - series: 'tenant_fleet_tenant_info{{tenant="elsewhere", plan="basic", status="active", server="shared-1", app_version="v1"}}'
        values: '1x5'
      # stale: passed 8 days ago (pro drills every 7d); fresh: 1 day ago; never: no drill passed; elsewhere: basic has no schedule
      - series: 'tenant_fleet_drills_passed{{tenant="stale"}}'
        values: '2x5'
      - series: 'tenant_fleet_drill_age_seconds{{tenant="stale"}}'
        values: '691200x5'
      - series: 'tenant_fleet_drills_passed{{tenant="fresh"}}'
        values: '1x5'
      - series: 'tenant_fleet_drill_age_seconds{{tenant="fresh"}}'
        values: '86400x5'
      - series: 'tenant_fleet_drills_passed{{tenant="never"}}'
        values: '0x5'
      - series: 'tenant_fleet_drills_passed{{tenant="elsewhere"}}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 2m
        alertname: TenantRestoreDrillTooOld
        exp_alerts:
          - exp_labels: {{tenant: never, plan: pro, severity: warning}}
            exp_annotations:
              summary: 'Tenant never: no passed restore drill in the last 7d, or none at all'
              description: "No restore drill of tenant never has passed in the last 7d (pro's schedule):
                its backups are unproven until `python -m fleet drill --tenant never` passes."
          - exp_labels: {{tenant: stale, plan: pro, severity: warning}}
            exp_annotations:
              summary: 'Tenant stale: no passed restore drill in the last 7d, or none at all'
              description: "No restore drill of tenant stale has passed in the last 7d (pro's schedule):
                its backups are unproven until `python -m fleet drill --tenant stale` passes."
"""


def test_promtool_test_rules_fires_the_drill_alert_for_stale_and_missing_drills_only(workspace: FleetWorkspace, tmp_path: Path):
    assert_promtool_test_passes(_plans_with_drills(workspace, "7d"), tmp_path, DRILL_PROMTOOL_TEST)
