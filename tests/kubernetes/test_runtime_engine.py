"""Tenants' apps on a real cluster through the real engine, the official Kubernetes provider and a real Caddy.

Two tenants on plan `small` (one named service `web` of the locally built app image) are declared with the fleet's
own components, KubernetesApp (namespace, quota, limit range, isolation, env Secret, Deployment, Service, ReadyPods)
and TenantRoutes (CaddyRoute). Their databases are not part of this stack: the PostgreSQL and random plugins can't
run here, so the env's DATABASE_URL and secrets are fixed strings. Nothing else is replaced: the pods run under the
kubelet, Caddy dials their IPs over the cni0 bridge (`routing: pods`), the tenants' NetworkPolicies are enforced by the
fixture's kube-router, and every check reads the live cluster or Caddy, or connects from inside the pods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.app_env import service_envs
from components.k8s.app import KubernetesApp, KubernetesAppArgs
from components.k8s.cluster import cluster_access
from components.proxy import TenantRoutes, TenantRoutesArgs, proxy_server
from fleet.bench.servers import free_port
from fleet.engine import driver
from fleet.model import derive
from fleet.model.spec import Environment, Plan, TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost
from tests.support.dynamic import outs_of
from tests.support.kube import POD_CIDR, ApiError, KubeCluster, pod_http_get
from tests.support.pod_network import connect_from_pod

APP_PORT = 8080
SIZES = {"small": {"cpu": 0.1, "memory_mb": 48, "replicas": 1}, "bigger": {"cpu": 0.15, "memory_mb": 64, "replicas": 2}}
TENANTS = ("alpha", "beta")


def plan(image: str, name: str) -> Plan:
    web = {**SIZES[name], "image": image, "port": APP_PORT, "health_path": "/health", "routes": ["app-", "api-", "domains", "api_domains"]}
    return Plan.model_validate({"services": {"web": web}, "user_limit": 5, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7})


def environment(kube_cluster: KubeCluster, caddy, port: int) -> Environment:
    return Environment.model_validate(
        {
            "base_domain": "fleet.localhost",
            "servers": {"shared-1": {"host": "127.0.0.1", "max_connections": 100, "sslmode": "disable"}},
            "docker_host": {"memory_mb": 1024, "cpus": 1},
            "images": {},
            "proxy": {"admin_url": caddy.admin_url, "server": "fleet", "listen": [f"127.0.0.1:{port}"], "automatic_https": False},
            "kubernetes_hosts": {
                "k8s-1": {
                    "kubeconfig": str(kube_cluster.kubeconfig),
                    "cpus": 2,
                    "memory_mb": 2048,
                    "routing": "pods",
                    "image_pull_policy": "Never",
                    "proxy_sources": ["10.244.0.1/32"],
                }
            },
        }
    )


class RuntimeStack:
    """The two tenants' apps and routes as one inline program; `specs` says each tenant's plan and status."""

    def __init__(self, kube_cluster: KubeCluster, caddy, backend: Path):
        self.cluster = kube_cluster
        self.caddy = caddy
        self.port = free_port()
        self.environment = environment(kube_cluster, caddy, self.port)
        self.backend = backend
        self.specs = {name: {"plan": "small", "status": "active"} for name in TENANTS}

    def tenant(self, name: str) -> TenantSpec:
        spec = self.specs[name]
        return TenantSpec.model_validate(
            {"name": name, "display_name": name.title(), "plan": spec["plan"], "status": spec["status"], "database": {"server": "shared-1"}, "app": {"host": "k8s-1"}}
        )

    def program(self) -> None:
        environment = self.environment
        host: KubernetesHost = environment.kubernetes_hosts["k8s-1"]
        access = cluster_access("k8s-1", host)
        server = proxy_server(environment)
        for name in TENANTS:
            tenant = self.tenant(name)
            tenant_plan = plan(self.cluster.app_image, tenant.plan)
            facts = {**derive.static_env_facts(tenant, tenant_plan, environment), "db.url": f"postgresql://{derive.role_name(tenant)}:pw@127.0.0.1:5432/x"}
            secrets = {"backend": {"DATABASE_URL": facts["db.url"], "JWT_SECRET": "j" * 64, "JWT_REFRESH_SECRET": "r" * 64}, "frontend": {}}
            envs = service_envs(tenant, tenant_plan, environment, facts, secrets)
            app = KubernetesApp(
                derive.names(tenant).kube_runtime_component,
                KubernetesAppArgs(tenant, tenant_plan, environment, host, access, envs, jobs_env=envs["web"].lines()),
            )
            TenantRoutes(derive.names(tenant).proxy_component, TenantRoutesArgs(tenant, tenant_plan, environment, dict(app.upstreams), server))
            pulumi.export(f"{name}_upstreams", app.upstreams["web"])

    def stack(self):
        return driver.stack_for("k8s-runtime", self.program, backend_dir=self.backend)

    def run(self, op: str, **options) -> dict[str, Any]:
        return driver.run(op, self.stack(), on_output=None, **options)

    def get(self, host: str):
        return self.caddy.get(host, port=self.port)

    def pods(self, tenant: str) -> list[dict[str, Any]]:
        return [pod for pod in self.cluster.api.pods(f"tenant-{tenant}", "tenant=" + tenant + ",component=web") if not pod["metadata"].get("deletionTimestamp")]


@pytest.fixture(scope="module")
def runtime(kube_cluster: KubeCluster, caddy_process, tmp_path_factory) -> Iterator[RuntimeStack]:
    try:
        driver.check_engine()
    except driver.EngineMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    stack = RuntimeStack(kube_cluster, caddy_process, tmp_path_factory.mktemp("state"))
    yield stack
    try:
        stack.run("destroy")
    finally:
        for name in TENANTS:
            kube_cluster.api.delete(f"/api/v1/namespaces/tenant-{name}")


def test_ready_pods_reads_the_ready_pods_of_a_selector_through_the_api_server(kube_cluster: KubeCluster):
    """The provider's own read against the real API server, with the kubeconfig as a file and as text."""
    from components.providers.kube_pods import ReadyPodsProvider

    api = kube_cluster.api
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ready-pods"}})
    try:
        api.wait_for_service_account("ready-pods")
        labels = {"tenant": "probe", "component": "web"}
        limits = {"cpu": "50m", "memory": "32Mi"}
        api.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "ready-pods"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "automountServiceAccountToken": False,
                            "containers": [
                                {
                                    "name": "web",
                                    "image": kube_cluster.app_image,
                                    "imagePullPolicy": "Never",
                                    "env": [{"name": "PORT", "value": str(APP_PORT)}],
                                    "resources": {"limits": limits, "requests": limits},
                                    "readinessProbe": {"httpGet": {"path": "/health", "port": APP_PORT}, "periodSeconds": 1},
                                }
                            ],
                        },
                    },
                },
            }
        )
        pods = api.wait_for_running_pods("ready-pods", "tenant=probe,component=web", 2)
        expected = sorted(f"{pod['status']['podIP']}:{APP_PORT}" for pod in pods)
        props = {"resource_name": "probe-web-pods", "namespace": "ready-pods", "selector": labels, "port": APP_PORT, "revision": 1, "expected": 2}
        for kubeconfig in (str(kube_cluster.kubeconfig), kube_cluster.kubeconfig_text()):
            created = ReadyPodsProvider().create({**props, "kubeconfig": kubeconfig})
            assert outs_of(created)["addresses"] == expected
            assert ReadyPodsProvider().diff(created.id, outs_of(created), {**props, "kubeconfig": kubeconfig}).changes is False
        # A pod going away is a change the next diff sees (the route would follow it).
        api.delete(f"/api/v1/namespaces/ready-pods/pods/{pods[0]['metadata']['name']}")
        assert ReadyPodsProvider().diff(created.id, outs_of(created), {**props, "kubeconfig": kubeconfig}).changes is True
    finally:
        api.delete("/api/v1/namespaces/ready-pods")


