"""A tenant's move and purge as `pulumi up`s of the real engine, checked on two live PostgreSQL servers.

The official postgresql provider can't run here, so the test creates the tenant's role and databases
on both clusters itself (as that provider would) and deploys an inline program declaring only the
project's own resources, wired the way components/database.py wires them (server access from the
stack's secret `fleet:server_passwords`, the backup folder from `fleet:backups`):

1. `up` on server `old`: the placement is recorded, nothing is copied; a preview then shows no changes;
2. `up` moving to `new` while `new` is unreachable: the up fails naming the placement, the app keeps
   writing to `old`, the state still says `old`;
3. fixed, `up` again while the app writes: every committed row is on `new`, `old` is blocked but intact,
   the placement's outputs (what the app's DATABASE_URL is built from) say `new`; a preview shows no changes;
4. `up` with the tenant purged: the final backup is written and restores with the same row counts,
   the database and role are gone from both servers; `destroy` then touches nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from components.database import server_access
from components.providers.postgres import (
    DatabasePlacement,
    DatabasePlacementArgs,
    TenantPurge,
    TenantPurgeArgs,
    parse_moved_comment,
)
from fleet.bench.servers import PostgresCluster, free_port
from fleet.engine import driver as engine
from fleet.model.spec import Environment
from fleet.paths import PROJECT_ROOT
from fleet.postgres import catalog, dumps
from tests.integration.test_move import (
    TenantOnServers,
    Writer,
    admin_scalar,
    load_sample,
    login_error,
    moved_marker,
    provision,
    refusal,
)
from tests.support.fixtures import require_engine, running

STACK = "e2e-lifecycle"
TENANT = "acme"


class LifecycleStack:
    """The inline program, its stack on a file backend, and the knobs the steps turn (server, purge, a broken port)."""

    def __init__(self, clusters: dict[str, PostgresCluster], backend: Path, backups: Path) -> None:
        self.clusters = clusters
        self.tenant = TenantOnServers(TENANT, clusters)
        self.backend = backend
        self.backups = backups
        self.server = "old"
        self.purge = False
        self.port_override: dict[str, int] = {}
        self.events: list = []

    def environment(self) -> Environment:
        servers = {
            key: {
                "host": cluster.host,
                "port": self.port_override.get(key, cluster.port),
                "admin_user": cluster.admin_user,
                "max_connections": 100,
                "sslmode": "disable",
            }
            for key, cluster in self.clusters.items()
        }
        return Environment.model_validate(
            {
                "base_domain": "fleet.localhost",
                "servers": servers,
                "docker_host": {"memory_mb": 1024, "cpus": 1},
                "images": {"backend": "example/backend:1", "frontend": "example/frontend:1"},
                "backups": {"dir": str(self.backups)},
                "layers": ["database"],
            }
        )

    def program(self) -> None:
        environment = self.environment()
        passwords = pulumi.Config("fleet").require_secret_object("server_passwords")
        tenant = self.tenant
        if self.purge:
            purge = TenantPurge(
                f"{TENANT}-purge",
                TenantPurgeArgs(
                    tenant=TENANT, confirm=TENANT, database=tenant.database, role=tenant.role, owner=tenant.owner, server=self.server,
                    servers=server_access(environment, passwords), backup_dir=str(environment.backups.folder(PROJECT_ROOT)), reason="e2e: contract ended",
                ),
            )
            pulumi.export("backups", purge.backups)
            return
        server = environment.servers[self.server]
        placement = DatabasePlacement(
            f"{TENANT}-db-placement",
            DatabasePlacementArgs(
                tenant=TENANT, database=tenant.database, role=tenant.role, owner=tenant.owner, server=self.server,
                host=server.app_host or server.host, port=server.port, servers=server_access(environment, passwords),
            ),
        )
        pulumi.export("server", placement.server)
        pulumi.export("port", placement.port)
        pulumi.export("moves", placement.moves)

    def stack(self):
        secrets = {"fleet:server_passwords": {key: cluster.admin_password for key, cluster in self.clusters.items()}}
        return engine.stack_for(STACK, self.program, backend_dir=self.backend, secrets=secrets)

    def run(self, op: str, **options):
        self.events = []
        return engine.run(op, self.stack(), on_output=None, on_event=self.events.append, **options)

    def placement_state(self) -> dict:
        resources = self.stack().export_stack().deployment["resources"]
        (placement,) = [r for r in resources if r["type"].endswith("postgres:DatabasePlacement")]
        return placement["outputs"]


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    require_engine()
    clusters = {key: PostgresCluster(f"e2e-{key}-superuser") for key in ("old", "new")}
    with running(*clusters.values()):
        stack = LifecycleStack(clusters, tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("backups"))
        for cluster in clusters.values():
            provision(cluster, stack.tenant.database, stack.tenant.role, stack.tenant.password)
        with stack.tenant.connect("old") as connection:
            load_sample(connection, rows=6000)
        yield stack
        try:
            engine.run("destroy", stack.stack(), on_output=None)
        except engine.EngineError:
            pass


def test_up_records_the_placement_and_copies_nothing(lifecycle):
    summary = lifecycle.run("up")
    assert summary["changes"] == {"create": 2}  # the stack and the placement
    assert summary["outputs"]["server"] == "old" and summary["outputs"]["port"] == lifecycle.clusters["old"].port
    assert catalog.user_objects(lifecycle.tenant.access("new"), lifecycle.tenant.database) == []
    state = lifecycle.placement_state()
    assert "servers" not in state and "superuser" not in json.dumps(state)  # no admin password in the placement's outputs
    # The admin passwords are in the state's inputs only encrypted.
    stored = "".join(path.read_text(errors="replace") for path in lifecycle.backend.rglob("*.json"))
    assert "tenant_acme" in stored and "e2e-old-superuser" not in stored and "e2e-new-superuser" not in stored
    assert set(lifecycle.run("preview")["changes"]) == {"same"}


def test_a_move_to_an_unreachable_target_fails_the_up_and_the_source_keeps_serving(lifecycle):
    tenant = lifecycle.tenant
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    lifecycle.server = "new"
    lifecycle.port_override = {"new": free_port()}
    with pytest.raises(engine.EngineError) as failure:
        lifecycle.run("up")
    message = str(failure.value)
    assert f"DatabasePlacement '{TENANT}-db-placement'" in message and "refused before anything changed" in message
    assert lifecycle.placement_state()["server"] == "old"  # the app's coordinates did not move
    assert login_error(tenant, "old") is None
    with tenant.connect("old") as app:
        app.execute("insert into events (payload) values ('written after the failed up')")
    assert catalog.table_counts(tenant.access("old"), tenant.database)["public.events"] == counts["public.events"] + 1
    assert parse_moved_comment(catalog.database_comment(tenant.access("old"), tenant.database)) is None


def test_the_fixed_up_moves_every_committed_row_and_blocks_the_source(lifecycle):
    tenant = lifecycle.tenant
    lifecycle.port_override = {}
    writer = Writer(tenant, "old")
    writer.start()
    try:
        assert writer.started_writing.wait(10), writer.errors
        summary = lifecycle.run("up")
        writer.join(15)
        assert not writer.is_alive(), "the app was never cut off from the source"
    finally:
        writer.stop.set()
    assert summary["changes"] == {"same": 1, "update": 1}
    assert summary["outputs"]["server"] == "new" and summary["outputs"]["port"] == lifecycle.clusters["new"].port

    source, target = tenant.access("old"), tenant.access("new")
    with target.connect(tenant.database) as admin:
        on_target = {row for (row,) in admin.execute("select id from events")}
    assert set(writer.committed) <= on_target and len(writer.committed) >= 50
    counts = catalog.table_counts(target, tenant.database)
    assert counts == catalog.table_counts(source, tenant.database) and counts["public.orders"] == 6000
    # The source is kept, intact and closed to the app, and says where the data went.
    assert "not permitted to log in" in refusal(tenant, "old")
    assert admin_scalar(lifecycle.clusters["old"], "select datconnlimit from pg_database where datname = %s", [tenant.database]) == 0
    assert moved_marker(source, tenant.database)["server"] == "new"
    with tenant.connect("new") as app:
        app.execute("insert into events (payload) values ('the app on the new server')")
    (move,) = summary["outputs"]["moves"]
    assert (move["source"], move["target"], move["rows"]) == ("old", "new", sum(counts.values()))
    assert set(lifecycle.run("preview")["changes"]) == {"same"}


def test_purge_as_an_up_keeps_a_final_backup_that_restores_and_drops_database_and_role(lifecycle):
    tenant = lifecycle.tenant
    counts = catalog.table_counts(tenant.access("new"), tenant.database)
    lifecycle.purge = True
    summary = lifecycle.run("up")
    assert summary["changes"] == {"same": 1, "create": 1, "delete": 1}  # purge created; the placement leaves (its delete is a no-op)

    backups = {entry["server"]: entry for entry in summary["outputs"]["backups"]}
    current = Path(backups["new"]["path"])
    assert current.parent == lifecycle.backups / TENANT and current.name.startswith(f"{TENANT}-final-") and current.suffix == ".dump"
    assert json.loads(current.with_suffix(".json").read_text())["reason"] == "e2e: contract ended"
    assert Path(backups["old"]["path"]).exists()  # the copy the move left behind was backed up too
    for key in ("old", "new"):
        assert not catalog.database_exists(tenant.access(key), tenant.database)
        assert not catalog.role_exists(tenant.access(key), tenant.role)
    # The final backup restores into a fresh database with the same rows.
    access = tenant.access("new")
    with access.connect() as admin:
        admin.execute("create database acme_restored")
    dumps.restore(access, "acme_restored", current, owner_role=access.admin_user)
    assert catalog.table_counts(access, "acme_restored") == counts

    assert set(lifecycle.run("preview")["changes"]) == {"same"}
    assert lifecycle.run("destroy")["changes"] == {"delete": 2}
    assert current.exists()
