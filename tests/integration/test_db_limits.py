"""Noisy-neighbour limits on a real PostgreSQL 15: the settings fleet.model.db_limits derives, applied with
`ALTER ROLE ... SET` through fleet.postgres.role_settings (the function RoleSettings uses; the official Role
sets the same two timeouts), hold one tenant's runaway query and idle transaction while a neighbour runs on.
`fleet verify` then reports a setting changed by hand, and the database's own connection limit."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from fleet.model import db_limits
from fleet.model.spec import DatabaseRef, Plan, TenantSpec
from fleet.postgres import role_settings
from tests.support.queries import one_row
from tests.support.tenant_db import cluster_access, provision_tenant_database

SIZE = {"cpu": 0.25, "memory_mb": 256, "replicas": 1}


def plan(statement_timeout_s: int, idle_s: int, work_mem_mb: int) -> Plan:
    return Plan.model_validate(
        {
            "backend": SIZE, "frontend": SIZE, "user_limit": 3, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7,
            "database_limits": {"statement_timeout_s": statement_timeout_s, "idle_in_transaction_timeout_s": idle_s, "work_mem_mb": work_mem_mb},
            "max": {"backend": SIZE, "frontend": SIZE},
        }
    )


TENANTS = {
    # name: (plan, password)
    "limited": (plan(statement_timeout_s=1, idle_s=1, work_mem_mb=2), "limited-app-password"),
    "roomy": (plan(statement_timeout_s=6, idle_s=30, work_mem_mb=8), "roomy-app-password"),
}


def spec(name: str) -> TenantSpec:
    return TenantSpec(name=name, display_name=name, plan="p", database=DatabaseRef(server="shared-1"))


@pytest.fixture(scope="module")
def server(postgres_cluster):
    access = cluster_access(postgres_cluster)
    for name, (tenant_plan, password) in TENANTS.items():
        tenant = spec(name)
        provision_tenant_database(
            access, f"tenant_{name}", f"tenant_{name}_app", password,
            connection_limit=tenant_plan.db_connections,
            settings=db_limits.app_role_limits(tenant, tenant_plan).settings(),
            database_connection_limit=db_limits.database_connection_limit(tenant, tenant_plan, jobs=False),
        )
    return postgres_cluster


def login(cluster, name: str, **options) -> psycopg.Connection:
    return psycopg.connect(
        host=cluster.host, port=cluster.port, dbname=f"tenant_{name}", user=f"tenant_{name}_app", password=TENANTS[name][1], sslmode="disable", **options
    )


def test_the_derived_settings_are_what_the_server_holds(server):
    access = cluster_access(server)
    live = role_settings.role_settings(access, ["tenant_limited_app", "tenant_roomy_app"])
    for name, (tenant_plan, _password) in TENANTS.items():
        assert role_settings.settings_drift(db_limits.app_role_limits(spec(name), tenant_plan).settings(), live[f"tenant_{name}_app"]) == []
    with login(server, "limited") as session:
        shown = [one_row(session.execute(f"show {setting}"))[0] for setting in ("statement_timeout", "idle_in_transaction_session_timeout", "work_mem", "temp_file_limit")]
    assert shown == ["1s", "1s", "2MB", "1GB"]
    with access.connect() as admin:
        assert admin.execute("select datconnlimit from pg_database where datname = 'tenant_limited'").fetchone()[0] == 5 + db_limits.OPERATIONS_CONNECTIONS


def test_a_long_query_is_cancelled_at_its_plans_timeout_while_the_neighbours_runs_on(server):
    outcome: dict[str, float] = {}

    def neighbour() -> None:
        started = time.monotonic()
        with login(server, "roomy") as session:
            session.execute("select pg_sleep(3)")
        outcome["roomy"] = time.monotonic() - started

    thread = threading.Thread(target=neighbour)
    thread.start()
    started = time.monotonic()
    with login(server, "limited") as session, pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
        session.execute("select pg_sleep(3)")
    cancelled_after = time.monotonic() - started
    thread.join(timeout=15)
    assert 0.9 < cancelled_after < 2.5, cancelled_after  # at its plan's 1 s, not the 3 s it asked for
    assert 3.0 <= float(outcome["roomy"]) < 6.0  # the neighbour's plan allows 6 s: its query ran to the end


def test_an_idle_transaction_is_ended(server):
    session = login(server, "limited")
    try:
        session.execute("select 1")  # opens a transaction (psycopg is not in autocommit)
        time.sleep(2.0)
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout, match="idle-in-transaction timeout"):
            session.execute("select 1")
    finally:
        session.close()
    with login(server, "roomy") as neighbour:  # the neighbour's 30 s has not run out: still there
        neighbour.execute("select 1")
        time.sleep(1.5)
        assert neighbour.execute("select 2").fetchone() == (2,)


def test_a_setting_changed_by_hand_is_drift(server):
    access = cluster_access(server)
    with access.connect() as admin:
        admin.execute("alter role tenant_limited_app set work_mem = '64MB'")
        admin.execute("alter role tenant_limited_app reset statement_timeout")
    try:
        live = role_settings.role_settings(access, ["tenant_limited_app"])["tenant_limited_app"]
        expected = db_limits.app_role_limits(spec("limited"), TENANTS["limited"][0]).settings()
        assert role_settings.settings_drift(expected, live) == ["statement_timeout unset, planned 1000", "work_mem 64MB, planned 2048kB"]
    finally:
        role_settings.apply_role_settings(access, "tenant_limited_app", db_limits.app_role_limits(spec("limited"), TENANTS["limited"][0]).settings())
    assert role_settings.settings_drift(expected, role_settings.role_settings(access, ["tenant_limited_app"])["tenant_limited_app"]) == []
