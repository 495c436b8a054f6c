"""`verify` and `status` against live servers: two PostgreSQL clusters, a Caddy with every tenant's routes, a fake Docker API.

The shipped tenants are provisioned as the official provider would (see test_backup.FleetOnServers):
santarita, gurupi, novaroma and catasaltas (suspended) on shared-1, pirapora on dedicated-1. Caddy
gets the fleet server and each tenant's routes through the project's own Caddy providers, proxying to
tiny upstream servers, with a maintenance page for the suspended tenant.
"""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from psycopg import sql

from components.providers.caddy import CaddyRouteProvider, CaddyServerProvider
from fleet.bench.servers import (
    CaddyServerProcess,
    PostgresCluster,
    UpstreamHTTPServer,
)
from fleet.cli.main import main
from fleet.model import derive
from fleet.ops import backups as backup
from fleet.ops import status, verify
from fleet.postgres import replication
from fleet.postgres.privileges import apply_tenant_access
from tests.integration.test_backup import STACK, T0, FleetOnServers, clock_at
from tests.support.fixtures import running
from tests.support.tenant_db import cluster_access


@pytest.fixture(scope="module")
def clusters():
    started = {key: PostgresCluster(f"{key}-admin-secret").start() for key in ("shared-1", "dedicated-1")}
    try:
        yield started
    finally:
        for cluster in started.values():
            cluster.stop()


@pytest.fixture(scope="module")
def proxy():
    caddy = CaddyServerProcess()
    upstreams = {role: UpstreamHTTPServer(role) for role in derive.APP_ROLES}
    with running(caddy, *upstreams.values()):
        yield caddy, upstreams


