"""A tenant's NetworkPolicy: its pods accept traffic from its own namespace and from where the proxy comes, nothing else."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from fleet.model import derive
from fleet.model import kubernetes as kube
from fleet.model.spec import TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost


def ingress_sources(host: KubernetesHost) -> list[dict[str, Any]]:
    """Who may connect to a tenant's pods: its own namespace's pods, the proxy's CIDRs, the ingress controller's namespace."""
    sources: list[dict[str, Any]] = [{"podSelector": {}}]  # no namespaceSelector: the policy's own namespace only
    sources += [{"ipBlock": {"cidr": cidr}} for cidr in host.proxy_sources]
    if host.ingress_namespace:
        sources.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": host.ingress_namespace}}})
    return sources


def tenant_isolation(tenant: TenantSpec, host: KubernetesHost, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> kubernetes.networking.v1.NetworkPolicy:
    """Ingress to every pod of the namespace only from `ingress_sources`: other tenants' namespaces are refused.

    Egress stays open (the database, Redis and the outside world are reached from the pods)."""
    return kubernetes.networking.v1.NetworkPolicy(
        derive.names(tenant).kube_network_policy,
        metadata={"name": "tenant-isolation", "namespace": namespace, "labels": kube.namespace_labels(tenant)},
        spec={"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": ingress_sources(host)}]},
        opts=opts,
    )
