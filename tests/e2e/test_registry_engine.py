"""The tenant registry through the real engine, against a real PostgreSQL; then the ops commands on the deployed stack.

An inline program loads the fleet from the stack config exactly as `fleet_program` does, declares the
registry (components.registry.declare_registry) with the admin password from the secret config
`fleet:server_passwords`, and exports the tenants' role passwords as the secret output
`database_passwords` (the roles and databases were created by the test as the official provider
would: its plugin is not available here). Each step is checked in the `tenants` table itself, and in
the engine's own change summary.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pulumi
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from components.registry import RegistrySettings, declare_registry
from fleet.bench.servers import PostgresCluster
from fleet.engine import driver as engine
from fleet.ops import backups as backup
from fleet.ops import env_backup, status, verify
from fleet.ops.inventory import load_inventory
from fleet.ops.secrets import EngineSecrets
from fleet.program import APP_ENVS_OUTPUT, CONFIG_NAMESPACE, load
from tests.integration.test_backup import FleetOnServers, path_of
from tests.support.fixtures import require_engine, running

STACK = "e2e-registry"
DATABASE = "fleet_registry"
GURUPI_SECRET_LINE = "JWT_SECRET=sealed-in-the-backup-only-41c7"
ROW_TYPE = "pulumi-python:dynamic/registry:TenantRegistryRow"


class RegistryStack:
    """The shipped tenants on one test cluster, with the registry declared through the real engine."""

    def __init__(self, root: Path, backend: Path, cluster: PostgresCluster) -> None:
        self.root = root
        self.backend = backend
        self.cluster = cluster
        self.fleet = FleetOnServers(root, {"shared-1": cluster, "dedicated-1": cluster})
        self.fleet.provision()
        self.events: list = []

    @property
    def workspace(self):
        return self.fleet.workspace

    def program(self):
        tenants_dir, passwords = self.workspace.tenants_dir, dict(self.fleet.passwords)

        def program() -> None:
            fleet = load(None, tenants_dir)
            server_passwords = pulumi.Config(CONFIG_NAMESPACE).get_secret_object("server_passwords")
            declare_registry(fleet, server_passwords, RegistrySettings("shared-1", DATABASE))
            pulumi.export("database_passwords", pulumi.Output.secret({name: passwords[name] for name in passwords if name in {t.name for t in fleet.tenants}}))
            # What export_outputs publishes when backups seal the app env (the app layer itself needs the docker plugin).
            pulumi.export(APP_ENVS_OUTPUT, pulumi.Output.secret({"gurupi": {"backend": [GURUPI_SECRET_LINE, "TENANT=gurupi"]}}))

        return program

    def stack(self):
        config = {f"fleet:{key}": value for key, value in self.fleet.config.items()}
        # work_dir=root: Pulumi.<stack>.yaml (with the encrypted server passwords) lands next to tenants/, as in a checkout.
        return engine.stack_for(
            STACK, self.program(), backend_dir=self.backend, work_dir=self.root, config=config, secrets={"fleet:server_passwords": self.fleet.server_passwords}
        )

    def run(self, op: str, **options):
        self.events = []
        return engine.run(op, self.stack(), on_output=None, on_event=self.events.append, **options)

    def changed(self) -> dict[str, str]:
        """Logical name -> operation of every step that was not `same`."""
        steps = {}
        for event in self.events:
            pre = event.resource_pre_event
            if pre is not None and pre.metadata.op.value != "same":
                steps[pre.metadata.urn.rsplit("::", 1)[1]] = pre.metadata.op.value
        return steps

    def rows(self) -> dict[str, dict]:
        with self.cluster.connect(DATABASE) as connection:
            return {row["name"]: row for row in connection.cursor(row_factory=dict_row).execute("SELECT * FROM tenants")}


@pytest.fixture(scope="module")
def cluster():
    with running(PostgresCluster("registry-e2e-admin-7d1f")) as (server,):
        yield server


@pytest.fixture(scope="module")
def registry(tmp_path_factory, cluster):
    require_engine()
    stack = RegistryStack(tmp_path_factory.mktemp("registry-root"), tmp_path_factory.mktemp("registry-state"), cluster)
    yield stack
    try:
        engine.run("destroy", stack.stack(), on_output=None)
    except engine.EngineError:
        pass


def test_up_creates_the_table_and_a_row_per_tenant(registry):
    summary = registry.run("up")
    assert summary["changes"] == {"create": 1 + 1 + 1 + 5}  # stack, component, table, 5 rows
    rows = registry.rows()
    assert set(rows) == {"catasaltas", "gurupi", "novaroma", "pirapora", "santarita"}
    assert all(row["active"] for row in rows.values())
    assert (rows["catasaltas"]["status"], rows["pirapora"]["plan"], rows["pirapora"]["db_port"]) == ("suspended", "enterprise", registry.cluster.port)
    assert summary["outputs"]["database_passwords"] == "[secret]"


def test_the_state_holds_no_plaintext_password(registry):
    state_files = list((registry.backend / ".pulumi" / "stacks").rglob("*.json"))
    assert state_files
    text = "".join(path.read_text() for path in state_files)
    assert registry.cluster.admin_password not in text
    assert not any(password in text for password in registry.fleet.passwords.values())
    assert "registry-row-gurupi" in text


def test_a_second_preview_shows_no_changes(registry):
    assert set(registry.run("preview")["changes"]) == {"same"}


def test_plan_change_and_suspend_update_only_those_rows(registry):
    registry.workspace.edit("gurupi", plan="enterprise")
    registry.workspace.edit("novaroma", status="suspended")
    summary = registry.run("up")
    assert summary["changes"].get("update") == 2 and "create" not in summary["changes"] and "delete" not in summary["changes"]
    assert registry.changed() == {"registry-row-gurupi": "update", "registry-row-novaroma": "update"}
    rows = registry.rows()
    assert (rows["gurupi"]["plan"], rows["gurupi"]["db_connections"], rows["gurupi"]["backup_retention_days"]) == ("enterprise", 40, 90)
    assert rows["novaroma"]["status"] == "suspended" and rows["novaroma"]["active"]
    registry.workspace.edit("gurupi", plan="pro")
    registry.workspace.edit("novaroma", status="active")
    registry.run("up")


def test_adding_then_removing_a_tenant_creates_its_row_then_marks_it_inactive(registry):
    registry.workspace.write(
        "itabira",
        {"name": "itabira", "display_name": "Prefeitura de Itabira", "plan": "basic", "database": {"server": "shared-1"}, "domains": ["precos.itabira.mg.gov.br"]},
    )
    registry.fleet.provision(["itabira"])
    registry.run("up")
    assert registry.changed() == {"registry-row-itabira": "create"}
    assert registry.rows()["itabira"]["hostnames"] == ["api-itabira.fleet.localhost", "app-itabira.fleet.localhost", "precos.itabira.mg.gov.br"]

    registry.workspace.tenant_file("itabira").unlink()
    registry.run("up")
    assert registry.changed() == {"registry-row-itabira": "delete"}
    itabira = registry.rows()["itabira"]
    assert itabira["active"] is False and itabira["removed_at"] is not None and itabira["display_name"] == "Prefeitura de Itabira"


def test_an_injected_failure_names_the_row_and_the_next_up_recovers(registry):
    with registry.cluster.connect() as admin:
        admin.execute("ALTER ROLE postgres PASSWORD 'rotated-behind-our-back'")
    registry.workspace.edit("santarita", display_name="Prefeitura Municipal de Santa Rita")
    try:
        with pytest.raises(engine.EngineError) as failure:
            registry.run("up")
    finally:
        with registry.cluster.connect(password="rotated-behind-our-back") as admin:
            admin.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(registry.cluster.admin_password)))
    message = str(failure.value)
    assert "TenantRegistryRow registry-row-santarita 'santarita'" in message and "update failed" in message
    assert "password authentication failed" in message
    assert registry.rows()["santarita"]["display_name"] == "Prefeitura de Santa Rita"
    summary = registry.run("up")
    assert summary["changes"].get("update") == 1 and registry.changed() == {"registry-row-santarita": "update"}
    assert registry.rows()["santarita"]["display_name"] == "Prefeitura Municipal de Santa Rita"


def test_the_ops_commands_read_their_secrets_from_the_deployed_stack(registry, tmp_path):
    secrets = EngineSecrets(STACK, registry.root, backend_dir=registry.backend)
    inventory = load_inventory(STACK, root=registry.root, tenants_dir=registry.workspace.tenants_dir, config=registry.fleet.config, secrets=secrets, backups_dir=tmp_path)
    assert secrets.server_password("shared-1") == registry.cluster.admin_password  # the secret config, decrypted
    assert secrets.database_password("gurupi") == registry.fleet.passwords["gurupi"]  # the secret output

    checks = verify.verify_fleet(inventory, http=False)
    assert [check.line() for check in checks if check.outcome == "fail"] == []
    assert any(check.check == "isolation" and check.outcome == "pass" for check in checks)
    results = backup.backup_many(inventory, ["gurupi", "pirapora"])
    assert all(result.ok for result in results), [result.error for result in results]

    # With a recipient, an operator's backup seals the env the deployed stack exported (a secret output).
    public, private = env_backup.new_keypair()
    sealing = copy.deepcopy(registry.fleet.config)
    sealing["backups"] = {**sealing.get("backups", {}), "env_recipient": public}
    sealed_inventory = load_inventory(STACK, root=registry.root, tenants_dir=registry.workspace.tenants_dir, config=sealing, secrets=secrets, backups_dir=tmp_path / "sealed")
    assert secrets.app_env("gurupi") == {"backend": [GURUPI_SECRET_LINE, "TENANT=gurupi"]} and secrets.app_env("pirapora") is None
    (gurupi, pirapora) = backup.backup_many(sealed_inventory, ["gurupi", "pirapora"])
    assert gurupi.ok and pirapora.ok, (gurupi.error, pirapora.error)
    assert env_backup.open_sealed_env(env_backup.env_file_path(path_of(gurupi)), private) == {"backend": [GURUPI_SECRET_LINE, "TENANT=gurupi"]}
    assert (backup.read_manifest(path_of(pirapora)) or {})["env"] == {"absent": True}
    rows, _servers = status.fleet_status(inventory, ["gurupi"], containers=lambda: [])
    assert (rows[0].size_bytes or 0) > 0 and rows[0].newest_backup is not None


def test_destroy_marks_every_row_inactive_and_keeps_the_table(registry):
    registry.run("destroy")
    rows = registry.rows()
    assert rows and not any(row["active"] for row in rows.values())

