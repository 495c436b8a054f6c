"""A tenant's workloads: per service an env Secret, a Deployment and a Service (a PodDisruptionBudget beyond one replica);
per worker a Deployment without Service.

Deployments are awaited by the provider (no `pulumi.com/skipAwait`): `up` continues only when the rollout is complete,
so routes switch to ready pods and the old runtime goes after that. Env Secrets are named by Pulumi: a new env (a
rotation, a new database URL) is a new Secret, which changes the pod template and rolls the pods.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_kubernetes as kubernetes

from fleet.model import derive
from fleet.model import kubernetes as kube
from fleet.model.spec import TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost

ROLLING_UPDATE = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": kube.ROLLING_SURGE, "maxUnavailable": 0}}


def env_secret(name: str, tenant: TenantSpec, namespace: pulumi.Input[str], env: pulumi.Input[dict], opts: pulumi.ResourceOptions) -> kubernetes.core.v1.Secret:
    """A Secret holding one env (keys are env var names), for `envFrom`."""
    return kubernetes.core.v1.Secret(
        name,
        metadata={"namespace": namespace, "labels": kube.namespace_labels(tenant)},
        type="Opaque",
        string_data=env,
        opts=opts,
    )


def object_name(resource: Any) -> pulumi.Output[str]:
    """The name of a Kubernetes object as the provider reports it (one Pulumi named, for a Secret): a dependency on it too."""
    return resource.metadata.apply(lambda metadata: str(metadata.name) if metadata is not None and metadata.name else "")


def container(
    name: str, image: str, host: KubernetesHost, env_from: pulumi.Input[str], cpu: float, memory_mb: int,
    port: Optional[int] = None, command: Optional[list[str]] = None, probes: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """A tenant container: requests = limits from its size, its env from a Secret, non-privileged, probes when it serves."""
    resources = {"cpu": kube.cpu_quantity(cpu), "memory": kube.memory_quantity(memory_mb)}
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": host.image_pull_policy,
        "envFrom": [{"secretRef": {"name": env_from}}],
        "resources": {"requests": resources, "limits": resources},
        "securityContext": kube.CONTAINER_SECURITY,
    }
    if command:
        spec["command"] = list(command)
    if port is not None:
        spec["ports"] = [{"name": "http", "containerPort": port}]
    if probes is not None:
        spec["readinessProbe"], spec["livenessProbe"] = probes["readiness"], probes["liveness"]
    return spec


def pod_spec(host: KubernetesHost, containers: list[dict[str, Any]], restart: str = "Always") -> dict[str, Any]:
    """A tenant pod: no host network, PID or IPC namespace, no service account token, no host paths (no volumes at all)."""
    return {
        "containers": containers,
        "restartPolicy": restart,
        "securityContext": kube.pod_security(host),
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }


def deployment(
    name: str, component: str, namespace: pulumi.Input[str], replicas: int, pod: dict[str, Any],
    labels: dict[str, str], selector: dict[str, str], opts: pulumi.ResourceOptions,
) -> kubernetes.apps.v1.Deployment:
    """A Deployment `component` of `replicas` pods (0 while suspended), rolled one surge pod at a time with none unavailable."""
    return kubernetes.apps.v1.Deployment(
        name,
        metadata={"name": component, "namespace": namespace, "labels": labels},
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": ROLLING_UPDATE,
            "template": {"metadata": {"labels": {**labels, **selector}}, "spec": pod},
        },
        opts=opts,
    )


def service(name: str, tenant: TenantSpec, component: str, port: int, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> kubernetes.core.v1.Service:
    """A ClusterIP Service named like the service (the in-namespace address `http://<service>:<port>`, as on Docker's network)."""
    return kubernetes.core.v1.Service(
        name,
        metadata={"name": component, "namespace": namespace, "labels": derive.labels(tenant, component)},
        spec={"type": "ClusterIP", "selector": kube.selector(tenant, component), "ports": [{"name": "http", "port": port, "targetPort": port}]},
        opts=opts,
    )


def disruption_budget(name: str, tenant: TenantSpec, component: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> kubernetes.policy.v1.PodDisruptionBudget:
    """At most one pod of a multi-replica service down at a time through voluntary disruptions (a node drain)."""
    return kubernetes.policy.v1.PodDisruptionBudget(
        name,
        metadata={"name": component, "namespace": namespace, "labels": derive.labels(tenant, component)},
        spec={"maxUnavailable": 1, "selector": {"matchLabels": kube.selector(tenant, component)}},
        opts=opts,
    )