def answer(runtime: RuntimeStack, tenant: str):
    return runtime.get(f"app-{tenant}.fleet.localhost")


def test_each_tenants_pods_run_with_the_plans_limits_and_answer_through_caddy(runtime: RuntimeStack):
    result = runtime.run("up")
    assert result["changes"].get("create", 0) > 0, result
    for name in TENANTS:
        (pod,) = runtime.pods(name)
        assert pod["status"]["phase"] == "Running"
        (container,) = pod["spec"]["containers"]
        assert container["resources"]["limits"] == {"cpu": "100m", "memory": "48Mi"}
        assert pod["status"]["qosClass"] == "Guaranteed"
        cgroups = runtime.cluster.pod_cgroup(pod, "web")
        assert int((cgroups["memory"] / "memory.limit_in_bytes").read_text()) == 48 << 20
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        # Caddy dials the pod's IP on the bridge: the route's upstream is the ready pod.
        assert result["outputs"][f"{name}_upstreams"] == [f"{pod['status']['podIP']}:{APP_PORT}"]
        reply = answer(runtime, name)
        assert reply.status == 200, reply.body
        assert f'"tenant":"{name}"' in reply.body.replace(" ", "")
        assert answer(runtime, name).status == 200 and runtime.get(f"api-{name}.fleet.localhost").status == 200


