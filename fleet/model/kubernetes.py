"""Pure derivation for the Kubernetes runtime: namespace, labels, quota and per-container bounds, quantities, probes.

No Pulumi here: the components (components/k8s), the policies' config and the docs read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from fleet.model import derive
from fleet.model.spec import Environment, Plan, TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost

NAMESPACE_MAX = 63
"""A namespace name is a DNS label."""
ROLLING_SURGE = 1
"""Extra pods one Deployment may run during a rolling update (maxSurge; maxUnavailable is 0): the quota leaves room for them."""
MANAGED_BY = "tenant-fleet"


def runtime(tenant: TenantSpec, environment: Environment) -> str:
    """`kubernetes` when the tenant's app host is a cluster of fleet:kubernetes_hosts, else `docker`."""
    return "kubernetes" if tenant.app.host in environment.kubernetes_hosts else "docker"


def host_of(tenant: TenantSpec, environment: Environment) -> KubernetesHost:
    """The cluster a tenant's app runs on (only for tenants whose runtime is `kubernetes`)."""
    return environment.kubernetes_hosts[tenant.app.host]


def namespace(tenant: TenantSpec, host: KubernetesHost) -> str:
    """The tenant's namespace: `<namespace_prefix><tenant>`."""
    return f"{host.namespace_prefix}{tenant.name}"


def namespace_labels(tenant: TenantSpec) -> dict[str, str]:
    """Labels of the tenant's namespace (the NetworkPolicy and inventory select by `tenant`)."""
    return {"tenant": tenant.name, "plan": tenant.plan, "managed-by": MANAGED_BY}


def selector(tenant: TenantSpec, component: str) -> dict[str, str]:
    """A Deployment's selector: what never changes over its life (a selector is immutable, so no plan in it)."""
    return {"tenant": tenant.name, "component": component}


def cpu_quantity(cpu: float) -> str:
    """Cores as a Kubernetes quantity in millicores (0.25 -> `250m`)."""
    return f"{round(cpu * 1000)}m"


def memory_quantity(memory_mb: int) -> str:
    """MB as a Kubernetes quantity (`512Mi`; the Docker runtime's MB are MiB too)."""
    return f"{memory_mb}Mi"


@dataclass(frozen=True)
class Footprint:
    """What a tenant's namespace may hold at once: CPU (cores), memory (MB) and pods."""

    cpu: float
    memory_mb: int
    pods: int


def quota(plan: Plan, tenant: TenantSpec, environment: Environment) -> Footprint:
    """The namespace's ResourceQuota: every service's and worker's replicas × size, one surge pod per Deployment for a
    rolling update, and each job's size (jobs run beside the app while a new version rolls out).

    Declared replicas, not the running count: a suspended tenant keeps its quota, so resuming it always fits."""
    cpu, memory, pods = 0.0, 0, 0
    for service in derive.services(plan, tenant, environment):
        if service.size.replicas == 0:
            continue
        count = service.size.replicas + ROLLING_SURGE
        cpu, memory, pods = cpu + count * service.size.cpu, memory + count * service.size.memory_mb, pods + count
    for worker in plan.workers.values():
        count = worker.replicas + ROLLING_SURGE
        cpu, memory, pods = cpu + count * worker.cpu, memory + count * worker.memory_mb, pods + count
    for job in derive.container_jobs(tenant, plan).values():
        cpu, memory, pods = cpu + job.cpu, memory + job.memory_mb, pods + 1
    return Footprint(round(cpu, 3), memory, pods)


def container_bounds(plan: Plan, tenant: TenantSpec, environment: Environment) -> tuple[Footprint, Footprint]:
    """(smallest, largest) container of the tenant's app, workers and jobs: the LimitRange's default and max per container."""
    sizes = [(s.size.cpu, s.size.memory_mb) for s in derive.services(plan, tenant, environment) if s.size.replicas > 0]
    sizes += [(w.cpu, w.memory_mb) for w in plan.workers.values()]
    sizes += [(j.cpu, j.memory_mb) for j in derive.container_jobs(tenant, plan).values()]
    return (
        Footprint(min(cpu for cpu, _ in sizes), min(memory for _, memory in sizes), 1),
        Footprint(max(cpu for cpu, _ in sizes), max(memory for _, memory in sizes), 1),
    )


def probes(service: derive.AppService) -> dict[str, dict[str, Any]]:
    """readinessProbe and livenessProbe over HTTP on the service's health path and port (the Docker check's timings)."""
    check = {"httpGet": {"path": service.health_path, "port": service.port}, "timeoutSeconds": 5}
    return {
        "readiness": {**check, "periodSeconds": 5, "failureThreshold": 3},
        "liveness": {**check, "initialDelaySeconds": 20, "periodSeconds": 30, "failureThreshold": 3},
    }


def pod_security(host: KubernetesHost) -> dict[str, Any]:
    """The pod's securityContext: a non-root UID where the host says so, the runtime's default seccomp profile."""
    context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if host.run_as_user is not None:
        context.update(runAsNonRoot=True, runAsUser=host.run_as_user, runAsGroup=host.run_as_user)
    return context


CONTAINER_SECURITY: dict[str, Any] = {"privileged": False, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
"""Every tenant container's securityContext: not privileged, no privilege escalation, no Linux capabilities."""


def upstream_kind(host: KubernetesHost) -> str:
    """Words for the PR summary: how Caddy reaches the tenant's app on this cluster."""
    return {
        "pods": "Caddy dials its ready pods' IPs",
        "services": "Caddy dials its Services' cluster IPs",
        "ingress": f"Caddy dials the ingress controller at {host.ingress}",
    }[host.routing]


def namespace_problem(tenant: TenantSpec, host: KubernetesHost) -> Optional[str]:
    """Why the tenant's namespace name is not a valid one on this host; None when it is."""
    name = namespace(tenant, host)
    if len(name) > NAMESPACE_MAX:
        return f"namespace {name!r} is longer than {NAMESPACE_MAX} characters: shorten the host's namespace_prefix"
    return None
