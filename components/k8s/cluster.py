"""A Kubernetes app host as the program declares it: the official provider, and the kubeconfig the fleet's own readers use."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as kubernetes

from fleet.model import derive
from fleet.model.spec_kubernetes import KubernetesHost


@dataclass(frozen=True)
class ClusterAccess:
    """How the tenants on one cluster reach it."""

    provider: pulumi.ProviderResource
    """The official Kubernetes provider of the cluster."""
    kubeconfig: pulumi.Input[str]
    """A kubeconfig file's path, or the kubeconfig itself (secret), for the ReadyPods reader."""
    context: str | None
    """The kubeconfig context (None: its current one)."""


def cluster_access(key: str, host: KubernetesHost) -> ClusterAccess:
    """Declare the provider of cluster `key` from its kubeconfig (a file, or a secret stack config key)."""
    if host.kubeconfig_secret is not None:
        namespace, _, name = host.kubeconfig_secret.rpartition(":")
        kubeconfig: pulumi.Input[str] = pulumi.Config(namespace or None).require_secret(name)
    else:
        assert host.kubeconfig is not None  # KubernetesHost asks for one of the two
        kubeconfig = os.path.expanduser(host.kubeconfig)
    provider = kubernetes.Provider(
        derive.kubernetes_provider_name(key),
        kubeconfig=kubeconfig,
        context=host.context,
    )
    return ClusterAccess(provider, kubeconfig, host.context)
