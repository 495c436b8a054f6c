"""RoleSettings through the real engine on a real PostgreSQL: work_mem and temp_file_limit as the plan derives them.

1. `up` applies each tenant's settings (fleet.model.db_limits, as components/database.py wires them); a preview
   then shows no change;
2. a plan change is an in-place update, only of that tenant; a refresh sees a value changed by hand and the
   next `up` puts it back;
3. an unknown role fails the `up`, naming the resource;
4. removing the resource leaves the role and its settings (roles are retained; a limit left harms no data).
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from components.database import server_access
from components.providers.role_settings import RoleSettings, RoleSettingsArgs
from fleet.bench.servers import PostgresCluster
from fleet.engine import driver as engine
from fleet.errors import FleetError
from fleet.model import db_limits
from fleet.model.spec import DatabaseRef, Environment, Plan, TenantSpec
from fleet.postgres import role_settings
from tests.support.fixtures import require_engine, running
from tests.support.tenant_db import cluster_access, provision_tenant_database

STACK = "e2e-role-settings"
SERVER = "shared-1"
SIZE = {"cpu": 0.25, "memory_mb": 256, "replicas": 1}


def plan(work_mem_mb: int) -> Plan:
    return Plan.model_validate(
        {
            "backend": SIZE, "frontend": SIZE, "user_limit": 3, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7,
            "database_limits": {"work_mem_mb": work_mem_mb, "temp_file_limit_mb": 256},
            "max": {"backend": SIZE, "frontend": SIZE},
        }
    )


def spec(tenant: str) -> TenantSpec:
    return TenantSpec(name=tenant, display_name=tenant, plan="p", database=DatabaseRef(server=SERVER))


class SettingsStack:
    """One RoleSettings per tenant, named and fed as TenantDatabase does."""

    def __init__(self, cluster: PostgresCluster, backend: Path) -> None:
        self.cluster = cluster
        self.backend = backend
        self.plans = {"alpha": plan(2), "beta": plan(4)}
        self.roles = {"alpha": "tenant_alpha_app", "beta": "tenant_beta_app"}

    def environment(self) -> Environment:
        server = {"host": self.cluster.host, "port": self.cluster.port, "admin_user": self.cluster.admin_user, "max_connections": 100, "sslmode": "disable"}
        return Environment.model_validate(
            {
                "base_domain": "fleet.localhost", "servers": {SERVER: server}, "docker_host": {"memory_mb": 1024, "cpus": 1},
                "images": {"backend": "example/backend:1", "frontend": "example/frontend:1"}, "layers": ["database"],
            }
        )

    def program(self) -> None:
        servers = server_access(self.environment(), pulumi.Config("fleet").require_secret_object("server_passwords"))
        for tenant, tenant_plan in self.plans.items():
            settings = db_limits.app_role_limits(spec(tenant), tenant_plan).memory_settings()
            resource = RoleSettings(
                f"{tenant}-role-{SERVER}-settings",
                RoleSettingsArgs(tenant=tenant, role=self.roles[tenant], server=SERVER, servers=servers, settings=settings),
            )
            pulumi.export(f"{tenant}_settings", resource.settings)

    def run(self, op: str, **options) -> dict:
        secrets = {"fleet:server_passwords": {SERVER: self.cluster.admin_password}}
        return engine.run(op, engine.stack_for(STACK, self.program, backend_dir=self.backend, secrets=secrets), on_output=None, **options)

    def live(self) -> dict[str, dict[str, str]]:
        return role_settings.role_settings(cluster_access(self.cluster), ["tenant_alpha_app", "tenant_beta_app"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_engine()
    with running(PostgresCluster("e2e-role-settings-superuser")) as (cluster,):
        for tenant in ("alpha", "beta"):
            provision_tenant_database(cluster_access(cluster), f"tenant_{tenant}", f"tenant_{tenant}_app", f"{tenant}-password", connection_limit=5)
        yield SettingsStack(cluster, tmp_path_factory.mktemp("state"))


def test_up_applies_the_derived_settings_and_a_preview_then_shows_no_change(stack):
    summary = stack.run("up")
    assert summary["changes"] == {"create": 3}  # the stack and two RoleSettings
    assert stack.live() == {
        "tenant_alpha_app": {"work_mem": "2048kB", "temp_file_limit": "262144kB"},
        "tenant_beta_app": {"work_mem": "4096kB", "temp_file_limit": "262144kB"},
    }
    assert set(stack.run("preview")["changes"]) == {"same"}


def test_a_plan_change_updates_in_place_only_that_tenant(stack):
    stack.plans["alpha"] = plan(8)
    summary = stack.run("up")
    assert summary["changes"] == {"same": 2, "update": 1}
    assert stack.live()["tenant_alpha_app"]["work_mem"] == "8192kB"
    assert stack.live()["tenant_beta_app"]["work_mem"] == "4096kB"


def test_a_value_changed_by_hand_is_put_back_by_a_refreshing_up(stack):
    with stack.cluster.connect() as admin:
        admin.execute("alter role tenant_beta_app set work_mem = '512MB'")
    summary = stack.run("up", refresh=True)
    assert summary["changes"].get("update") == 1
    assert stack.live()["tenant_beta_app"]["work_mem"] == "4096kB"


def test_an_unknown_role_fails_the_up_naming_the_resource(stack):
    stack.roles["beta"] = "tenant_gone_app"
    try:
        with pytest.raises(FleetError) as failure:
            stack.run("up")
        assert "RoleSettings 'beta-role-shared-1-settings': update on 'shared-1' failed" in str(failure.value)
        assert 'role "tenant_gone_app" does not exist' in str(failure.value)
    finally:
        stack.roles["beta"] = "tenant_beta_app"
    assert stack.live()["tenant_beta_app"]["work_mem"] == "4096kB"


def test_removing_the_resource_leaves_the_role_and_its_settings(stack):
    stack.plans = {"alpha": stack.plans["alpha"]}
    assert stack.run("up")["changes"].get("delete") == 1
    assert stack.live()["tenant_beta_app"] == {"work_mem": "4096kB", "temp_file_limit": "262144kB"}
    stack.run("destroy")
    assert stack.live()["tenant_alpha_app"]["work_mem"] == "8192kB"
