"""Moving a tenant's app between a Docker host and a cluster is a diff of that tenant only: the new runtime's objects
are created, the routes switch to them once its pods are ready, the old containers go last, and its data and
generated secrets stay as they are."""

from __future__ import annotations

import pytest

from fleet.model import type_tokens as tokens
from tests.unit.graph import CONTAINER, DATABASE, PASSWORD, ROLE, ROUTE, of_type
from tests.unit.test_kubernetes_runtime import CLUSTER
from tests.unit.test_lifecycle import changes, only

UNTOUCHED = (DATABASE, ROLE, PASSWORD, tokens.PLACEMENT)


@pytest.fixture
def with_cluster(workspace):
    workspace.config["kubernetes_hosts"] = {"k8s-1": dict(CLUSTER)}
    return workspace


def fingerprints(evaluation, tenant, types):
    return sorted((r.type, r.name, repr(r.raw_inputs), r.provider) for r in evaluation.resources if r.tenant == tenant and r.type in types)


def test_docker_to_kubernetes_creates_the_namespace_switches_the_routes_and_removes_the_containers(with_cluster):
    before = with_cluster.evaluate()
    with_cluster.edit("pirapora", app={"host": "k8s-1"})
    after = with_cluster.evaluate()
    found = only("pirapora", changes(before, after))
    created_types = {type_ for type_, _ in found["create"]}
    assert {tokens.KUBE_NAMESPACE, tokens.KUBE_QUOTA, tokens.KUBE_DEPLOYMENT, tokens.KUBE_SERVICE, tokens.KUBE_SECRET, tokens.KUBE_READY_PODS} <= created_types
    assert found["delete"] == {(CONTAINER, c.name) for c in of_type(before, CONTAINER, "pirapora")} | {("docker:index/network:Network", "pirapora-net")}
    # The routes keep their URNs and ids (the same Caddy objects) and only change upstreams: to the ready pods.
    assert {(ROUTE, "pirapora-route-backend"), (ROUTE, "pirapora-route-frontend")} == {key for key in found["update"] if key[0] == ROUTE}
    pods = {r.name: r.urn for r in of_type(after, tokens.KUBE_READY_PODS, "pirapora")}
    for route in of_type(after, ROUTE, "pirapora"):
        service = route.name.rsplit("-", 1)[1]
        assert pods[f"pirapora-{service}-pods"] in route.options["dependencies"], route.name  # switched only once the pods are ready
        assert all(upstream.startswith("10.88.") for upstream in route.raw_inputs["upstreams"])
    # The data, the roles and every generated secret are untouched: same inputs, same provider, same URN.
    assert fingerprints(after, "pirapora", UNTOUCHED) == fingerprints(before, "pirapora", UNTOUCHED)
    assert {r.urn for r in of_type(after, PASSWORD, "pirapora")} == {r.urn for r in of_type(before, PASSWORD, "pirapora")}
    # The pods get the env the containers had.
    env_before = {c.name.rsplit("-", 2)[1]: sorted(c.raw_inputs["envs"]) for c in of_type(before, CONTAINER, "pirapora") if c.name.endswith("-0")}
    secrets = {r.name: r.raw_inputs["stringData"] for r in of_type(after, tokens.KUBE_SECRET, "pirapora")}
    for service, lines in env_before.items():
        assert sorted(f"{key}={value}" for key, value in secrets[f"pirapora-{service}-env"].items()) == lines, service


def test_kubernetes_back_to_docker_is_the_mirror_diff(with_cluster):
    with_cluster.edit("gurupi", app={"host": "k8s-1"})
    before = with_cluster.evaluate()
    with_cluster.edit("gurupi", app={"host": "default"})
    after = with_cluster.evaluate()
    found = only("gurupi", changes(before, after))
    assert {type_ for type_, _ in found["create"]} == {CONTAINER, "docker:index/network:Network"}
    assert all(type_.startswith("kubernetes:") or type_ in (tokens.KUBE_READY_PODS, tokens.KUBERNETES_APP) for type_, _ in found["delete"])
    assert {(tokens.KUBE_NAMESPACE, "gurupi-namespace")} <= found["delete"]
    assert fingerprints(after, "gurupi", UNTOUCHED) == fingerprints(before, "gurupi", UNTOUCHED)
    for route in of_type(after, ROUTE, "gurupi"):
        assert all(upstream.startswith("127.0.0.1:") for upstream in route.raw_inputs["upstreams"]), route.name


def test_the_preview_words_the_move_and_how_the_proxy_reaches_the_cluster(with_cluster):
    from fleet.preview.wording import describe_change
    from tests.unit.test_policies import fleet_of

    base_fleet = fleet_of(with_cluster)
    with_cluster.edit("gurupi", app={"host": "k8s-1"})
    head_fleet = fleet_of(with_cluster)
    words = describe_change(base_fleet.tenant("gurupi"), head_fleet.tenant("gurupi"), base_fleet, head_fleet)
    assert "app moved default → k8s-1 (Kubernetes: Caddy dials its ready pods' IPs; the data stays)" in words


def test_a_rotation_on_a_cluster_replaces_the_env_secrets_and_rolls_the_deployments(with_cluster):
    from fleet.preview import diff

    with_cluster.edit("gurupi", app={"host": "k8s-1"})
    before = with_cluster.evaluate()
    with_cluster.edit("gurupi", rotation=1)
    after = with_cluster.evaluate()
    found = {(c.type, c.name): c for c in diff.compare_resources(before, after) if c.tenant == "gurupi"}
    assert found[(tokens.KUBE_SECRET, "gurupi-backend-env")].op == "replace"
    assert found[(tokens.KUBE_DEPLOYMENT, "gurupi-backend")].op == "update"  # its pods roll onto the new Secret
    assert (tokens.KUBE_NAMESPACE, "gurupi-namespace") not in found
    assert not any(change.tenant != "gurupi" for change in diff.compare_resources(before, after))