class FakeDocker:
    """A Docker Engine API on a unix socket that lists the given containers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.containers: list[dict] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps(fake.containers).encode()
                self.send_response(200 if self.path.startswith("/containers/json") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def address_string(self) -> str:
                return "unix"

            def log_message(self, *_args) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(str(path), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    fake = FakeDocker(tmp_path_factory.mktemp("docker") / "docker.sock")
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, clusters, proxy, docker):
    caddy, upstreams = proxy
    fleet = FleetOnServers(tmp_path_factory.mktemp("verify-fleet"), clusters)
    fleet.config["proxy"] = {"admin_url": caddy.admin_url, "server": "fleet", "listen": [caddy.http_listen], "automatic_https": False}
    fleet.config["docker_host"] = {**fleet.config["docker_host"], "url": f"unix://{docker.path}"}
    fleet.provision()
    inventory = fleet.inventory()
    CaddyServerProvider().create({"admin_url": caddy.admin_url, "server": "fleet", "listen": [caddy.http_listen], "automatic_https": False, "not_found_body": "tenant not found"})
    for entry in inventory.select():
        hosts = {"backend": [entry.api_hostname], "frontend": list(entry.frontend_hostnames)}
        for role in derive.APP_ROLES:
            CaddyRouteProvider().create(
                {
                    "admin_url": caddy.admin_url,
                    "server": "fleet",
                    "route_id": derive.route_id(entry.spec, role),
                    "hosts": hosts[role],
                    "upstreams": [upstreams[role].address],
                    "maintenance": not entry.active,
                }
            )
    fleet.write_stack_file()
    fleet.secrets_path = fleet.write_secrets_file()
    return fleet


def run_cli(fleet, capsys, *argv: str) -> tuple[int, dict, str]:
    code = main([*argv, "--json", "--stack", STACK, "--root", str(fleet.root), "--secrets", str(fleet.secrets_path)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


# ---------------------------------------------------------------- verify


def test_verify_passes_on_a_correct_fleet(fleet, capsys):
    code, document, _err = run_cli(fleet, capsys, "verify")
    assert code == 0 and document["ok"] and document["failures"] == []
    checks = document["checks"]
    kinds = {(c["tenant"], c["check"]) for c in checks}
    for tenant in ("catasaltas", "gurupi", "novaroma", "pirapora", "santarita"):
        for check in ("login", "owner", "public connect", "public temporary", "connection limit", "http"):
            assert (tenant, check) in kinds, (tenant, check)
    # Isolation pairs are the tenants on the same server: 4 on shared-1 check each other, pirapora has no neighbour.
    pairs = {(c["tenant"], c["target"]) for c in checks if c["check"] == "isolation"}
    shared = {"catasaltas", "gurupi", "novaroma", "santarita"}
    assert pairs == {(a, b) for a in shared for b in shared if a != b}
    refused = next(c for c in checks if c["check"] == "isolation" and (c["tenant"], c["target"]) == ("santarita", "gurupi"))
    assert refused["outcome"] == "pass" and "permission denied for database" in refused["detail"]
    # Every hostname answered through the proxy; the suspended tenant with its maintenance page.
    http = {c["target"]: c for c in checks if c["check"] == "http"}
    assert set(http) == {host for entry in fleet.inventory().select() for host in entry.hostnames}
    assert http["precos.santarita.mg.gov.br"]["detail"].startswith("GET / -> 200 frontend host=precos.santarita.mg.gov.br")
    assert "503" in http["app-catasaltas.fleet.localhost"]["detail"]
    suspended_login = next(c for c in checks if (c["tenant"], c["check"]) == ("catasaltas", "login"))
    assert suspended_login["outcome"] == "pass" and "not permitted to log in" in suspended_login["detail"]


def test_verify_fails_naming_the_pair_after_a_grant_and_each_broken_fact(fleet, capsys, proxy):
    caddy, _upstreams = proxy
    shared = fleet.clusters["shared-1"]
    with shared.connect() as admin:
        admin.execute("GRANT CONNECT ON DATABASE tenant_gurupi TO tenant_santarita_app")
        admin.execute("GRANT CONNECT ON DATABASE tenant_novaroma TO PUBLIC")
        admin.execute("ALTER ROLE tenant_novaroma_app CONNECTION LIMIT 50")
    caddy.admin("DELETE", "/id/tenant-gurupi-api")
    try:
        code, document, err = run_cli(fleet, capsys, "verify")
    finally:
        with shared.connect() as admin:
            admin.execute("REVOKE CONNECT ON DATABASE tenant_gurupi FROM tenant_santarita_app")
            admin.execute("REVOKE CONNECT ON DATABASE tenant_novaroma FROM PUBLIC")
        fleet.provision(["novaroma"])
        CaddyRouteProvider().create(
            {
                "admin_url": caddy.admin_url,
                "server": "fleet",
                "route_id": "tenant-gurupi-api",
                "hosts": ["api-gurupi.fleet.localhost"],
                "upstreams": [_upstreams["backend"].address],
                "maintenance": False,
            }
        )
    assert code == 1 and not document["ok"]
    failures = document["failures"]
    assert "santarita: isolation gurupi: role tenant_santarita_app connected to database tenant_gurupi" in failures
    assert "FAIL santarita: isolation gurupi: role tenant_santarita_app connected to database tenant_gurupi" in err
    # PUBLIC's CONNECT lets every neighbour in: each pair is named. The suspended tenant can't log in,
    # but it holds the privilege all the same (it would connect once resumed).
    for neighbour in ("gurupi", "santarita"):
        assert f"{neighbour}: isolation novaroma: role tenant_{neighbour}_app connected to database tenant_novaroma" in failures
    assert "catasaltas: isolation novaroma: role tenant_catasaltas_app has CONNECT on database tenant_novaroma (grant)" in failures
    assert "novaroma: public connect: PUBLIC has CONNECT on tenant_novaroma" in failures
    assert "novaroma: connection limit: role tenant_novaroma_app limit 50, plan basic says 5" in failures
    assert any(line.startswith("gurupi: http api-gurupi.fleet.localhost: GET / -> 404") for line in failures)
    # Nothing else failed: the other tenants' facts still hold.
    assert {line.split(":")[0] for line in failures} == {"santarita", "gurupi", "novaroma", "catasaltas"}
    assert len(failures) == 1 + 3 + 1 + 1 + 1
    # And once repaired, verify passes again.
    code, document, _err = run_cli(fleet, capsys, "verify")
    assert code == 0, document["failures"]


def test_verify_of_one_tenant_still_checks_it_against_every_neighbour_and_can_skip_http(fleet, capsys):
    code, document, _err = run_cli(fleet, capsys, "verify", "--tenant", "gurupi", "--no-http")
    assert code == 0
    assert {c["tenant"] for c in document["checks"]} == {"gurupi"}
    assert {c["target"] for c in document["checks"] if c["check"] == "isolation"} == {"catasaltas", "novaroma", "santarita"}
    assert not any(c["check"] == "http" for c in document["checks"])


def test_verify_without_a_tenant_password_fails_that_tenant_only(fleet):
    secrets = fleet.secrets()
    del secrets._databases["gurupi"]
    checks = verify.verify_fleet(fleet.inventory(secrets), http=False)
    failed = [check.line() for check in checks if check.outcome == "fail"]
    assert len(failed) == 1 and failed[0].startswith("gurupi: login: no database password for tenant gurupi")


# ---------------------------------------------------------------- status


def test_status_figures_match_what_the_servers_report(fleet, capsys, docker, tmp_path):
    shared = fleet.clusters["shared-1"]
    # Sessions as the apps would hold them: 4 of novaroma's 5 (80 %: flagged), 4 of gurupi's 10 (40 %).
    sessions = [shared.connect("tenant_novaroma", user="tenant_novaroma_app", password=fleet.passwords["novaroma"]) for _ in range(4)]
    sessions += [shared.connect("tenant_gurupi", user="tenant_gurupi_app", password=fleet.passwords["gurupi"]) for _ in range(4)]
    with shared.connect("tenant_gurupi", user="tenant_gurupi_app", password=fleet.passwords["gurupi"]) as app:
        app.execute("CREATE TABLE IF NOT EXISTS padding AS SELECT g, repeat('x', 500) AS body FROM generate_series(1, 2000) g")
    # Containers as Docker lists them: gurupi's both running, novaroma's frontend exited, pirapora's 4 running.
    docker.containers = [
        _container("gurupi", "backend", "running"), _container("gurupi", "frontend", "running"),
        _container("novaroma", "backend", "running"), _container("novaroma", "frontend", "exited"),
        *[_container("pirapora", role, "running") for role in ("backend", "backend", "frontend", "frontend")],
        _container("santarita", "backup", "running"),  # a backup job is not an app container
    ]
    # Backups: gurupi's newest is 5 hours old; santarita's 3 days (stale); the others have none.
    folder = tmp_path / "backups"
    fleet.config["backups"] = {"dir": str(folder)}
    now = T0 + timedelta(days=3)
    for tenant, taken in (("gurupi", T0), ("gurupi", now - timedelta(hours=5)), ("santarita", T0)):
        path = backup.backup_path(folder, tenant, taken)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # as `fleet backup` leaves them: private
        path.write_bytes(b"PGDMP")
        path.chmod(0o600)
    try:
        rows, servers = status.fleet_status(fleet.inventory(), clock=clock_at(now))
        with shared.connect() as admin:
            sizes = dict(admin.execute("select datname, pg_database_size(oid) from pg_database where datname like 'tenant_%'").fetchall())
            by_role = dict(admin.execute("select usename, count(*) from pg_stat_activity where usename like 'tenant_%' group by usename").fetchall())
            total = admin.execute("select count(*) from pg_stat_activity where backend_type = 'client backend'").fetchone()[0]
        fleet.write_stack_file()
        code, document, _err = run_cli(fleet, capsys, "status")
    finally:
        for session in sessions:
            session.close()
    row_of = {row.tenant: row for row in rows}
    for tenant in ("gurupi", "novaroma", "santarita", "catasaltas"):
        assert row_of[tenant].size_bytes == sizes[f"tenant_{tenant}"], tenant
        assert row_of[tenant].connections == by_role.get(f"tenant_{tenant}_app", 0), tenant
    assert (row_of["gurupi"].size_bytes or 0) > (row_of["novaroma"].size_bytes or 0)
    assert (row_of["novaroma"].connections, row_of["novaroma"].connection_limit) == (4, 5)
    assert "connections 4/5 (80%)" in row_of["novaroma"].flags
    assert (row_of["gurupi"].connections, row_of["gurupi"].connection_limit) == (4, 10)
    assert not any(flag.startswith("connections") for flag in row_of["gurupi"].flags)
    assert row_of["gurupi"].containers == "running 2/2"
    assert row_of["novaroma"].containers == "running 1/2, exited" and "containers 1/2 running" in row_of["novaroma"].flags
    assert row_of["pirapora"].containers == "running 4/4"
    assert row_of["catasaltas"].containers == "none (suspended)"
    assert row_of["santarita"].containers == "running 0/2"
    assert row_of["gurupi"].backup_age_hours == 5.0 and row_of["gurupi"].newest_backup == f"gurupi-{backup.stamp(now - timedelta(hours=5))}.dump"
    assert "backup 72h old" in row_of["santarita"].flags and "no backup" in row_of["novaroma"].flags
    assert {server.server: server.max_connections for server in servers} == {"dedicated-1": 100, "shared-1": 100}
    assert next(s for s in servers if s.server == "shared-1").connections == total
    # The CLI's JSON carries the same figures (taken a moment later: the same sessions are still open).
    assert code == 0
    cli = {row["tenant"]: row for row in document["tenants"]}
    assert cli["novaroma"]["connections"] == 4 and cli["novaroma"]["size_bytes"] == sizes["tenant_novaroma"]


def test_status_shows_an_unreachable_server_and_docker_without_failing_the_others(fleet):
    secrets = fleet.secrets()
    secrets._servers["dedicated-1"] = "wrong"
    inventory = fleet.inventory(secrets)
    rows, servers = status.fleet_status(inventory, containers=lambda: (_ for _ in ()).throw(ConnectionRefusedError("no docker here")))
    row_of = {row.tenant: row for row in rows}
    assert "password authentication failed" in (row_of["pirapora"].error or "") and row_of["pirapora"].size_bytes is None
    assert row_of["gurupi"].error is None and (row_of["gurupi"].size_bytes or 0) > 0
    assert row_of["gurupi"].containers == "unknown (no docker here)"
    assert next(s for s in servers if s.server == "dedicated-1").error


def _container(tenant: str, component: str, state: str) -> dict:
    return {"Id": f"{tenant}-{component}", "State": state, "Labels": {"tenant": tenant, "component": component, "managed-by": "tenant-fleet"}}


def test_isolation_grant_made_through_a_group_role_is_caught_too(fleet):
    shared = fleet.clusters["shared-1"]
    with shared.connect() as admin:
        admin.execute("CREATE ROLE support_readers NOLOGIN")
        admin.execute("GRANT CONNECT ON DATABASE tenant_santarita TO support_readers")
        admin.execute(sql.SQL("GRANT support_readers TO {}").format(sql.Identifier("tenant_gurupi_app")))
    try:
        checks = verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False)
    finally:
        with shared.connect() as admin:
            admin.execute("DROP OWNED BY support_readers")
            admin.execute("DROP ROLE support_readers")
    failed = [check.line() for check in checks if check.outcome == "fail"]
    assert sorted(failed) == [
        "gurupi: isolation santarita: role tenant_gurupi_app connected to database tenant_santarita",
        "gurupi: role memberships: role tenant_gurupi_app is a member of support_readers",
    ]


def test_verify_names_every_privilege_drift_of_a_tenant_role(fleet):
    """The probe's attack: a's role gains CREATEROLE and CREATEDB, then grants itself b's role to read b's rows."""
    shared = fleet.clusters["shared-1"]
    with shared.connect() as admin:
        admin.execute("ALTER ROLE tenant_gurupi_app CREATEROLE CREATEDB BYPASSRLS")
        admin.execute("GRANT tenant_novaroma_app TO tenant_gurupi_app")
    try:
        checks = verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False)
    finally:
        with shared.connect() as admin:
            admin.execute("REVOKE tenant_novaroma_app FROM tenant_gurupi_app")
            admin.execute("ALTER ROLE tenant_gurupi_app NOCREATEROLE NOCREATEDB NOBYPASSRLS")
    failed = [check.line() for check in checks if check.outcome == "fail"]
    assert "gurupi: role attributes: role tenant_gurupi_app has CREATEROLE, CREATEDB, BYPASSRLS" in failed
    assert "gurupi: role memberships: role tenant_gurupi_app is a member of tenant_novaroma_app" in failed
    assert "gurupi: isolation novaroma: role tenant_gurupi_app connected to database tenant_novaroma" in failed
    assert all(line.startswith("gurupi:") for line in failed)
    clean = verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False)
    assert not [check for check in clean if check.outcome == "fail"]


def test_verify_names_ownership_drift_and_shared_databases_opened_to_public(fleet):
    """The owner/app split undone by hand, the owner role given LOGIN and a membership, and PUBLIC let back into postgres."""
    shared = fleet.clusters["shared-1"]
    with shared.connect() as admin:
        admin.execute("ALTER DATABASE tenant_gurupi OWNER TO tenant_gurupi_app")
        admin.execute("ALTER ROLE tenant_gurupi_dbo LOGIN CREATEDB")
        admin.execute("GRANT tenant_novaroma_dbo TO tenant_gurupi_dbo")
        admin.execute("GRANT CONNECT ON DATABASE postgres TO PUBLIC")
    try:
        checks = verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False)
    finally:
        with shared.connect() as admin:
            admin.execute("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
            admin.execute("REVOKE tenant_novaroma_dbo FROM tenant_gurupi_dbo")
            admin.execute("ALTER ROLE tenant_gurupi_dbo NOLOGIN NOCREATEDB")
        # What `fleet up` (its Database and Grant resources) puts back: the owner, and the app's grants with it.
        apply_tenant_access(cluster_access(shared), "tenant_gurupi", "tenant_gurupi_dbo", "tenant_gurupi_app")
    failed = sorted(check.line() for check in checks if check.outcome == "fail")
    assert failed == [
        "gurupi: owner role: role tenant_gurupi_dbo has CREATEDB, LOGIN, member of tenant_novaroma_dbo",
        "gurupi: owner: database tenant_gurupi is owned by its login role tenant_gurupi_app: the app could DROP it or grant it away; "
        "`fleet up` hands it to tenant_gurupi_dbo",
        "gurupi: shared databases: PUBLIC has CONNECT on postgres of server shared-1: every tenant's role can reach them",
    ]
    clean = verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False)
    assert not [check for check in clean if check.outcome == "fail"]
    assert {check.check for check in clean} >= {"owner", "owner role", "shared databases"}


def test_verify_checks_the_container_jobs_role_where_a_tenant_has_jobs(fleet):
    """gurupi gets a container job: its jobs role must exist, be a member of its owner role only, with no attribute."""
    shared = fleet.clusters["shared-1"]
    fleet.workspace.edit("gurupi", jobs={"seed": {"command": ["node", "seed.js"]}})
    try:
        missing = [c.line() for c in verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False) if c.check == "jobs role"]
        assert missing == ["gurupi: jobs role: role tenant_gurupi_job does not exist on shared-1"]
        with shared.connect() as admin:  # as the official Role resource makes it
            admin.execute("CREATE ROLE tenant_gurupi_job LOGIN PASSWORD 'jobs-pw-000000000000' CONNECTION LIMIT 2 IN ROLE tenant_gurupi_dbo")
            admin.execute("ALTER ROLE tenant_gurupi_job SET role = 'tenant_gurupi_dbo'")
        good = [c for c in verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False) if c.check == "jobs role"]
        assert [c.outcome for c in good] == ["pass"]
        with shared.connect() as admin:
            admin.execute("ALTER ROLE tenant_gurupi_job CREATEDB")
            admin.execute("GRANT tenant_novaroma_dbo TO tenant_gurupi_job")
        drifted = [c.line() for c in verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False) if c.check == "jobs role"]
        assert drifted == ["gurupi: jobs role: role tenant_gurupi_job has CREATEDB, member of tenant_novaroma_dbo"]
    finally:
        fleet.workspace.edit("gurupi", jobs={})
        with shared.connect() as admin:
            admin.execute("DROP ROLE IF EXISTS tenant_gurupi_job")


def test_verify_reports_drift_of_the_noisy_neighbour_limits(fleet):
    """The role settings and the database connection limit the plan derives (fleet.model.db_limits), changed by hand."""
    clean = [c for c in verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False) if c.check in ("role settings", "database connection limit")]
    assert [c.outcome for c in clean] == ["pass", "pass"]
    assert {c.check: c.detail for c in clean}["role settings"] == (
        "role tenant_gurupi_app: idle_in_transaction_session_timeout 60000, statement_timeout 30000, temp_file_limit 2097152kB, work_mem 4096kB"
    )
    with fleet.clusters["shared-1"].connect() as admin:
        admin.execute("ALTER ROLE tenant_gurupi_app SET work_mem = '256MB'")
        admin.execute("ALTER ROLE tenant_gurupi_app RESET statement_timeout")
        admin.execute("ALTER DATABASE tenant_gurupi CONNECTION LIMIT -1")
    try:
        failed = sorted(c.line() for c in verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False) if c.outcome == "fail")
        assert failed == [
            "gurupi: database connection limit: database tenant_gurupi limit -1, plan pro says 12",
            "gurupi: role settings: role tenant_gurupi_app: statement_timeout unset, planned 30000; work_mem 256MB, planned 4096kB",
        ]
    finally:
        fleet.provision(["gurupi"])
    assert not [c for c in verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False) if c.outcome == "fail"]


def test_verify_reports_replication_slots_and_publications_no_move_owns(fleet):
    """A slot a dead live move left (named for gurupi's database) and a stray one: both reported, with the remedy."""
    shared = fleet.clusters["shared-1"]
    leftover = replication.move_object_name("tenant_gurupi")
    with shared.connect("tenant_gurupi") as admin:
        admin.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", [leftover])
        admin.execute("create publication stray_pub")
    with shared.connect() as admin:
        admin.execute("select pg_create_logical_replication_slot('stray_slot', 'pgoutput')")
    try:
        checks = verify.verify_fleet(fleet.inventory(), ["gurupi", "pirapora"], http=False)
    finally:
        with shared.connect() as admin:
            admin.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots")
        with shared.connect("tenant_gurupi") as admin:
            admin.execute("drop publication stray_pub")
    (gurupi,) = [check for check in checks if (check.tenant, check.check) == ("gurupi", "replication")]
    assert gurupi.outcome == "fail"
    assert f"slot {leftover} (in tenant_gurupi, logical, INACTIVE" in gurupi.detail and "left by a move of tenant_gurupi" in gurupi.detail
    assert "slot stray_slot (in postgres" in gurupi.detail and "publication stray_pub (in tenant_gurupi): no move owns it" in gurupi.detail
    assert "removed by the next `fleet up`" in gurupi.detail
    (pirapora,) = [check for check in checks if (check.tenant, check.check) == ("pirapora", "replication")]
    assert pirapora.outcome == "pass" and "dedicated-1" in pirapora.detail  # another server: nothing there
    clean = verify.verify_fleet(fleet.inventory(), ["gurupi"], http=False)
    assert [check.outcome for check in clean if check.check == "replication"] == ["pass"]
