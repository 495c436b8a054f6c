"""Noisy-neighbour limits: derived per plan with a bounded tenant override, declared on the roles and the database,
and changed in place (never a replacement) when a plan or an override changes."""

from __future__ import annotations

import pytest
import yaml

from components.providers import role_settings as role_settings_provider
from fleet.errors import SpecError
from fleet.model import db_limits
from fleet.model.spec import Plan, TenantSpec
from fleet.model.type_tokens import DATABASE, ROLE, ROLE_SETTINGS
from fleet.preview import diff
from tests.unit.graph import of_type

BASIC = {
    "backend": {"cpu": 0.25, "memory_mb": 256, "replicas": 1},
    "frontend": {"cpu": 0.25, "memory_mb": 256, "replicas": 1},
    "user_limit": 3, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7,
    "database_limits": {"statement_timeout_s": 15, "idle_in_transaction_timeout_s": 30, "work_mem_mb": 2, "temp_file_limit_mb": 512},
    "max": {
        "backend": {"cpu": 0.5, "memory_mb": 512, "replicas": 1},
        "frontend": {"cpu": 0.25, "memory_mb": 256, "replicas": 1},
        "database": {"statement_timeout_s": 60, "idle_in_transaction_timeout_s": 60, "work_mem_mb": 8, "temp_file_limit_mb": 1024, "jobs_statement_timeout_s": 900},
    },
}


def tenant(**overrides) -> TenantSpec:
    return TenantSpec.model_validate({"name": "itabira", "display_name": "Itabira", "plan": "basic", "database": {"server": "shared-1"}, "overrides": overrides})


def test_settings_are_the_plans_in_the_units_postgresql_stores():
    limits = db_limits.app_role_limits(tenant(), Plan.model_validate(BASIC))
    assert limits.settings() == {
        "statement_timeout": "15000",
        "idle_in_transaction_session_timeout": "30000",
        "work_mem": "2048kB",
        "temp_file_limit": "524288kB",
    }
    assert limits.memory_settings() == {"work_mem": "2048kB", "temp_file_limit": "524288kB"}
    jobs = db_limits.jobs_role_limits(tenant(), Plan.model_validate(BASIC))
    assert jobs.statement_timeout_ms == 900_000 and jobs.work_mem_kb == 2048  # migrations get longer, not more memory


def test_a_tenant_override_applies_over_its_plan():
    limits = db_limits.app_role_limits(tenant(database={"statement_timeout_s": 45, "work_mem_mb": 8}), Plan.model_validate(BASIC))
    assert (limits.statement_timeout_ms, limits.work_mem_kb, limits.idle_in_transaction_timeout_ms) == (45_000, 8192, 30_000)


def test_database_connection_limit_covers_its_roles_and_operations():
    plan = Plan.model_validate(BASIC)
    assert db_limits.database_connection_limit(tenant(), plan, jobs=False) == 5 + db_limits.OPERATIONS_CONNECTIONS
    assert db_limits.database_connection_limit(tenant(), plan, jobs=True) == 5 + db_limits.JOBS_CONNECTIONS + db_limits.OPERATIONS_CONNECTIONS


def test_a_plan_beyond_its_own_max_is_refused():
    with pytest.raises(ValueError, match="database_limits.work_mem_mb 16 exceeds its own max 8"):
        Plan.model_validate({**BASIC, "database_limits": {"work_mem_mb": 16}})


def test_an_override_beyond_the_plans_max_names_file_tenant_and_field(workspace):
    # pro declares no max.database: its own values are the bound, so no override may raise them
    workspace.edit("santarita", overrides={"database": {"statement_timeout_s": 31, "work_mem_mb": 2}})
    workspace.edit("pirapora", overrides={"database": {"work_mem_mb": 65}})  # enterprise: max 64
    with pytest.raises(SpecError) as caught:
        workspace.evaluate()
    assert [str(problem) for problem in caught.value.problems] == [
        "tenants/pirapora.yaml: tenant pirapora: overrides.database.work_mem_mb: 65 exceeds plan enterprise's max 64 (max.database, else its database_limits)",
        "tenants/santarita.yaml: tenant santarita: overrides.database.statement_timeout_s: 31 exceeds plan pro's max 30 (max.database, else its database_limits)",
    ]


def test_the_roles_and_database_carry_the_derived_limits(dev_plan):
    for name, spec in dev_plan.specs.items():
        plan = yaml.safe_load((dev_plan_root() / "_plans.yaml").read_text())["plans"][spec.plan]
        limits = db_limits.app_role_limits(spec, Plan.model_validate(plan))
        (login,) = [r for r in of_type(dev_plan, ROLE, name) if r.raw_inputs["name"].endswith("_app")]
        assert (login.raw_inputs["statementTimeout"], login.raw_inputs["idleInTransactionSessionTimeout"]) == (
            limits.statement_timeout_ms, limits.idle_in_transaction_timeout_ms,
        )
        (settings,) = of_type(dev_plan, ROLE_SETTINGS, name)
        assert settings.raw_inputs["settings"] == limits.memory_settings() and settings.raw_inputs["role"] == login.raw_inputs["name"]
        (database,) = of_type(dev_plan, DATABASE, name)
        assert database.raw_inputs["connectionLimit"] >= login.raw_inputs["connectionLimit"] + db_limits.OPERATIONS_CONNECTIONS


def dev_plan_root():
    from fleet.paths import PROJECT_ROOT

    return PROJECT_ROOT / "tenants"


def test_changing_a_plans_limits_is_an_in_place_update_of_its_tenants_roles_only(workspace, dev_plan):
    catalog = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(catalog.read_text())
    plans["plans"]["pro"]["database_limits"] = {"statement_timeout_s": 10, "idle_in_transaction_timeout_s": 20, "work_mem_mb": 8, "temp_file_limit_mb": 1024}
    catalog.write_text(yaml.safe_dump(plans, sort_keys=False))
    workspace.edit("pirapora", overrides={"database": {"statement_timeout_s": 120}})  # enterprise, within its max
    changes = diff.compare_resources(dev_plan, workspace.evaluate())
    assert {change.op for change in changes} == {"update"}  # nothing created, replaced or deleted
    touched = {(change.tenant, change.type, change.name): change for change in changes}
    pro = sorted(name for name, spec in dev_plan.specs.items() if spec.plan == "pro")
    assert set(touched) == {
        *((tenant_name, ROLE, f"{tenant_name}-role-{dev_plan.specs[tenant_name].database.server}") for tenant_name in pro),
        *((tenant_name, ROLE_SETTINGS, f"{tenant_name}-role-{dev_plan.specs[tenant_name].database.server}-settings") for tenant_name in pro),
        ("pirapora", ROLE, "pirapora-role-dedicated-1"),
    }
    for (_tenant, type_, _name), change in touched.items():
        assert not change.replace_keys
        if type_ == ROLE:
            assert set(change.keys) <= {"statementTimeout", "idleInTransactionSessionTimeout"}
    assert touched[("pirapora", ROLE, "pirapora-role-dedicated-1")].values == {"statementTimeout": (60_000, 120_000)}


def test_the_replace_table_agrees_with_the_role_settings_provider():
    assert diff.REPLACE_RULES[ROLE_SETTINGS].compared == frozenset(role_settings_provider._TRACKED)
    result = role_settings_provider.RoleSettingsProvider().diff(
        "id", {"role": "r", "server": "s", "settings": {"work_mem": "2048kB"}}, {"role": "r", "server": "s", "settings": {"work_mem": "4096kB"}}
    )
    assert result.changes and not result.replaces