def test_a_second_preview_shows_no_changes(runtime: RuntimeStack):
    result = runtime.run("preview")
    assert set(result["changes"]) == {"same"}, result


def test_a_plan_change_rolls_only_that_tenants_pods_while_the_neighbour_keeps_serving(runtime: RuntimeStack):
    beta_before = {pod["metadata"]["uid"] for pod in runtime.pods("beta")}
    alpha_before = {pod["metadata"]["uid"] for pod in runtime.pods("alpha")}
    failures: list[Any] = []
    stop = threading.Event()

    def watch_beta() -> None:
        while not stop.is_set():
            reply = answer(runtime, "beta")
            if reply.status != 200:
                failures.append(reply.status)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_beta, daemon=True)
    watcher.start()
    try:
        runtime.specs["alpha"]["plan"] = "bigger"
        runtime.run("up")
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert failures == [], f"beta answered {failures} while alpha rolled"
    assert {pod["metadata"]["uid"] for pod in runtime.pods("beta")} == beta_before  # untouched
    alpha_after = runtime.pods("alpha")
    assert len(alpha_after) == 2 and not ({pod["metadata"]["uid"] for pod in alpha_after} & alpha_before)
    for pod in alpha_after:
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "150m", "memory": "64Mi"}
    assert answer(runtime, "alpha").status == 200


def test_a_pod_asking_for_more_than_the_namespace_quota_is_refused(runtime: RuntimeStack):
    # beta's quota (plan small): (1 replica + 1 surge) x 48 Mi; its running pod holds 48 Mi. Two containers within the
    # LimitRange's 48 Mi each, 96 Mi together: more than the quota has left.
    limits = {"cpu": "100m", "memory": "48Mi"}
    container = {"image": runtime.cluster.app_image, "imagePullPolicy": "Never", "resources": {"limits": limits, "requests": limits}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy", "namespace": "tenant-beta"},
        "spec": {"containers": [{**container, "name": "one"}, {**container, "name": "two"}]},
    }
    with pytest.raises(ApiError) as refused:
        runtime.cluster.api.create(pod)
    assert refused.value.status == 403
    assert "exceeded quota: tenant-quota" in str(refused.value), refused.value


def test_suspend_scales_to_zero_and_shows_the_maintenance_page(runtime: RuntimeStack):
    runtime.specs["alpha"]["status"] = "suspended"
    runtime.run("up")
    deployment = runtime.cluster.api.get("/apis/apps/v1/namespaces/tenant-alpha/deployments/web")
    assert deployment["spec"]["replicas"] == 0
    runtime.cluster.api.wait_for("alpha's pods to be gone", lambda: not runtime.pods("alpha"), timeout=60)
    reply = answer(runtime, "alpha")
    assert reply.status == 503, reply.body
    assert answer(runtime, "beta").status == 200
    # Resume: the pods come back and the route follows them.
    runtime.specs["alpha"]["status"] = "active"
    runtime.run("up")
    assert answer(runtime, "alpha").status == 200
    assert set(runtime.run("preview")["changes"]) == {"same"}


def probe_pod(name: str, namespace: str, image: str, tenant: str) -> dict[str, Any]:
    """A pod of the app image that no tenant's selector picks (no `component` label): a client, and for the neighbour a server."""
    limits = {"cpu": "50m", "memory": "32Mi"}  # within the small plan's LimitRange, and what beta's quota has left
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"role": "netpol-probe"}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534},
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "env": [{"name": "PORT", "value": str(APP_PORT)}, {"name": "TENANT", "value": tenant}],
                    "resources": {"limits": limits, "requests": limits},
                    "readinessProbe": {"httpGet": {"path": "/health", "port": APP_PORT}, "periodSeconds": 1},
                }
            ],
        },
    }


