"""The policies over a fleet with tenants on a cluster: the shipped program passes them, and each Kubernetes rule
fails on the resource or fleet that breaks it (privileged or host-bound pods, unpinned images, missing limits,
quotas beyond the cluster's capacity)."""

from __future__ import annotations

import copy
from typing import Optional

import pytest

from fleet.model import type_tokens as tokens
from policies import fleet_policies as pack
from tests.unit.graph import of_type
from tests.unit.test_kubernetes_runtime import CLUSTER, add_jobs_and_workers
from tests.unit.test_policies import add_tenants, fails, fleet_of, mutated, resource_args, run


@pytest.fixture
def cluster(workspace):
    workspace.config["kubernetes_hosts"] = {"k8s-1": dict(CLUSTER)}
    workspace.edit("gurupi", app={"host": "k8s-1"})
    workspace.edit("pirapora", app={"host": "k8s-1"})
    return workspace


def messages(violations):
    return [violation.message for violation in violations]


def test_every_policy_passes_on_a_fleet_with_tenants_on_a_cluster(cluster):
    add_jobs_and_workers(cluster)
    evaluation = cluster.evaluate()
    assert of_type(evaluation, tokens.KUBE_JOB, "gurupi") and any(r.name == "gurupi-worker-queue" for r in of_type(evaluation, tokens.KUBE_DEPLOYMENT))
    assert of_type(evaluation, tokens.KUBE_DEPLOYMENT, "gurupi")
    assert [v for v in run(evaluation, fleet_of(cluster)) if v.mandatory] == []


def _backend_pod(evaluation):
    deployment = next(r for r in of_type(evaluation, tokens.KUBE_DEPLOYMENT, "gurupi") if r.name == "gurupi-backend")
    return copy.deepcopy(deployment.raw_inputs)


