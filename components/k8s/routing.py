"""Where Caddy reaches a tenant's services on a cluster, per the host's `routing`.

- `pods`: the ready pods' `IP:port` (components.providers.kube_pods.ReadyPods), read after the Deployment's rollout;
  the pod network must be reachable from where Caddy runs. Needs no service proxy: what a single node without
  kube-proxy offers.
- `services`: each Service's `clusterIP:port`; needs a service proxy (kube-proxy) where Caddy runs.
- `ingress`: an Ingress per route over its hostnames, and Caddy dials the ingress controller (`ingress`), keeping the Host.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as kubernetes

from components.k8s.cluster import ClusterAccess
from components.providers.kube_pods import ReadyPods, ReadyPodsArgs
from fleet.model import derive
from fleet.model import kubernetes as kube
from fleet.model.spec import Environment, Plan, TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost


def upstreams(
    tenant: TenantSpec,
    plan: Plan,
    environment: Environment,
    host: KubernetesHost,
    access: ClusterAccess,
    namespace: pulumi.Input[str],
    deployments: Mapping[str, kubernetes.apps.v1.Deployment],
    services: Mapping[str, kubernetes.core.v1.Service],
    opts: pulumi.ResourceOptions,
) -> dict[str, pulumi.Output[list[str]]]:
    """Dial addresses per routed service (the services `fleet.model.derive.routes` sends hostnames to)."""
    names = derive.names(tenant)
    by_name = {service.name: service for service in derive.services(plan, tenant, environment)}
    routes = derive.routes(plan, tenant, environment)
    routed = sorted({route.service for route in routes})
    found: dict[str, pulumi.Output[list[str]]] = {}
    if host.routing == "ingress":
        for route in routes:
            service = by_name[route.service]
            rule_backend = {"service": {"name": service.name, "port": {"number": service.port}}}
            kubernetes.networking.v1.Ingress(
                names.kube_ingress(route.key),
                metadata={"name": route.key, "namespace": namespace, "labels": derive.labels(tenant, service.name)},
                spec={
                    **({"ingressClassName": host.ingress_class} if host.ingress_class else {}),
                    "rules": [{"host": hostname, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": rule_backend}]}} for hostname in route.hostnames],
                },
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[deployments[service.name]])),
            )
        assert host.ingress is not None  # KubernetesHost asks for it with routing: ingress
        return {name: pulumi.Output.from_input([host.ingress]) for name in routed}
    for name in routed:
        service = by_name[name]
        if host.routing == "services":
            # After the Deployment (its id): the route switches once the pods behind the Service are ready.
            found[name] = pulumi.Output.all(services[name].spec, deployments[name].id).apply(functools.partial(_cluster_ip, port=service.port))
            continue
        deployment = deployments[name]
        pods = ReadyPods(
            names.kube_ready_pods(name),
            ReadyPodsArgs(
                kubeconfig=access.kubeconfig,
                context=access.context,
                namespace=namespace,
                selector=kube.selector(tenant, name),
                port=service.port,
                revision=deployment.metadata.apply(lambda metadata: metadata.generation if metadata is not None else None),
                expected=derive.replica_count(plan, tenant, name),
            ),
            # After the rollout (the provider awaits the Deployment): only ready pods of the new version.
            opts=pulumi.ResourceOptions(parent=opts.parent, depends_on=[deployment]),
        )
        found[name] = pods.addresses
    return found


def _cluster_ip(parts: list, port: int) -> list[str]:
    """A Service's `clusterIP:port` (none while the spec has no address yet)."""
    spec = parts[0]
    # Typed, or a plain dict when it comes through Output.all (camelCase from the engine).
    address = (spec.get("clusterIP") or spec.get("cluster_ip")) if isinstance(spec, dict) else getattr(spec, "cluster_ip", None)
    return [f"{address}:{port}"] if address and address != "None" else []