def test_network_policy_refuses_other_tenants_and_admits_the_namespace_and_the_proxy(runtime: RuntimeStack):
    """Each tenant's NetworkPolicy, enforced by the fixture's kube-router, seen from inside the pods' network namespaces.

    beta's web pod is reached from alpha's pod (refused), from a second pod in beta's namespace and from the host's bridge
    address, the proxy's source (both answered). The other way, beta's pod to alpha's, is refused too (alpha has its own
    policy), while both reach a pod in a namespace without a policy, whose ingress is open: the policy isolates per namespace,
    it isn't a blanket block, and egress stays open.
    """
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    assert bridge_nf.exists() and bridge_nf.read_text().strip() == "1", (
        f"{bridge_nf} is not 1: traffic between pods on the cni0 bridge bypasses iptables, where kube-router enforces NetworkPolicy"
    )
    api = runtime.cluster.api
    if any(spec["status"] != "active" for spec in runtime.specs.values()) or not all(runtime.pods(name) for name in TENANTS):
        for spec in runtime.specs.values():
            spec["status"] = "active"
        runtime.run("up")
    alpha, beta = (runtime.pods(name)[0]["status"]["podIP"] for name in TENANTS)
    neighbour_namespace = "netpol-neighbour"
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": neighbour_namespace}})
    try:
        api.wait_for_service_account(neighbour_namespace)
        api.create(probe_pod("beta-probe", "tenant-beta", runtime.cluster.app_image, "beta-probe"))
        api.create(probe_pod("neighbour", neighbour_namespace, runtime.cluster.app_image, "neighbour"))
        (beta_probe,) = api.wait_for_running_pods("tenant-beta", "role=netpol-probe", 1)
        (neighbour,) = api.wait_for_running_pods(neighbour_namespace, "role=netpol-probe", 1)
        beta_probe_ip, neighbour_ip = beta_probe["status"]["podIP"], neighbour["status"]["podIP"]
        # (from, to): "refused", or the tenant whose app must answer.
        expected = {
            ("alpha web", "beta web"): "refused",
            ("beta web", "alpha web"): "refused",
            ("neighbour", "beta web"): "refused",
            ("beta probe", "beta web"): "beta",
            ("alpha web", "neighbour"): "neighbour",
            ("beta web", "neighbour"): "neighbour",
        }
        address = {"alpha web": alpha, "beta web": beta, "beta probe": beta_probe_ip, "neighbour": neighbour_ip}

        def mismatches() -> dict[tuple[str, str], str]:
            wrong = {}
            for (source, target), answerer in expected.items():
                outcome = connect_from_pod(address[source], address[target], APP_PORT, POD_CIDR)
                good = outcome.refused if answerer == "refused" else outcome.answered and f'"tenant":"{answerer}"' in outcome.body.replace(" ", "")
                if not good:
                    wrong[(source, target)] = str(outcome)
            return wrong

        # kube-router rewrites its rules on each pod or policy event: the new pods' addresses land in its sets within seconds.
        deadline = time.monotonic() + 60
        while (wrong := mismatches()) and time.monotonic() < deadline:
            time.sleep(1)
        assert wrong == {}, f"expected {expected}; these differed: {wrong}"
        assert mismatches() == {}  # and it stays so
        # The proxy's source (the host's address on the bridge, proxy_sources 10.244.0.1/32) is admitted: directly, and through Caddy.
        status, body = pod_http_get(beta, APP_PORT, "/")
        assert status == 200 and '"tenant":"beta"' in body.replace(" ", ""), body
        assert answer(runtime, "beta").status == 200 and answer(runtime, "alpha").status == 200
    finally:
        api.delete("/api/v1/namespaces/tenant-beta/pods/beta-probe")
        api.delete(f"/api/v1/namespaces/{neighbour_namespace}")


def test_ready_pods_that_cannot_reach_the_api_server_fail_the_up_naming_the_resource(kube_cluster: KubeCluster, tmp_path: Path):
    """The injected failure of the project's own resource: a kubeconfig whose server nothing listens on."""
    from components.providers.kube_pods import ReadyPods, ReadyPodsArgs
    from fleet.engine.messages import EngineError

    broken = kube_cluster.kubeconfig_text().replace(kube_cluster.server, f"https://127.0.0.1:{free_port()}")

    def program() -> None:
        ReadyPods("broken-web-pods", ReadyPodsArgs(broken, None, "tenant-broken", {"tenant": "broken"}, APP_PORT, 1, 1))

    stack = driver.stack_for("k8s-ready-pods-broken", program, backend_dir=tmp_path / "state")
    with pytest.raises(EngineError) as failed:
        driver.run("up", stack, on_output=None)
    assert "ReadyPods 'broken-web-pods': read pods failed" in str(failed.value) + failed.value.stdout
