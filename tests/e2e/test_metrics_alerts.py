"""Per-tenant metrics and alerts end to end: `python -m fleet metrics --listen` against real PostgreSQL, Caddy and
backups, scraped by a real Prometheus that evaluates the rules `python -m fleet alerts` wrote from the plans.

Caddy is 2.10 with per-host metrics on (tests/support/caddy_build.py: Debian's 2.6.2 has no host label), its
fleet server and tenant routes made by the project's own Caddy providers; gurupi's API route points at a
port where nothing listens, so Caddy answers its requests with 502.

The shipped tenants are provisioned on two clusters (shared-1: gurupi and santarita on `pro`, novaroma and
catasaltas; dedicated-1: pirapora on `enterprise`). The test plan catalog lowers two plans' thresholds so the
alerts fire within seconds. gurupi is pushed past `pro`'s: half its connection limit in open sessions and a
backup three hours old, and its last restore drill two days old (the test's `pro` drills daily); its neighbour
santarita, on the same plan and server, has one session, a fresh backup and a fresh drill, and its alerts stay
inactive. Then dedicated-1 stops: pirapora stays in the output with
`tenant_fleet_database_up 0` and its down alert fires.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from components.providers.caddy import CaddyRouteProvider, CaddyServerProvider
from fleet.bench.prometheus import PrometheusServerProcess
from fleet.bench.servers import CaddyServerProcess, PostgresCluster, ServerStartError, UpstreamHTTPServer, end_process, free_port, http_get
from fleet.model import derive
from fleet.ops import backups, drills, status
from fleet.ops.backups import utc_now
from fleet.paths import PROJECT_ROOT
from tests.integration.test_backup import STACK, FleetOnServers, clock_at
from tests.support.caddy_build import caddy_with_host_metrics
from tests.support.fixtures import running

PRO_ALERTS = {"connections_percent": 50, "backup_age_hours": 1, "for_minutes": 0, "errors_per_hour": 5}
ENTERPRISE_ALERTS = {"down_minutes": 0}
FIRING_WITHIN = 60.0


class Exporter:
    """`python -m fleet metrics --listen 127.0.0.1:<port>` as an operator runs it, stopped on the way out."""

    def __init__(self, root: Path, secrets: Path) -> None:
        self.port = free_port()
        self.log = root / "exporter.log"
        command = [
            sys.executable, "-m", "fleet", "metrics", "--listen", f"127.0.0.1:{self.port}",
            "--root", str(root), "--stack", STACK, "--secrets", str(secrets),
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"the exporter exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if http_get(self.port, "127.0.0.1", "/metrics").status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ServerStartError(f"the exporter did not answer within 30s:\n{self.log.read_text()}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def scrape(self) -> str:
        return http_get(self.port, "127.0.0.1", "/metrics", timeout=30).body

    def stop(self) -> None:
        end_process(self.process)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The clusters, a Caddy, the provisioned fleet with lowered thresholds, the exporter, and Prometheus on the generated rules."""
    root = tmp_path_factory.mktemp("metrics-fleet")
    with ExitStack() as cleanup:
        shared, dedicated, caddy, upstream = cleanup.enter_context(
            running(
                PostgresCluster("shared-admin-secret"), PostgresCluster("dedicated-admin-secret"),
                CaddyServerProcess(caddy=caddy_with_host_metrics()), UpstreamHTTPServer("app"),
            )
        )
        fleet = FleetOnServers(root, {"shared-1": shared, "dedicated-1": dedicated})
        fleet.config["proxy"] = {"admin_url": caddy.admin_url, "server": "fleet", "listen": [caddy.http_listen], "automatic_https": False}
        fleet.config["docker_host"] = {**fleet.config["docker_host"], "url": f"unix://{root / 'no-docker.sock'}"}
        plans_file = fleet.workspace.tenants_dir / "_plans.yaml"
        catalog = yaml.safe_load(plans_file.read_text())
        catalog["plans"]["pro"]["alerts"] = PRO_ALERTS
        catalog["plans"]["pro"]["drills"] = {"every": "1d"}
        catalog["plans"]["enterprise"]["alerts"] = ENTERPRISE_ALERTS
        plans_file.write_text(yaml.safe_dump(catalog, sort_keys=False))
        fleet.provision()
        fleet.write_stack_file()
        _routes(fleet, caddy, upstream)
        secrets = fleet.write_secrets_file()

        rules_dir = root / "rules"
        written = subprocess.run(
            [sys.executable, "-m", "fleet", "alerts", "--out", str(rules_dir), "--check", "--root", str(root), "--stack", STACK, "--secrets", str(secrets)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        )
        assert written.returncode == 0, written.stdout + written.stderr

        exporter = Exporter(root, secrets)
        cleanup.callback(exporter.stop)
        prometheus = cleanup.enter_context(running(PrometheusServerProcess([exporter.target], sorted(rules_dir.iterdir()), interval=1.0)))[0]
        yield fleet, exporter, prometheus, dedicated, caddy


def _routes(fleet: FleetOnServers, caddy: CaddyServerProcess, upstream: UpstreamHTTPServer) -> None:
    """The fleet server and every tenant's routes, as `fleet up` makes them; per-host metrics on, as docs/observability.md says."""
    CaddyServerProvider().create({"admin_url": caddy.admin_url, "server": "fleet", "listen": [caddy.http_listen], "automatic_https": False, "not_found_body": "tenant not found"})
    _set_per_host_metrics(caddy)
    nothing_listens = f"127.0.0.1:{free_port()}"
    for entry in fleet.inventory().select():
        hosts = {"backend": [entry.api_hostname], "frontend": list(entry.frontend_hostnames)}
        for role in derive.APP_ROLES:
            broken = entry.name == "gurupi" and role == "backend"
            CaddyRouteProvider().create(
                {
                    "admin_url": caddy.admin_url, "server": "fleet", "route_id": derive.route_id(entry.spec, role), "hosts": hosts[role],
                    "upstreams": [nothing_listens if broken else upstream.address], "maintenance": not entry.active,
                }
            )


def _set_per_host_metrics(caddy: CaddyServerProcess, attempts: int = 5) -> None:
    """POST `apps.http.metrics.per_host`, then read it back. Caddy reloads its HTTP app for this, and on a loaded
    machine it has been seen to close the admin connection without an answer (CI, two suites at once): then
    the change is checked in the live config and posted again if it didn't land."""
    for attempt in range(attempts):
        try:
            caddy.admin("POST", "/config/apps/http/metrics", {"per_host": True})
        except (http.client.RemoteDisconnected, ConnectionResetError):
            time.sleep(0.5 * (attempt + 1))
        try:
            if (caddy.config("apps/http/metrics") or {}).get("per_host") is True:
                return
        except (http.client.RemoteDisconnected, ConnectionResetError):
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError(f"Caddy did not take apps.http.metrics.per_host after {attempts} attempts")


def _wait_for(what: str, check, prometheus: PrometheusServerProcess, timeout: float = FIRING_WITHIN):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f}s; alerts now: {prometheus.alerts()}")
        time.sleep(0.5)


