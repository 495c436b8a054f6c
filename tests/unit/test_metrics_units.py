"""The exporter's pure parts: series names and labels by Prometheus conventions, an unreachable tenant kept in
the output, absent sources named, and Caddy's per-host histogram folded into per-tenant figures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from fleet.ops.metrics import (
    DatabaseActivity,
    HostTraffic,
    Snapshot,
    SourceState,
    TenantFigures,
    families,
    traffic_per_host,
)
from fleet.ops.status import TenantStatus


class FixedSnapshot(Collector):
    """A collector that serves one snapshot (the exporter's series without reading any source)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self):
        return families(self.snapshot)


def render(snapshot: Snapshot) -> str:
    """The Prometheus text of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FixedSnapshot(snapshot))
    return generate_latest(registry).decode()


def _snapshot() -> Snapshot:
    healthy = TenantFigures(
        TenantStatus("gurupi", "pro", "active", "shared-1", "tenant_gurupi", size_bytes=8_000_000, connections=3, connection_limit=10, planned_limit=10),
        "shared-1", "v2.4.0",
        activity=DatabaseActivity(commits=120, rollbacks=4, deadlocks=1, blocks_hit=90, blocks_read=10, longest_query_seconds=2.5),
        backup_taken_at=1_700_000_000.0, backup_age_seconds=3600.0, backup_files=2,
        drills_passed=3, drill_started_at=1_699_990_000.0, drill_age_seconds=13_600.0, drill_seconds=4.25,
        traffic={"api-gurupi.example.com": HostTraffic(requests=10, errors=2, buckets={0.1: 8, 1.0: 10, float("inf"): 10}, seconds=1.5)},
    )
    down = TenantFigures(
        TenantStatus("pirapora", "basic", "active", "dedicated-1", "tenant_pirapora", planned_limit=5, error="server dedicated-1: connection refused"),
        "dedicated-1", "v2.4.0",
    )
    sources = [SourceState("postgres", "shared-1", True), SourceState("postgres", "dedicated-1", False, "connection refused"), SourceState("docker", "default", False, "no Docker")]
    return Snapshot([healthy, down], sources, 0.01)


def test_every_per_tenant_series_has_a_tenant_label_and_conventional_names():
    parsed = {family.name: family for family in text_string_to_metric_families(render(_snapshot()))}
    per_tenant = [family for name, family in parsed.items() if name not in ("tenant_fleet_source_up", "tenant_fleet_scrape_duration_seconds")]
    assert per_tenant
    for family in per_tenant:
        assert family.name.startswith("tenant_fleet_")
        for sample in family.samples:
            assert sample.labels.get("tenant") in ("gurupi", "pirapora"), sample
    assert parsed["tenant_fleet_database_transactions"].type == "counter"
    assert parsed["tenant_fleet_database_deadlocks"].type == "counter"
    assert parsed["tenant_fleet_http_request_duration_seconds"].type == "histogram"
    assert parsed["tenant_fleet_tenant_info"].type == "gauge"  # an info series: value 1, facts in labels


def test_values_and_an_unreachable_tenant_stays_in_the_output():
    text = render(_snapshot())
    assert 'tenant_fleet_database_up{tenant="gurupi"} 1.0' in text
    assert 'tenant_fleet_database_up{tenant="pirapora"} 0.0' in text
    assert 'tenant_fleet_tenant_info{app_version="v2.4.0",plan="basic",server="dedicated-1",status="active",tenant="pirapora"} 1.0' in text
    assert 'tenant_fleet_database_size_bytes{tenant="gurupi"} 8e+06' in text
    assert 'tenant_fleet_database_connections{tenant="gurupi"} 3.0' in text
    assert 'tenant_fleet_database_connection_limit{tenant="gurupi"} 10.0' in text
    assert 'tenant_fleet_database_transactions_total{outcome="commit",tenant="gurupi"} 120.0' in text
    assert 'tenant_fleet_database_transactions_total{outcome="rollback",tenant="gurupi"} 4.0' in text
    assert 'tenant_fleet_database_deadlocks_total{tenant="gurupi"} 1.0' in text
    assert 'tenant_fleet_database_cache_hit_ratio{tenant="gurupi"} 0.9' in text
    assert 'tenant_fleet_database_longest_query_seconds{tenant="gurupi"} 2.5' in text
    assert 'tenant_fleet_backup_age_seconds{tenant="gurupi"} 3600.0' in text
    assert 'tenant_fleet_backup_files{tenant="pirapora"} 0.0' in text
    assert 'tenant_fleet_http_errors_total{host="api-gurupi.example.com",tenant="gurupi"} 2.0' in text
    assert 'tenant_fleet_http_request_duration_seconds_bucket{host="api-gurupi.example.com",le="0.1",tenant="gurupi"} 8.0' in text
    assert 'tenant_fleet_drills_passed{tenant="gurupi"} 3.0' in text
    assert 'tenant_fleet_drill_age_seconds{tenant="gurupi"} 13600.0' in text
    assert 'tenant_fleet_drill_last_success_timestamp_seconds{tenant="gurupi"} 1.69999e+09' in text
    assert 'tenant_fleet_drill_duration_seconds{tenant="gurupi"} 4.25' in text
    # never drilled: counted as none passed, with no age made up
    assert 'tenant_fleet_drills_passed{tenant="pirapora"} 0.0' in text
    assert 'tenant_fleet_drill_age_seconds{tenant="pirapora"}' not in text
    # no made-up figures for the tenant that could not be read
    assert 'tenant_fleet_database_size_bytes{tenant="pirapora"}' not in text
    assert 'tenant_fleet_database_connections{tenant="pirapora"}' not in text
    # absent sources are named
    assert 'tenant_fleet_source_up{key="default",source="docker"} 0.0' in text
    assert 'tenant_fleet_source_up{key="dedicated-1",source="postgres"} 0.0' in text


CADDY_PER_HOST = """\
# TYPE caddy_http_request_duration_seconds histogram
caddy_http_request_duration_seconds_bucket{code="200",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet",le="0.1"} 7
caddy_http_request_duration_seconds_bucket{code="200",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet",le="+Inf"} 8
caddy_http_request_duration_seconds_sum{code="200",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet"} 0.9
caddy_http_request_duration_seconds_count{code="200",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet"} 8
caddy_http_request_duration_seconds_bucket{code="502",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet",le="0.1"} 1
caddy_http_request_duration_seconds_bucket{code="502",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet",le="+Inf"} 2
caddy_http_request_duration_seconds_sum{code="502",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet"} 0.3
caddy_http_request_duration_seconds_count{code="502",handler="subroute",host="api-gurupi.example.com",method="GET",server="fleet"} 2
caddy_http_request_duration_seconds_count{code="200",handler="reverse_proxy",host="api-gurupi.example.com",method="GET",server="fleet"} 7
caddy_http_request_duration_seconds_count{code="200",handler="static_response",host="App-Gurupi.Example.com",method="GET",server="fleet"} 3
"""

CADDY_2_6 = """\
# TYPE caddy_http_request_duration_seconds histogram
caddy_http_request_duration_seconds_count{code="200",handler="static_response",method="GET",server="s"} 3
caddy_http_request_duration_seconds_sum{code="200",handler="static_response",method="GET",server="s"} 9.2e-05
"""


def test_caddy_per_host_figures_count_each_request_once():
    hosts = traffic_per_host(CADDY_PER_HOST)
    assert hosts is not None
    api = hosts["api-gurupi.example.com"]
    # the subroute counted 10 (8 + 2), the reverse_proxy inside it 7: the outermost count, not 17
    assert (api.requests, api.errors, api.seconds) == (10, 2, 1.2)
    assert api.buckets == {0.1: 8, float("inf"): 10}
    assert hosts["app-gurupi.example.com"].requests == 3


def test_caddy_without_host_labels_is_absent_not_zero():
    assert traffic_per_host(CADDY_2_6) is None
    assert traffic_per_host("") is None


def test_the_verb_asks_for_listen_or_once_and_checks_the_address(capsys):
    from fleet.cli.main import main

    assert main(["metrics"]) == 2
    assert "give --listen HOST:PORT to serve the metrics, or --once" in capsys.readouterr().err
    assert main(["metrics", "--listen", "9187"]) == 2
    assert "--listen '9187': expected HOST:PORT" in capsys.readouterr().err


def test_drill_figures_come_from_the_newest_passed_drill_in_the_log(tmp_path):
    import json
    from datetime import datetime, timezone

    from fleet.ops import drills
    from fleet.ops.metrics import read_drill_figures

    log = drills.drill_log_path(tmp_path, "gurupi")
    log.parent.mkdir(parents=True)
    lines = [
        {"tenant": "gurupi", "ok": True, "started_at": "2026-11-20T03:00:00+00:00", "seconds": 12.5},
        {"tenant": "gurupi", "ok": True, "started_at": "2026-11-27T03:00:00+00:00", "seconds": 9.75},
        {"tenant": "gurupi", "ok": False, "started_at": "2026-11-29T03:00:00+00:00", "seconds": 1.0},  # failed: not a proof
        # edited by hand: no time, an unreadable time, "ok" that is not true: none of them is a passed drill
        {"tenant": "gurupi", "ok": True, "seconds": 1.0},
        {"tenant": "gurupi", "ok": True, "started_at": "yesterday", "seconds": 1.0},
        {"tenant": "gurupi", "ok": "yes", "started_at": "2026-11-29T04:00:00+00:00", "seconds": 1.0},
    ]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    now = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)
    figures = TenantFigures(TenantStatus("gurupi", "pro", "active", "shared-1", "tenant_gurupi"), "shared-1", "v1")
    read_drill_figures(figures, tmp_path, "gurupi", now)
    assert figures.drills_passed == 2
    assert figures.drill_age_seconds == 3 * 86400 and figures.drill_seconds == 9.75
    assert figures.drill_started_at == datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc).timestamp()

    never = TenantFigures(TenantStatus("santarita", "pro", "active", "shared-1", "tenant_santarita"), "shared-1", "v1")
    read_drill_figures(never, tmp_path, "santarita", now)
    assert (never.drills_passed, never.drill_age_seconds) == (0, None)


def test_a_drill_time_without_zone_is_read_as_utc_in_the_metrics_and_in_status(tmp_path):
    import json
    from datetime import datetime, timezone

    from fleet.ops import drills
    from fleet.ops.metrics import read_drill_figures

    log = drills.drill_log_path(tmp_path, "gurupi")
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"tenant": "gurupi", "ok": True, "started_at": "2026-11-29T03:00:00", "seconds": "9"}) + "\n")
    now = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)
    figures = TenantFigures(TenantStatus("gurupi", "pro", "active", "shared-1", "tenant_gurupi"), "shared-1", "v1")
    read_drill_figures(figures, tmp_path, "gurupi", now)
    assert (figures.drills_passed, figures.drill_age_seconds, figures.drill_seconds) == (1, 86400.0, 0.0)
    assert drills.drill_age_days(drills.last_good_drill(tmp_path, "gurupi"), now) == 1.0
