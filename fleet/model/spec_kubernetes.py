"""The stack config of a Kubernetes app host (`fleet:kubernetes_hosts`): where its API server is, what it offers, how Caddy reaches it.

A tenant picks such a host exactly like a Docker host (`app: {host: <key>}`); the rest of its spec is unchanged.
Kept apart from `spec.py` so that the Docker models stay as they are; `spec.Environment` holds a dict of these.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

KUBERNETES_ROUTING = ("pods", "services", "ingress")
"""How Caddy reaches a tenant's app on a cluster: its ready pods' IPs, its Services' cluster IPs, or an ingress controller."""
Routing = Literal["pods", "services", "ingress"]
_NAMESPACE_PREFIX = re.compile(r"^[a-z]([a-z0-9-]{0,30})$")


class KubernetesHost(BaseModel):
    """A Kubernetes cluster that runs tenants' apps: a namespace per tenant, a Deployment and Service per service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kubeconfig: Optional[str] = Field(
        default=None,
        description="Path of a kubeconfig file on the machine running `pulumi up` (`~` expanded); unset: the secret "
        "`fleet:kubeconfigs.<key>` holds the kubeconfig itself (`pulumi config set --secret --path 'fleet:kubeconfigs.k8s-1' \"$(cat kubeconfig)\"`, "
        "from a CI secret).",
    )
    context: Optional[str] = Field(default=None, description="kubeconfig context to use (default: its current context).")
    cpus: float = Field(gt=0, description="CPU cores the cluster offers to tenant namespaces (the sum of their quotas must fit).")
    memory_mb: int = Field(ge=256, description="Memory the cluster offers to tenant namespaces, in MB (the sum of their quotas must fit).")
    headroom_percent: int = Field(default=15, ge=0, le=90, description="Share of the capacity kept free (policies count quotas against the rest).")
    routing: Routing = Field(
        default="pods",
        description="How the proxy reaches a tenant's app: `pods` (its ready pods' IPs, dialable from the proxy), `services` "
        "(Service cluster IPs: needs a service proxy such as kube-proxy where Caddy runs) or `ingress` (an Ingress per route, through `ingress`).",
    )
    namespace_prefix: str = Field(default="tenant-", description="Tenant namespaces are `<prefix><tenant>`; a DNS label start, up to 31 characters.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="imagePullPolicy of tenant pods (`Never` for images loaded into the node without a registry)."
    )
    run_as_user: Optional[int] = Field(
        default=65534,
        ge=1,
        description="UID tenant containers run as (runAsNonRoot); null lets images that need root keep their own user (runAsNonRoot unset).",
    )
    proxy_sources: list[str] = Field(
        default_factory=list,
        description="CIDRs the proxy's traffic comes from (the node's bridge address for `pods`): the tenants' NetworkPolicy admits them "
        "besides the tenant's own namespace.",
    )
    ingress: Optional[str] = Field(
        default=None, description="With `routing: ingress`: the ingress controller's address (`host:port`) Caddy dials, keeping the Host header."
    )
    ingress_class: Optional[str] = Field(default=None, description="ingressClassName of tenant Ingresses (default: the cluster's default class).")
    ingress_namespace: Optional[str] = Field(
        default=None, description="Namespace of the ingress controller: its pods are admitted by the tenants' NetworkPolicy."
    )
    plans: Optional[list[str]] = Field(default=None, description="Plans this cluster takes (default: any).")

    @field_validator("namespace_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _NAMESPACE_PREFIX.match(value):
            raise ValueError(f"{value!r} must start a DNS label: a lowercase letter, then up to 30 lowercase letters, digits or '-'")
        return value

    @field_validator("proxy_sources")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        bad = []
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                bad.append(cidr)
        if bad:
            raise ValueError(f"not CIDRs: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "KubernetesHost":
        if self.routing == "ingress" and not self.ingress:
            raise ValueError("routing: ingress needs `ingress`, the controller's address Caddy dials (host:port)")
        return self