def _firing(prometheus: PrometheusServerProcess, alert: str, tenant: str) -> list[dict]:
    return [
        item for item in prometheus.alerts()
        if item["labels"].get("alertname") == alert and item["labels"].get("tenant") == tenant and item["state"] == "firing"
    ]


def _listed(prometheus: PrometheusServerProcess, alert: str, tenant: str) -> list[dict]:
    """Pending or firing: anything but inactive."""
    return [item for item in prometheus.alerts() if item["labels"].get("alertname") == alert and item["labels"].get("tenant") == tenant]


def test_a_tenant_past_its_plans_thresholds_fires_while_its_neighbour_stays_inactive(stack):
    fleet, exporter, prometheus, _dedicated, _caddy = stack
    inventory = fleet.inventory()
    now = utc_now()
    # real backups: gurupi's newest is three hours old (pro allows one), santarita's is fresh
    for tenant, taken in (("gurupi", now - timedelta(hours=3)), ("santarita", now - timedelta(minutes=1))):
        result = backups.backup_one(backups.backup_target(inventory, tenant), inventory.backups_dir, clock=clock_at(taken))
        assert result.ok, result.error
    # real restore drills of those backups: gurupi's passed two days ago (pro drills daily), santarita's just now
    for tenant, started in (("gurupi", now - timedelta(days=2)), ("santarita", now)):
        drilled = drills.run_drill(inventory, tenant, clock=clock_at(started))
        assert drilled.ok and drilled.scratch_dropped, drilled.problems

    gurupi, santarita = inventory.tenant("gurupi"), inventory.tenant("santarita")
    cluster = fleet.clusters["shared-1"]
    sessions = []
    try:
        # half of gurupi's limit of 10 in open sessions of its own role (pro alerts at 50 %); santarita: one session
        for _ in range(gurupi.connection_limit // 2):
            sessions.append(cluster.connect(gurupi.database, user=gurupi.role, password=fleet.passwords["gurupi"]))
        sessions.append(cluster.connect(santarita.database, user=santarita.role, password=fleet.passwords["santarita"]))

        text = exporter.scrape()
        assert 'tenant_fleet_database_connections{tenant="gurupi"} 5.0' in text
        assert 'tenant_fleet_database_connection_limit{tenant="gurupi"} 10.0' in text
        assert 'tenant_fleet_database_connections{tenant="santarita"} 1.0' in text
        assert 'tenant_fleet_backup_files{tenant="gurupi"} 1.0' in text
        assert 'tenant_fleet_database_transactions_total{outcome="commit",tenant="gurupi"}' in text
        assert 'tenant_fleet_source_up{key="default",source="docker"} 0.0' in text  # no Docker here: absent, not faked
        assert [line for line in text.splitlines() if line.startswith("tenant_fleet_containers_")] == []  # no CPU or memory made up
        assert 'tenant_fleet_drills_passed{tenant="gurupi"} 1.0' in text and 'tenant_fleet_drill_duration_seconds{tenant="santarita"}' in text

        firing = _wait_for("gurupi's connection alert firing", lambda: _firing(prometheus, "TenantConnectionsNearLimit", "gurupi"), prometheus)
        alert = firing[0]
        assert alert["labels"]["plan"] == "pro"
        assert alert["annotations"]["summary"] == "Tenant gurupi: database connections at 50% of its limit (pro alerts at 50%)"
        backup_alert = _wait_for("gurupi's backup alert firing", lambda: _firing(prometheus, "TenantBackupTooOld", "gurupi"), prometheus)[0]
        assert backup_alert["labels"]["plan"] == "pro" and "Tenant gurupi" in backup_alert["annotations"]["summary"]
        drill_alert = _wait_for("gurupi's drill alert firing", lambda: _firing(prometheus, "TenantRestoreDrillTooOld", "gurupi"), prometheus)[0]
        assert drill_alert["annotations"]["summary"] == "Tenant gurupi: no passed restore drill in the last 1d, or none at all"

        # `fleet status` flags by the same plan thresholds
        rows = {row.tenant: row for row in status.fleet_status(fleet.inventory())[0]}
        assert "connections 5/10 (50%)" in rows["gurupi"].flags and "backup 3h old" in rows["gurupi"].flags
        assert "restore drill 2d old (plan: every 1d)" in rows["gurupi"].flags
        assert rows["santarita"].flags == []

        # the neighbour's rules were evaluated on the same scrapes, and stay inactive
        time.sleep(3)
        assert _listed(prometheus, "TenantConnectionsNearLimit", "santarita") == []
        assert _listed(prometheus, "TenantBackupTooOld", "santarita") == []
        assert _listed(prometheus, "TenantRestoreDrillTooOld", "santarita") == []
        states = {rule["name"]: rule["state"] for group in prometheus.api("rules")["groups"] if group["name"] == "tenant-fleet-plan-pro" for rule in group["rules"]}
        assert states["TenantConnectionsNearLimit"] == "firing"
        # Prometheus's own view of the series it scraped
        connections = {item["metric"]["tenant"]: float(item["value"][1]) for item in prometheus.query("tenant_fleet_database_connections")}
        assert connections["gurupi"] == 5 and connections["santarita"] == 1
    finally:
        for session in sessions:
            session.close()


def test_http_errors_per_tenant_host_fire_for_that_tenant_only(stack):
    fleet, exporter, prometheus, _dedicated, caddy = stack
    inventory = fleet.inventory()
    gurupi, santarita = inventory.tenant("gurupi").api_hostname, inventory.tenant("santarita").api_hostname
    assert caddy.get(gurupi).status == 502 and caddy.get(santarita).status == 200
    # increase() counts from the first sample Prometheus has: let it see both series before the burst
    _wait_for("the first HTTP series scraped", lambda: len(prometheus.query('tenant_fleet_http_requests_total{tenant=~"gurupi|santarita"}')) == 2, prometheus)
    for _ in range(10):
        assert caddy.get(gurupi).status == 502
        assert caddy.get(santarita).status == 200
    text = exporter.scrape()
    assert f'tenant_fleet_http_errors_total{{host="{gurupi}",tenant="gurupi"}} 11.0' in text
    assert f'tenant_fleet_http_requests_total{{host="{santarita}",tenant="santarita"}} 11.0' in text
    assert f'tenant_fleet_http_errors_total{{host="{santarita}",tenant="santarita"}} 0.0' in text
    assert f'tenant_fleet_http_request_duration_seconds_count{{host="{santarita}",tenant="santarita"}} 11.0' in text
    assert 'source="caddy_per_host"} 1.0' in text
    firing = _wait_for("gurupi's HTTP error alert firing", lambda: _firing(prometheus, "TenantHTTPErrors", "gurupi"), prometheus)[0]
    assert firing["labels"]["plan"] == "pro" and firing["annotations"]["summary"].startswith("Tenant gurupi: ")
    assert _listed(prometheus, "TenantHTTPErrors", "santarita") == []


def test_an_unreachable_database_stays_in_the_output_and_its_down_alert_fires(stack):
    fleet, exporter, prometheus, dedicated, _caddy = stack
    assert 'tenant_fleet_database_up{tenant="pirapora"} 1.0' in exporter.scrape()
    dedicated.stop()
    text = exporter.scrape()
    assert 'tenant_fleet_database_up{tenant="pirapora"} 0.0' in text
    assert 'tenant_fleet_tenant_info{app_version=' in text and 'tenant="pirapora"} 1.0' in text
    assert 'tenant_fleet_source_up{key="dedicated-1",source="postgres"} 0.0' in text
    assert 'tenant_fleet_database_up{tenant="gurupi"} 1.0' in text  # the other server's tenants are still read
    firing = _wait_for("pirapora's down alert firing", lambda: _firing(prometheus, "TenantDatabaseDown", "pirapora"), prometheus)[0]
    assert firing["labels"]["plan"] == "enterprise" and firing["annotations"]["summary"].startswith("Tenant pirapora:")
    assert _listed(prometheus, "TenantDatabaseDown", "gurupi") == []


def test_once_prints_one_scrape(stack):
    fleet, _exporter, _prometheus, _dedicated, _caddy = stack
    result = subprocess.run(
        [sys.executable, "-m", "fleet", "metrics", "--once", "--root", str(fleet.root), "--stack", STACK, "--secrets", str(fleet.root / "secrets.json")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert 'tenant_fleet_database_size_bytes{tenant="santarita"}' in result.stdout
    assert "note: docker default absent" in result.stderr
