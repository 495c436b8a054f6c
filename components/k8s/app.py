"""KubernetesApp: a tenant's app on a cluster (fleet:kubernetes_hosts): its namespace and limits, isolation, env Secrets,
jobs, Deployments, Services and disruption budgets, workers, and the addresses Caddy dials.

The same inputs as the Docker runtime (components.app): the services fleet.model.derive.services gives, the env
components.app_env computes, the plan's jobs and workers; suspend is zero replicas (the routes show the maintenance
page). Every Kubernetes object's logical name comes from fleet.model.derive.Names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.app_env import ServiceEnv
from components.k8s import jobs, routing, workloads
from components.k8s.cluster import ClusterAccess
from components.k8s.isolation import tenant_isolation
from components.k8s.namespace import tenant_limits, tenant_namespace
from fleet.model import derive, type_tokens
from fleet.model import kubernetes as kube
from fleet.model.spec import Environment, Plan, TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost


@dataclass(frozen=True)
class KubernetesAppArgs:
    """Inputs of KubernetesApp."""

    tenant: TenantSpec
    """The tenant whose app this is."""
    plan: Plan
    """Its plan (sizes, replicas, jobs, workers)."""
    environment: Environment
    """The stack's environment (images, hostnames)."""
    host: KubernetesHost
    """The cluster's config (routing, namespace prefix, pull policy, proxy sources)."""
    access: ClusterAccess
    """The cluster's provider and kubeconfig."""
    envs: Mapping[str, ServiceEnv]
    """Each service's env (components.app_env.service_envs)."""
    jobs_env: pulumi.Input[list[str]]
    """The jobs' env (`NAME=value` lines: the primary service's, with the jobs' own DATABASE_URL)."""
    after: Sequence[pulumi.Resource] = field(default_factory=list)
    """What the jobs and pods wait for (the tenant's migrations)."""


def _as_mapping(lines: pulumi.Input[list[str]]) -> pulumi.Output[dict[str, str]]:
    return pulumi.Output.from_input(lines).apply(lambda items: dict(line.split("=", 1) for line in items))


class KubernetesApp(pulumi.ComponentResource):
    """One tenant's namespace on a cluster and everything in it (see the module docstring)."""

    upstreams: dict[str, pulumi.Output[list[str]]]
    """Dial addresses ("host:port") per routed service, for the proxy."""
    namespace: pulumi.Output[str]
    """The tenant's namespace."""

    def __init__(self, name: str, args: KubernetesAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("KubernetesApp"), name, None, opts)
        tenant, plan, environment, host = args.tenant, args.plan, args.environment, args.host
        names = derive.names(tenant)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.access.provider)

        namespace_object = tenant_namespace(tenant, host, on_cluster)
        # The name as an Output of the namespace: every object in it is created after it and deleted before it.
        namespace = workloads.object_name(namespace_object)
        self.namespace = namespace
        limits = tenant_limits(tenant, plan, environment, namespace, on_cluster)
        tenant_isolation(tenant, host, namespace, on_cluster)
        # Pods only after the quota and limit range exist (admission applies them), and after the migrations.
        for_pods = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[*args.after, *limits]))

        services = derive.services(plan, tenant, environment)
        primary = derive.primary_service(plan, tenant, environment)
        secrets = {
            service.name: workloads.env_secret(names.kube_env_secret(service.name), tenant, namespace, args.envs[service.name].mapping(), on_cluster)
            for service in services
        }
        jobs_secret = workloads.env_secret(names.kube_jobs_env_secret, tenant, namespace, _as_mapping(args.jobs_env), on_cluster)
        ran = jobs.tenant_jobs(tenant, plan, host, primary.image, workloads.object_name(jobs_secret), namespace, for_pods)
        # The jobs run first (migrations of a new version); the Deployments change only after they succeeded.
        after_jobs = pulumi.ResourceOptions.merge(for_pods, pulumi.ResourceOptions(depends_on=ran))

        deployments, kube_services = {}, {}
        for service in services:
            replicas = derive.replica_count(plan, tenant, service.name)
            probes = kube.probes(service)
            pod = workloads.pod_spec(
                host,
                [
                    workloads.container(
                        service.name, service.image, host, workloads.object_name(secrets[service.name]),
                        service.size.cpu, service.size.memory_mb, port=service.port, probes=probes,
                    )
                ],
            )
            deployments[service.name] = workloads.deployment(
                names.kube_deployment(service.name), service.name, namespace, replicas, pod,
                derive.labels(tenant, service.name), kube.selector(tenant, service.name), after_jobs,
            )
            kube_services[service.name] = workloads.service(names.kube_service(service.name), tenant, service.name, service.port, namespace, on_cluster)
            if replicas > 1:
                workloads.disruption_budget(names.kube_disruption_budget(service.name), tenant, service.name, namespace, on_cluster)

        for worker_name, worker in sorted(plan.workers.items()):
            # The primary service's image (following its version) and env; no port, Service or probe.
            component = f"worker-{worker_name}"
            pod = workloads.pod_spec(
                host,
                [
                    workloads.container(
                        component, worker.image or primary.image, host, workloads.object_name(secrets[primary.name]),
                        worker.cpu, worker.memory_mb, command=list(worker.command),
                    )
                ],
            )
            workloads.deployment(
                names.kube_worker(worker_name), component, namespace, derive.worker_count(plan, tenant, worker_name), pod,
                derive.worker_labels(tenant, worker_name), {"tenant": tenant.name, "worker": worker_name}, after_jobs,
            )

        self.upstreams = routing.upstreams(tenant, plan, environment, host, args.access, namespace, deployments, kube_services, on_cluster)
        self.register_outputs({"upstreams": self.upstreams, "namespace": namespace})
