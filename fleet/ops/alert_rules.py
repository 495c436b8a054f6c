"""`fleet alerts`: Prometheus alerting rules from the plans' thresholds, one rule file per plan.

Each rule selects the tenants of its plan by joining on `tenant_fleet_tenant_info{plan=..., status="active"}`
(fleet.ops.metrics), so moving a tenant to another plan moves it to that plan's thresholds at the next
scrape, with no rule file rewritten. Every alert carries `tenant` and `plan` labels and a summary naming
the tenant. `promtool check rules` accepts the files (tests/unit/test_alert_rules.py).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import FleetError
from fleet.model.spec import AlertThresholds, Plan
from fleet.ops.metrics import PREFIX

RULE_FILE_SUFFIX = ".rules.yml"


@dataclass(frozen=True)
class AlertRule:
    """One alert of one plan, as Prometheus reads it."""

    alert: str
    expr: str
    minutes: int
    summary: str
    description: str
    severity: str = "warning"

    def to_mapping(self, plan: str) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": f"{self.minutes}m",
            "labels": {"severity": self.severity, "plan": plan},
            "annotations": {"summary": self.summary, "description": self.description},
        }


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_alerts(plan_name: str, plan: Plan) -> list[AlertRule]:
    """The alerts of one plan, with its thresholds (plan.alerts; defaults from the seeds)."""
    limits: AlertThresholds = plan.alerts
    on_plan = f"on(tenant) {PREFIX}_tenant_info{{plan={_promql_string(plan_name)}, status=\"active\"}}"
    tenant = "{{ $labels.tenant }}"
    value = "{{ $value | humanize }}"
    rules = [
        AlertRule(
            "TenantCPUHigh",
            f"100 * {PREFIX}_containers_cpu_ratio > {limits.cpu_percent} and {on_plan}",
            limits.for_minutes,
            f"Tenant {tenant}: CPU at {value}% of its plan ({plan_name} alerts above {limits.cpu_percent}%)",
            f"The containers of tenant {tenant} have used more than {limits.cpu_percent}% of the CPU its plan gives for {limits.for_minutes} minutes.",
        ),
        AlertRule(
            "TenantMemoryHigh",
            f"100 * {PREFIX}_containers_memory_bytes / {PREFIX}_containers_memory_limit_bytes > {limits.memory_percent} and {on_plan}",
            limits.for_minutes,
            f"Tenant {tenant}: memory at {value}% of its limit ({plan_name} alerts above {limits.memory_percent}%)",
            f"The containers of tenant {tenant} have used more than {limits.memory_percent}% of their memory limit for {limits.for_minutes} minutes.",
        ),
        AlertRule(
            "TenantDatabaseDown",
            f"{PREFIX}_database_up == 0 and {on_plan}",
            limits.down_minutes,
            f"Tenant {tenant}: database unreachable ({plan_name} alerts after {limits.down_minutes} min)",
            f"The exporter could not read the database of tenant {tenant} (server down, database missing, or credentials refused).",
            severity="critical",
        ),
        AlertRule(
            "TenantHTTPErrors",
            f"sum by (tenant) (increase({PREFIX}_http_errors_total[1h])) > {limits.errors_per_hour} and {on_plan}",
            0,
            f"Tenant {tenant}: {value} HTTP 5xx answers in the last hour ({plan_name} alerts above {limits.errors_per_hour})",
            f"Caddy answered more than {limits.errors_per_hour} requests for the hostnames of tenant {tenant} with a 5xx status in the last hour.",
        ),
        AlertRule(
            "TenantConnectionsNearLimit",
            f"100 * {PREFIX}_database_connections / ({PREFIX}_database_connection_limit > 0) >= {limits.connections_percent} and {on_plan}",
            limits.for_minutes,
            f"Tenant {tenant}: database connections at {value}% of its limit ({plan_name} alerts at {limits.connections_percent}%)",
            f"Sessions of the login role of tenant {tenant} reached {limits.connections_percent}% of its connection limit; new ones will soon be refused.",
        ),
        AlertRule(
            "TenantBackupTooOld",
            f"({PREFIX}_backup_age_seconds > {limits.backup_age_hours * 3600} or {PREFIX}_backup_files == 0) and {on_plan}",
            0,
            f"Tenant {tenant}: newest backup older than {limits.backup_age_hours} h, or none",
            f"The newest backup of tenant {tenant} is {{{{ $value | humanizeDuration }}}} old (0 means it has none); {plan_name} allows {limits.backup_age_hours} hours.",
            severity="critical",
        ),
    ]
    if plan.drills is not None:
        every = plan.drills.every
        rules.append(
            AlertRule(
                "TenantRestoreDrillTooOld",
                f"({PREFIX}_drill_age_seconds > {plan.drills.days * 86400} or {PREFIX}_drills_passed == 0) and {on_plan}",
                0,
                f"Tenant {tenant}: no passed restore drill in the last {every}, or none at all",
                f"No restore drill of tenant {tenant} has passed in the last {every} ({plan_name}'s schedule): its backups are "
                f"unproven until `python -m fleet drill --tenant {tenant}` passes.",
            )
        )
    return rules


def rule_file(plan_name: str, plan: Plan) -> dict[str, Any]:
    """One plan's rule file: a group named for the plan."""
    return {"groups": [{"name": f"tenant-fleet-plan-{plan_name}", "rules": [rule.to_mapping(plan_name) for rule in plan_alerts(plan_name, plan)]}]}


def rule_files(plans: dict[str, Plan]) -> dict[str, dict[str, Any]]:
    """File name -> content, one per plan of the catalog (tenants on a plan appear in its rules by the info join)."""
    return {f"tenant-fleet-{name}{RULE_FILE_SUFFIX}": rule_file(name, plan) for name, plan in sorted(plans.items())}


def write_rule_files(plans: dict[str, Plan], folder: Path) -> list[Path]:
    """Write the rule files into `folder` and remove rule files of plans no longer in the catalog; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = rule_files(plans)
    written = []
    for name, content in files.items():
        path = folder / name
        path.write_text(
            "# Generated by `python -m fleet alerts` from the plans' `alerts:` thresholds; edit the plans, not this file.\n"
            + yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=200),
            encoding="utf-8",
        )
        written.append(path)
    for stale in folder.glob(f"tenant-fleet-*{RULE_FILE_SUFFIX}"):
        if stale.name not in files:
            stale.unlink()
    return written


PROMTOOL_HINT = "promtool is in Debian's `prometheus` package (./scripts/setup installs it)"


def promtool(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `promtool` (from Debian's prometheus package); FleetError when it is not installed."""
    binary = shutil.which("promtool")
    if binary is None:
        raise FleetError(f"promtool was not found on PATH; {PROMTOOL_HINT}")
    return subprocess.run([binary, *arguments], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def check_rule_files(paths: list[Path]) -> None:
    """`promtool check rules` on the files; FleetError with promtool's words when it refuses one."""
    result = promtool("check", "rules", *(str(path) for path in paths))
    if result.returncode != 0:
        raise FleetError(f"promtool check rules refused the generated rules:\n{(result.stdout + result.stderr).strip()}")