@fails(pack.KUBERNETES_PODS_RESTRICTED)
def test_privileged_host_bound_pods_are_refused(cluster):
    evaluation = cluster.evaluate()
    inputs = _backend_pod(evaluation)
    pod = inputs["spec"]["template"]["spec"]
    pod.update(hostNetwork=True, hostPID=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    pod["containers"][0]["securityContext"] = {"privileged": True}
    found = messages(run(mutated(evaluation, "gurupi-backend", inputs=inputs), fleet_of(cluster), pack.KUBERNETES_PODS_RESTRICTED))
    assert found == [
        "tenant gurupi: Deployment gurupi-backend sets hostNetwork: true; tenant pods stay in their own network, PID and IPC namespaces.",
        "tenant gurupi: Deployment gurupi-backend sets hostPID: true; tenant pods stay in their own network, PID and IPC namespaces.",
        "tenant gurupi: Deployment gurupi-backend mounts the node's '/' (hostPath volume 'root'); tenant pods get no host paths.",
        "tenant gurupi: Deployment gurupi-backend container 'backend' is privileged; tenant containers never are.",
        "tenant gurupi: Deployment gurupi-backend container 'backend' doesn't set allowPrivilegeEscalation: false.",
    ]


def test_a_bare_pod_and_a_job_are_checked_like_deployments():
    args = resource_args(
        "kubernetes:core/v1:Pod",
        "debug",
        {
            "metadata": {"labels": {"tenant": "gurupi"}},
            "spec": {"hostIPC": True, "containers": [{"name": "shell", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": False}}]},
        },
    )
    found: list[str] = []

    def report(message: str, urn: Optional[str] = None) -> None:
        found.append(message)

    for policy in (pack.kubernetes_pods_restricted, pack.images_pinned, pack.container_limits_set):
        policy(args, report)
    assert found == [
        "Pod debug sets hostIPC: true; tenant pods stay in their own network, PID and IPC namespaces.",
        "Pod debug container 'shell' image 'busybox' has no tag, which means `latest`; pin a version tag or a digest.",
        "Pod debug container 'shell' has no memory and no cpu limit; set resources.limits.cpu and resources.limits.memory.",
    ]


def test_pod_images_and_limits_reuse_the_container_rules(cluster):
    evaluation = cluster.evaluate()
    inputs = _backend_pod(evaluation)
    container = inputs["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "nginx:latest"
    del container["resources"]["limits"]["memory"]
    drifted = mutated(evaluation, "gurupi-backend", inputs=inputs)
    assert messages(run(drifted, fleet_of(cluster), pack.IMAGES_PINNED)) == [
        "tenant gurupi: Deployment gurupi-backend container 'backend' image 'nginx:latest' uses the floating tag `latest`; pin a version tag or a digest."
    ]
    assert messages(run(drifted, fleet_of(cluster), pack.CONTAINER_LIMITS_SET)) == [
        "tenant gurupi: Deployment gurupi-backend container 'backend' has no memory limit; set resources.limits.cpu and resources.limits.memory."
    ]


@fails(pack.KUBERNETES_QUOTA_CAPACITY)
def test_quotas_must_fit_the_clusters_capacity(cluster):
    cluster.config["kubernetes_hosts"]["k8s-1"].update(cpus=8, memory_mb=8192)
    add_tenants(cluster, 3, "enterprise")
    for index in range(3):
        cluster.edit(f"extra{index:03d}", app={"host": "k8s-1"})
    evaluation = cluster.evaluate()
    found = run(evaluation, fleet_of(cluster), pack.KUBERNETES_QUOTA_CAPACITY)
    assert {v.resource for v in found} == {"kubernetes-k8s-1"} and len(found) == 2
    cpus, memory = sorted(messages(found))
    # enterprise (pirapora and 3 more): backend 1 CPU/1024 MB ×(2+1), frontend 0.5/512 ×(2+1): 4.5 CPUs, 4608 MB each; pro gurupi 1.5/1536.
    assert memory.startswith("cluster kubernetes-k8s-1: tenant quotas add up to 19968 MB, above the 6963.2 MB usable (8192 MB declared minus 15% headroom)")
    assert cpus.startswith("cluster kubernetes-k8s-1: tenant quotas add up to 19.5 CPUs, above the 6.8 CPUs usable")
    assert "Add capacity (fleet:kubernetes_hosts) or move tenants to another host (app: {host: ...})." in memory


def test_a_tenant_namespace_without_a_quota_is_named(cluster):
    evaluation = cluster.evaluate()
    quota = next(r for r in of_type(evaluation, tokens.KUBE_QUOTA, "gurupi"))
    import dataclasses

    without_quota = dataclasses.replace(evaluation, resources=[r for r in evaluation.resources if r is not quota])
    assert messages(run(without_quota, fleet_of(cluster), pack.KUBERNETES_QUOTA_CAPACITY)) == [
        "tenant gurupi: namespace 'tenant-gurupi' has no ResourceQuota: nothing bounds what its pods take from the cluster."
    ]


def test_kubernetes_quantities():
    assert [pack.cpu_cores(value) for value in ("250m", "2", "1.5", "x")] == [0.25, 2.0, 1.5, None]
    assert [pack.memory_mb(value) for value in ("512Mi", "1Gi", "1048576", "1G")] == [512.0, 1024.0, 1.0, 1e9 / 2**20]


def test_a_deployment_sized_off_its_plan_is_named(cluster):
    evaluation = cluster.evaluate()
    inputs = _backend_pod(evaluation)
    inputs["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"cpu": "2", "memory": "4Gi"}
    found = messages(run(mutated(evaluation, "gurupi-backend", inputs=inputs), fleet_of(cluster), pack.CONTAINER_LIMITS_MATCH_PLAN))
    assert found == [
        "tenant gurupi: backend Deployment gurupi-backend has memory 4096 MB per container, but plan pro with the tenant's overrides gives 512 MB.",
        "tenant gurupi: backend Deployment gurupi-backend has cpu 2 per container, but plan pro with the tenant's overrides gives 0.5.",
    ]
