"""The whole dev stack (databases, roles, grants, containers, routes) through the real engine.

This needs the official provider plugins (postgresql, docker, random). Where they are missing, and
they cannot be installed on the development machines of this project, the test is skipped with a
reason that names them; it is the only test allowed to skip. The GitHub workflow
(.github/workflows/full-stack.yml) installs the plugins and runs it.
"""

from __future__ import annotations

import copy

import psycopg
import pytest

from fleet.bench.servers import free_port
from fleet.engine import driver, plugins
from fleet.engine.plugins import required_packages
from fleet.offline.plan import evaluate
from fleet.program import fleet_program
from tests.support.fixtures import running
from tests.support.queries import one_row
from tests.unit.graph import FleetWorkspace

TENANTS = ("santarita", "novaroma", "pirapora")


def _missing_plugins(config, tenants_dir) -> list[str]:
    evaluation = evaluate(config, stack="fullstack", tenants_dir=tenants_dir, selection=set(TENANTS))
    required = plugins.required_plugin_versions(sorted(required_packages(evaluation)))
    return plugins.missing_plugins(required)


@pytest.fixture(scope="module")
def full_stack(tmp_path_factory):
    from fleet.bench.servers import CaddyServerProcess, PostgresCluster

    workspace = FleetWorkspace(tmp_path_factory.mktemp("fleet"))
    config = copy.deepcopy(workspace.config)
    missing = _missing_plugins(config, workspace.tenants_dir)
    if missing:
        pytest.skip("official provider plugins not installed: " + ", ".join(missing) + " (pulumi plugin install resource <name> <version>)")

    clusters = {"shared-1": PostgresCluster("fullstack-shared"), "dedicated-1": PostgresCluster("fullstack-dedicated")}
    caddy = CaddyServerProcess()
    with running(*clusters.values(), caddy):
        for key, cluster in clusters.items():
            config["servers"][key].update(host=cluster.host, port=cluster.port, sslmode="disable")
        port = free_port()
        config["proxy"] = {"admin_url": caddy.admin_url, "server": "fleet", "listen": [f"127.0.0.1:{port}"], "automatic_https": False}
        config["tenants"] = list(TENANTS)
        settings = {f"fleet:{key}": value for key, value in config.items() if key != "server_passwords"}
        secrets = {"fleet:server_passwords": {key: cluster.admin_password for key, cluster in clusters.items()}}
        backend = tmp_path_factory.mktemp("state")

        def program() -> None:
            fleet_program(None, workspace.tenants_dir)  # the engine ignores a program's result

        def stack():
            return driver.stack_for("fullstack", program, backend_dir=backend, config=settings, secrets=secrets)

        yield {"stack": stack, "clusters": clusters, "workspace": workspace, "caddy": caddy, "port": port}
        driver.run("destroy", stack(), on_output=None)


def test_full_stack_deploys_and_isolates_every_tenant_on_the_live_servers(full_stack):
    stack = full_stack["stack"]
    driver.run("up", stack(), on_output=None)
    outputs = stack().outputs()
    tenants = outputs["tenants"].value
    passwords = outputs["database_passwords"].value
    assert outputs["database_passwords"].secret
    clusters = full_stack["clusters"]
    for name in TENANTS:
        database = tenants[name]["database"]
        cluster = next(c for c in clusters.values() if c.port == database["port"])
        with psycopg.connect(cluster.dsn(database["name"], database["user"], passwords[name])) as own:
            assert one_row(own.execute("select current_database()"))[0] == database["name"]
        for other in TENANTS:
            if other == name:
                continue
            other_db = tenants[other]["database"]
            other_cluster = next(c for c in clusters.values() if c.port == other_db["port"])
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(other_cluster.dsn(other_db["name"], database["user"], passwords[name])).close()
    assert set(driver.run("preview", stack(), on_output=None)["changes"]) == {"same"}


def test_each_database_is_owned_by_its_nologin_owner_role_and_the_app_cannot_drop_it(full_stack):
    stack = full_stack["stack"]
    cluster = full_stack["clusters"]["dedicated-1"]
    with cluster.connect() as admin:
        owner, can_login = admin.execute(
            "select r.rolname, r.rolcanlogin from pg_database d join pg_roles r on r.oid = d.datdba where d.datname = 'tenant_pirapora'"
        ).fetchone()
        assert (owner, can_login) == ("tenant_pirapora_dbo", False)
        for shared in ("postgres", "template1"):
            assert admin.execute("select has_database_privilege('public', %s, 'CONNECT')", [shared]).fetchone()[0] is False
    with psycopg.connect(cluster.dsn("tenant_pirapora", "tenant_pirapora_app", _password(stack, "pirapora")), autocommit=True) as own:
        own.execute("create table if not exists owned_check (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            own.execute("alter database tenant_pirapora connection limit -1")


def test_removing_a_tenant_keeps_its_database_and_role(full_stack):
    stack, workspace = full_stack["stack"], full_stack["workspace"]
    cluster = full_stack["clusters"]["shared-1"]
    with cluster.connect("tenant_novaroma") as admin:
        admin.execute("create table kept (id int)")
        admin.execute("insert into kept values (1), (2), (3)")
    workspace.tenant_file("novaroma").unlink()
    driver.run("up", stack(), on_output=None)
    with cluster.connect("tenant_novaroma") as admin:
        assert admin.execute("select count(*) from kept").fetchone()[0] == 3
        assert admin.execute("select 1 from pg_roles where rolname = 'tenant_novaroma_app'").fetchone() == (1,)


def _password(stack, tenant: str) -> str:
    return stack().outputs()["database_passwords"].value[tenant]


def test_rotation_gives_a_new_password_and_the_old_one_stops_working(full_stack):
    stack, workspace = full_stack["stack"], full_stack["workspace"]
    cluster = full_stack["clusters"]["shared-1"]
    old = _password(stack, "santarita")
    workspace.edit("santarita", rotation=1)
    driver.run("up", stack(), on_output=None)
    new = _password(stack, "santarita")
    assert new != old
    psycopg.connect(cluster.dsn("tenant_santarita", "tenant_santarita_app", new)).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.dsn("tenant_santarita", "tenant_santarita_app", old)).close()


def test_suspend_blocks_the_login_and_resume_restores_it_with_the_same_data(full_stack):
    stack, workspace = full_stack["stack"], full_stack["workspace"]
    cluster = full_stack["clusters"]["dedicated-1"]
    password = _password(stack, "pirapora")
    with psycopg.connect(cluster.dsn("tenant_pirapora", "tenant_pirapora_app", password), autocommit=True) as own:
        own.execute("create table notes (id int)")
        own.execute("insert into notes values (1), (2)")
    workspace.edit("pirapora", status="suspended")
    driver.run("up", stack(), on_output=None)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.dsn("tenant_pirapora", "tenant_pirapora_app", password)).close()
    workspace.edit("pirapora", status="active")
    driver.run("up", stack(), on_output=None)
    assert _password(stack, "pirapora") == password
    with psycopg.connect(cluster.dsn("tenant_pirapora", "tenant_pirapora_app", password)) as own:
        assert one_row(own.execute("select count(*) from notes"))[0] == 2
