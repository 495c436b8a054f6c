"""Smoke tests of the real cluster: the node, a Deployment of the tenant app image, quotas, and the official provider.

Nothing is mocked: the pods run in containerd under the kubelet, HTTP goes to them over the
cni0 bridge or the API server's pod proxy, limits are read from the cgroups on the host, and
the Pulumi program runs through the real engine with the official Kubernetes provider plugin.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from fleet.engine import driver
from tests.support.kube import KUBE_VERSION, ApiError, KubeAPI, KubeCluster, pod_http_get

APP_PORT = 8080
CPU_LIMIT_MILLI = 200
MEMORY_LIMIT_MIB = 48


def app_deployment(name: str, namespace: str, image: str, *, tenant: str, service: str, replicas: int = 1) -> dict[str, Any]:
    """A Deployment of the tenant app image with Guaranteed CPU/memory limits and an HTTP readiness probe."""
    labels = {"app.kubernetes.io/name": name, "tenant-fleet/tenant": tenant}
    limits = {"cpu": f"{CPU_LIMIT_MILLI}m", "memory": f"{MEMORY_LIMIT_MIB}Mi"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "app",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "env": [
                            {"name": "PORT", "value": str(APP_PORT)},
                            {"name": "TENANT", "value": tenant},
                            {"name": "SERVICE", "value": service},
                        ],
                        "ports": [{"containerPort": APP_PORT}],
                        "resources": {"limits": limits, "requests": limits},
                        "readinessProbe": {"httpGet": {"path": "/health", "port": APP_PORT}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }


def make_namespace(api: KubeAPI, name: str) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    api.wait_for_service_account(name)


@pytest.fixture(scope="module")
def app(kube_cluster: KubeCluster) -> Iterator[dict[str, Any]]:
    """One running pod of localhost/fleet-app in namespace smoke-app (tenant acme, service web)."""
    api = kube_cluster.api
    make_namespace(api, "smoke-app")
    api.create(app_deployment("web", "smoke-app", kube_cluster.app_image, tenant="acme", service="web"))
    (pod,) = api.wait_for_running_pods("smoke-app", "app.kubernetes.io/name=web", 1)
    yield pod
    api.delete("/api/v1/namespaces/smoke-app")


def test_the_node_is_ready_on_loopback_only(kube_cluster: KubeCluster):
    node = kube_cluster.node()
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True", conditions
    assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBE_VERSION}"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    # Pinned to loopback: the node advertises no address it detected by itself.
    assert kube_cluster.advertised_addresses() == {"127.0.0.1", "localhost"}, node["status"].get("addresses")
    assert kube_cluster.api.get("/version")["gitVersion"] == f"v{KUBE_VERSION}"


def test_a_deployment_of_the_app_image_runs_and_answers_http(kube_cluster: KubeCluster, app: dict[str, Any]):
    assert app["status"]["phase"] == "Running"
    assert app["spec"]["nodeName"] == "localhost"
    # Through the API server's pod proxy...
    body = json.loads(kube_cluster.api.pod_proxy_get("smoke-app", app["metadata"]["name"], APP_PORT, "/health"))
    assert body["tenant"] == "acme" and body["service"] == "web" and body["health"] == "true", body
    # ...and straight to the pod's address over the bridge, on any path.
    status, text = pod_http_get(app["status"]["podIP"], APP_PORT, "/some/page")
    assert status == 200
    assert json.loads(text)["path"] == "/some/page"
    # The API server reaches the kubelet on loopback for the container's log.
    log = kube_cluster.api.request("GET", f"/api/v1/namespaces/smoke-app/pods/{app['metadata']['name']}/log", raw=True)
    assert "fleet-app acme/web listening on :8080" in log


def test_the_pod_gets_its_cpu_and_memory_limits_in_its_cgroups(kube_cluster: KubeCluster, app: dict[str, Any]):
    assert app["status"]["qosClass"] == "Guaranteed"
    cgroups = kube_cluster.pod_cgroup(app, "app")
    quota = int((cgroups["cpu"] / "cpu.cfs_quota_us").read_text())
    period = int((cgroups["cpu"] / "cpu.cfs_period_us").read_text())
    assert quota * 1000 // period == CPU_LIMIT_MILLI, (quota, period)
    assert int((cgroups["memory"] / "memory.limit_in_bytes").read_text()) == MEMORY_LIMIT_MIB << 20


def test_a_pod_that_outgrows_its_memory_limit_is_oom_killed(kube_cluster: KubeCluster, app: dict[str, Any]):
    api = kube_cluster.api
    name = app["metadata"]["name"]
    # The kernel kills the process mid-request: the proxy answers with an error, or the connection drops.
    with pytest.raises((ApiError, OSError, http.client.HTTPException)):
        kube_cluster.api.pod_proxy_get("smoke-app", name, APP_PORT, f"/_/alloc?mb={MEMORY_LIMIT_MIB * 2}")

    def oom_killed() -> dict[str, Any] | None:
        (status,) = api.get(f"/api/v1/namespaces/smoke-app/pods/{name}")["status"]["containerStatuses"]
        terminated = status.get("lastState", {}).get("terminated") or {}
        return status if terminated.get("reason") == "OOMKilled" else None

    status = api.wait_for("the app container to be OOMKilled", oom_killed, timeout=60)
    assert status["restartCount"] >= 1
    # The kubelet restarts it, and it serves again.
    api.wait_for_running_pods("smoke-app", "app.kubernetes.io/name=web", 1)


def test_a_pod_asking_more_than_the_namespace_quota_is_refused(kube_cluster: KubeCluster):
    api = kube_cluster.api
    make_namespace(api, "smoke-quota")
    try:
        api.create({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "plan", "namespace": "smoke-quota"},
            "spec": {"hard": {"limits.cpu": "500m", "limits.memory": "128Mi", "pods": "4"}},
        })
        # Admission checks a quota only once the controller has computed its status.
        api.wait_for("the quota's status", lambda: api.get(api.path_of("ResourceQuota", "plan", "smoke-quota")).get("status", {}).get("hard"))

        def pod(name: str, memory: str) -> dict[str, Any]:
            limits = {"cpu": "100m", "memory": memory}
            return {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "smoke-quota"},
                "spec": {"containers": [{"name": "app", "image": kube_cluster.app_image, "imagePullPolicy": "Never", "resources": {"limits": limits, "requests": limits}}]},
            }

        with pytest.raises(ApiError) as refused:
            api.create(pod("too-big", "256Mi"))
        assert refused.value.status == 403
        assert "exceeded quota: plan" in str(refused.value), refused.value
        # A pod within the quota is admitted: the quota refuses by size, not everything.
        api.create(pod("fits", "64Mi"))
        api.wait_for_running_pods("smoke-quota", "", 1)
    finally:
        api.delete("/api/v1/namespaces/smoke-quota")


def kubernetes_program(kubeconfig: str, image: str):
    """An inline program: a provider for the test cluster, a Namespace, and a Deployment the provider waits on until ready."""

    def program() -> None:
        import pulumi_kubernetes as k8s

        provider = k8s.Provider("test-cluster", kubeconfig=kubeconfig)
        options = pulumi.ResourceOptions(provider=provider)
        namespace = k8s.core.v1.Namespace("smoke-engine", metadata={"name": "smoke-engine"}, opts=options)
        labels = {"app.kubernetes.io/name": "api"}
        limits = {"cpu": "100m", "memory": "32Mi"}
        deployment = k8s.apps.v1.Deployment(
            "api",
            metadata={"name": "api", "namespace": namespace.metadata.apply(lambda meta: meta.name)},
            spec={
                "replicas": 2,
                "selector": {"match_labels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automount_service_account_token": False,
                        "termination_grace_period_seconds": 2,
                        "containers": [{
                            "name": "app",
                            "image": image,
                            "image_pull_policy": "Never",
                            "env": [{"name": "TENANT", "value": "engine"}, {"name": "SERVICE", "value": "api"}],
                            "ports": [{"container_port": APP_PORT}],
                            "resources": {"limits": limits, "requests": limits},
                            "readiness_probe": {"http_get": {"path": "/health", "port": APP_PORT}, "period_seconds": 1},
                        }],
                    },
                },
            },
            opts=options,
        )
        pulumi.export("readyReplicas", deployment.status.ready_replicas)

    return program


def test_the_official_provider_deploys_previews_clean_and_destroys(kube_cluster: KubeCluster, tmp_path: Path):
    try:
        driver.check_engine()
    except driver.EngineMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    api = kube_cluster.api
    stack = driver.stack_for("k8s-smoke", kubernetes_program(kube_cluster.kubeconfig_text(), kube_cluster.app_image), backend_dir=tmp_path / "backend")
    try:
        up = driver.run("up", stack)
        assert up["changes"].get("create") == 4, up  # stack, provider, namespace, deployment
        # The provider returned only once the Deployment was ready: both pods are Running now.
        assert up["outputs"]["readyReplicas"] == 2
        assert len(api.wait_for_running_pods("smoke-engine", "app.kubernetes.io/name=api", 2, timeout=5)) == 2

        again = driver.run("preview", stack)
        assert set(again["changes"]) == {"same"}, again
    finally:
        down = driver.run("destroy", stack)
    assert down["changes"].get("delete") == 4, down
    assert not api.exists("/api/v1/namespaces/smoke-engine") or api.get("/api/v1/namespaces/smoke-engine")["status"]["phase"] == "Terminating"
    api.wait_for("namespace smoke-engine to be gone", lambda: not api.exists("/api/v1/namespaces/smoke-engine"), timeout=120)
