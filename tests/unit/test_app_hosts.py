"""Several app hosts under mocks: a tenant runs on the host its file names, the proxy dials that host, capacity is
per host, and moving a tenant's app to another host replaces its containers there and leaves its data alone."""

from __future__ import annotations

import pytest

from fleet.errors import SpecError
from policies import fleet_policies as pack
from tests.unit.graph import CONTAINER, DATABASE, ROLE, ROUTE, of_type
from tests.unit.test_lifecycle import changes, only
from tests.unit.test_policies import fleet_of, run

VPS = {"url": "tcp://10.0.0.2:2376", "memory_mb": 8192, "cpus": 4, "upstream_host": "10.0.0.2", "plans": ["enterprise"]}


@pytest.fixture
def two_hosts(workspace):
    workspace.config["docker_hosts"] = {"vps-2": dict(VPS)}
    return workspace


def test_a_tenant_runs_on_the_host_its_file_names_and_the_proxy_dials_that_host(two_hosts):
    two_hosts.edit("pirapora", app={"host": "vps-2"})
    evaluation = two_hosts.evaluate()
    for container in of_type(evaluation, CONTAINER, "pirapora"):
        assert "::docker-host-vps-2::" in container.provider, container.name
    for container in of_type(evaluation, CONTAINER, "gurupi"):
        assert "::docker-host::" in container.provider, container.name
    routes = {route.name: route.raw_inputs for route in of_type(evaluation, ROUTE, "pirapora")}
    assert all(upstream.startswith("10.0.0.2:") for route in routes.values() for upstream in route["upstreams"])
    gurupi_routes = [route.raw_inputs for route in of_type(evaluation, ROUTE, "gurupi")]
    assert all(upstream.startswith("127.0.0.1:") for route in gurupi_routes for upstream in route["upstreams"])


def test_moving_a_tenants_app_replaces_its_containers_on_the_new_host_and_leaves_its_data(two_hosts):
    before = two_hosts.evaluate()
    two_hosts.edit("pirapora", app={"host": "vps-2"})
    after = two_hosts.evaluate()
    found = only("pirapora", changes(before, after))  # inputs only: the same containers, declared on another provider
    assert found["create"] == found["delete"] == set()
    moved = {c.name: c.provider for c in of_type(after, CONTAINER, "pirapora")}
    assert moved and all("::docker-host-vps-2::" in provider for provider in moved.values())
    assert all("::docker-host::" in c.provider for c in of_type(before, CONTAINER, "pirapora"))
    for type_ in (DATABASE, ROLE):
        assert [r.raw_inputs for r in of_type(after, type_, "pirapora")] == [r.raw_inputs for r in of_type(before, type_, "pirapora")]
        assert [r.provider for r in of_type(after, type_, "pirapora")] == [r.provider for r in of_type(before, type_, "pirapora")]


def test_the_preview_calls_the_move_a_replacement_made_before_the_old_containers_go(two_hosts):
    from fleet.preview import diff

    before = two_hosts.evaluate()
    two_hosts.edit("pirapora", app={"host": "vps-2"})
    after = two_hosts.evaluate()
    replaced = [c for c in diff.compare_resources(before, after) if c.tenant == "pirapora" and c.type == CONTAINER]
    assert replaced and all(c.op == "replace" and "(provider)" in c.replace_keys for c in replaced)


def test_capacity_is_checked_per_host(two_hosts):
    two_hosts.config["docker_hosts"]["vps-2"].update(memory_mb=2048, cpus=1)
    two_hosts.edit("pirapora", app={"host": "vps-2"})
    evaluation = two_hosts.evaluate()
    violations = run(evaluation, fleet_of(two_hosts), pack.DOCKER_HOST_CAPACITY)
    assert {v.resource for v in violations} == {"docker-host-vps-2"} and len(violations) == 2  # memory and CPUs
    assert "docker host docker-host-vps-2: containers need 3072 MB of memory" in violations[0].message
    assert "move tenants to another host (app: {host: ...})" in violations[0].message


def test_a_wrong_host_or_a_plan_the_host_does_not_take_is_named(two_hosts):
    two_hosts.edit("gurupi", app={"host": "vps-9"})
    two_hosts.edit("santarita", app={"host": "vps-2"})  # pro, and vps-2 takes enterprise only
    two_hosts.config["docker_hosts"]["default"] = dict(VPS)
    with pytest.raises(SpecError) as raised:
        two_hosts.evaluate()
    text = str(raised.value)
    assert "docker host keys must be DNS labels other than 'default'" in text
    del two_hosts.config["docker_hosts"]["default"]
    with pytest.raises(SpecError) as raised:
        two_hosts.evaluate()
    text = str(raised.value)
    assert "tenants/gurupi.yaml: tenant gurupi: app.host: unknown app host 'vps-9'; hosts: default, vps-2" in text
    assert "tenants/santarita.yaml: tenant santarita: app.host: app host vps-2 takes plans enterprise, not pro" in text


def test_a_hosts_plan_list_must_name_plans_of_the_catalog(two_hosts):
    two_hosts.config["docker_hosts"]["vps-2"]["plans"] = ["enterprise", "enterprize"]
    with pytest.raises(SpecError) as raised:
        two_hosts.evaluate()
    assert "Pulumi.dev.yaml: fleet:docker_hosts.vps-2.plans: unknown plan(s) enterprize; plans: basic, enterprise, pro" in str(raised.value)


def test_a_new_app_container_takes_traffic_only_once_healthy(two_hosts):
    """Every app container waits for its health check when created, and its tenant's routes take their upstreams from
    it: on a move the routes switch only to healthy containers, and the replaced ones go after that."""
    evaluation = two_hosts.evaluate()
    apps = [c for c in of_type(evaluation, CONTAINER, "pirapora") if c.name.startswith(("pirapora-backend-", "pirapora-frontend-"))]
    assert apps
    for container in apps:
        assert container.raw_inputs["wait"] is True and container.raw_inputs["waitTimeout"] >= 120, container.name
        assert container.raw_inputs["healthcheck"]["tests"][:2] == ["CMD", "wget"]


def test_turning_on_the_health_wait_updates_running_containers_in_place():
    from fleet.preview.diff import REPLACE_RULES

    rule = REPLACE_RULES[CONTAINER]
    assert not rule.forces_replace("wait") and not rule.forces_replace("waitTimeout")
