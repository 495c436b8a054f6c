"""A Kubernetes app host as the program declares it: the official provider, and the kubeconfig the fleet's own readers use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

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


def cluster_access(key: str, host: KubernetesHost, kubeconfigs: Optional[pulumi.Input[dict]] = None) -> ClusterAccess:
    """Declare the provider of cluster `key` from its kubeconfig: its file, else the secret `fleet:kubeconfigs.<key>`
    (`kubeconfigs`, the stack's secret object)."""
    if host.kubeconfig is not None:
        kubeconfig: pulumi.Input[str] = os.path.expanduser(host.kubeconfig)
    else:

        def pick(configs: Optional[dict]) -> str:
            # Never an empty kubeconfig: the provider would fall back to whatever cluster the machine's ~/.kube/config names.
            if not configs or not configs.get(key):
                raise KeyError(f"kubernetes host {key} has no kubeconfig file and the secret fleet:kubeconfigs.{key} is not set")
            return str(configs[key])

        kubeconfig = pulumi.Output.secret(pulumi.Output.from_input(kubeconfigs or {}).apply(pick))
    provider = kubernetes.Provider(derive.kubernetes_provider_name(key), kubeconfig=kubeconfig, context=host.context)
    return ClusterAccess(provider, kubeconfig, host.context)
