"""Splitting a deployed single-stack environment into a platform stack and tenant stacks touches nothing.

A proxy-only fleet with the registry (real PostgreSQL) is deployed as one stack, then the environment's file
says `fleet:stacks: per-tenant` and `fleet migrate-stacks` moves each tenant's resources into its own stack
with the engine's `pulumi state move`. Afterwards: no resource was created, replaced or deleted, every
stack's preview shows no changes, Caddy's route objects and the registry rows are identical, and `fleet up`
runs no stack.
"""

from __future__ import annotations

import io
import json
import shutil

import psycopg
import pytest
import yaml
from pulumi import automation as auto

from fleet.bench.servers import PostgresCluster, UpstreamHTTPServer, free_port
from fleet.engine import driver, migrate, verbs
from fleet.errors import EXIT_OK, FleetError
from fleet.paths import PROJECT_ROOT
from tests.support.fixtures import running
from tests.support.queries import one_row
from tests.unit.graph import FleetWorkspace

ENV = "mig"
PASSWORD = "migration-admin-password"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, caddy_process):
    upstreams = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    server = PostgresCluster(PASSWORD)
    with running(server, *upstreams.values()):
        root = tmp_path_factory.mktemp("migration")
        workspace = FleetWorkspace(root)
        shutil.copytree(PROJECT_ROOT / "policies", root / "policies")
        config = {key: value for key, value in workspace.config.items() if key != "server_passwords"}
        config["layers"] = ["proxy"]
        config["servers"]["shared-1"].update({"host": server.host, "port": server.port, "sslmode": "disable"})
        config["registry"] = {"server": "shared-1", "database": "fleet_registry"}
        config["proxy"] = {
            "admin_url": caddy_process.admin_url,
            "server": "fleet",
            "listen": [f"127.0.0.1:{free_port()}"],
            "automatic_https": False,
            "external_upstreams": {role: upstream.address for role, upstream in upstreams.items()},
        }
        backend = root / "state"
        (root / f"Pulumi.{ENV}.yaml").write_text(yaml.safe_dump({"config": {f"fleet:{k}": v for k, v in config.items()}}))
        # The admin password is a secret of the environment's file, encrypted as `pulumi config set --secret` does.
        stack = driver.stack_for(ENV, lambda: None, work_dir=root, backend_dir=backend)
        stack.set_config("fleet:server_passwords.shared-1", auto.ConfigValue(PASSWORD, secret=True), path=True)
        out = io.StringIO()
        assert verbs.run_engine_verb("up", ENV, json_output=True, root=root, backend_dir=backend, out=out) == EXIT_OK
        yield root, backend, workspace, caddy_process, server


def _rows(server) -> list[tuple]:
    with psycopg.connect(server.dsn("fleet_registry", user="postgres", password=PASSWORD)) as connection:
        return connection.execute("select * from tenants order by name").fetchall()


def _stacks_file(root, flag: str) -> None:
    path = root / f"Pulumi.{ENV}.yaml"
    data = yaml.safe_load(path.read_text())
    data["config"]["fleet:stacks"] = flag
    path.write_text(yaml.safe_dump(data))


def test_migration_moves_every_tenant_out_and_touches_nothing(deployed):
    root, backend, workspace, caddy, server = deployed
    routes_before = caddy.config("apps/http/servers/fleet/routes")
    rows_before = _rows(server)
    with pytest.raises(FleetError, match="keeps one stack"):
        migrate.migrate_to_tenant_stacks(ENV, root, yes=True, backend=str(backend))  # the reviewed flag comes first
    _stacks_file(root, "per-tenant")
    report = migrate.migrate_to_tenant_stacks(ENV, root, yes=True, backend=str(backend))
    tenants = sorted(spec["name"] for spec in map(yaml.safe_load, (p.read_text() for p in workspace.tenants_dir.glob("[!_]*.yaml"))))
    assert sorted(report["moved"]) == [f"{ENV}.{tenant}" for tenant in tenants]
    assert all(count == 5 for count in report["moved"].values())  # Tenant, TenantRoutes, 2 routes, registry row

    # Nothing was contacted: Caddy's routes and the registry rows are byte-identical.
    assert caddy.config("apps/http/servers/fleet/routes") == routes_before
    assert _rows(server) == rows_before

    # Every stack previews with no change, through the engine.
    for stack in [ENV, *report["moved"]]:
        out = io.StringIO()
        code = verbs.run_fleet_verb("preview", ENV, selection=None if stack == ENV else [stack.split(".", 1)[1]], force_all=True,
                                    json_output=True, root=root, backend=str(backend), out=out)
        document = json.loads(out.getvalue())
        assert code == EXIT_OK
        for result in document["results"]:
            assert set(result["changes"]) <= {"same"}, (result["stack"], result["changes"])

    # And `fleet up` finds every stack up to date.
    out = io.StringIO()
    assert verbs.run_fleet_verb("up", ENV, json_output=True, root=root, backend=str(backend), out=out) == EXIT_OK
    assert json.loads(out.getvalue())["results"] == []
    assert caddy.config("apps/http/servers/fleet/routes") == routes_before
    assert _rows(server) == rows_before


def test_a_second_migration_finds_nothing_to_move(deployed):
    root, backend, *_ = deployed
    report = migrate.migrate_to_tenant_stacks(ENV, root, yes=True, backend=str(backend))
    assert report["moved"] == {}


def test_after_the_split_removing_a_tenant_removes_its_stack_and_marks_its_row(deployed):
    root, backend, workspace, caddy, server = deployed
    gurupi = workspace.tenant_file("gurupi")
    saved = gurupi.read_text()
    gurupi.unlink()
    try:
        out = io.StringIO()
        assert verbs.run_fleet_verb("up", ENV, json_output=True, yes=True, root=root, backend=str(backend), out=out) == EXIT_OK
        document = json.loads(out.getvalue())
        assert [(r["stack"], r["op"]) for r in document["results"]] == [(f"{ENV}.gurupi", "remove")]
        with psycopg.connect(server.dsn("fleet_registry", user="postgres", password=PASSWORD)) as connection:
            active, removed_at = one_row(connection.execute("select active, removed_at from tenants where name = 'gurupi'"))
        assert active is False and removed_at is not None  # the row is kept, marked removed
        assert not any(route["@id"].startswith("tenant-gurupi-") for route in caddy.config("apps/http/servers/fleet/routes"))
    finally:
        gurupi.write_text(saved)
        out = io.StringIO()
        assert verbs.run_fleet_verb("up", ENV, json_output=True, root=root, backend=str(backend), out=out) == EXIT_OK
        with psycopg.connect(server.dsn("fleet_registry", user="postgres", password=PASSWORD)) as connection:
            assert connection.execute("select active from tenants where name = 'gurupi'").fetchone() == (True,)
