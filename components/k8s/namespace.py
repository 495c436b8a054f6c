"""A tenant's namespace and its noisy-neighbour limits: the ResourceQuota and LimitRange from its plan."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as kubernetes

from fleet.model import derive
from fleet.model import kubernetes as kube
from fleet.model.spec import Environment, Plan, TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost


def tenant_namespace(tenant: TenantSpec, host: KubernetesHost, opts: pulumi.ResourceOptions) -> kubernetes.core.v1.Namespace:
    """The namespace `<prefix><tenant>`, labelled with the tenant and its plan (a label change is an update, not a replacement)."""
    names = derive.names(tenant)
    return kubernetes.core.v1.Namespace(
        names.kube_namespace,
        metadata={"name": kube.namespace(tenant, host), "labels": kube.namespace_labels(tenant)},
        opts=opts,
    )


def tenant_limits(tenant: TenantSpec, plan: Plan, environment: Environment, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """The ResourceQuota (the namespace's total CPU, memory and pods: fleet.model.kubernetes.quota) and the LimitRange
    (no container above the plan's largest, defaults for any container that declares none)."""
    names = derive.names(tenant)
    total = kube.quota(plan, tenant, environment)
    smallest, largest = kube.container_bounds(plan, tenant, environment)
    labels = kube.namespace_labels(tenant)
    quota = kubernetes.core.v1.ResourceQuota(
        names.kube_quota,
        metadata={"name": "tenant-quota", "namespace": namespace, "labels": labels},
        spec={
            "hard": {
                "requests.cpu": kube.cpu_quantity(total.cpu),
                "limits.cpu": kube.cpu_quantity(total.cpu),
                "requests.memory": kube.memory_quantity(total.memory_mb),
                "limits.memory": kube.memory_quantity(total.memory_mb),
                "pods": str(total.pods),
            }
        },
        opts=opts,
    )
    limit_range = kubernetes.core.v1.LimitRange(
        names.kube_limit_range,
        metadata={"name": "tenant-limits", "namespace": namespace, "labels": labels},
        spec={
            "limits": [
                {
                    "type": "Container",
                    "max": {"cpu": kube.cpu_quantity(largest.cpu), "memory": kube.memory_quantity(largest.memory_mb)},
                    "default": {"cpu": kube.cpu_quantity(smallest.cpu), "memory": kube.memory_quantity(smallest.memory_mb)},
                    "defaultRequest": {"cpu": kube.cpu_quantity(smallest.cpu), "memory": kube.memory_quantity(smallest.memory_mb)},
                }
            ]
        },
        opts=opts,
    )
    return [quota, limit_range]
