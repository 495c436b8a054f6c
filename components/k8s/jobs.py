"""A tenant's plan jobs as Kubernetes Jobs: they run before its Deployments change, and a failure fails the tenant's `up`.

The provider awaits each Job's completion (no `pulumi.com/skipAwait`); with `backoffLimit: 0` a failed run fails the
Job, and the engine reports it under the Job's logical name `<tenant>-job-<name>`. A Job's pod template is immutable,
so a new image or env is a replacement: `when` decides which changes run it again, as for the Docker runtime
(`create`: none, `version`: a new image, `always`: every `up`). Jobs are named by Pulumi, so a replacement starts the
new run before the old finished Job is deleted.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pulumi
import pulumi_kubernetes as kubernetes

from components.k8s import workloads
from fleet.model import derive
from fleet.model.spec import Plan, TenantSpec
from fleet.model.spec_kubernetes import KubernetesHost

IGNORED_BY_WHEN = {
    "create": ["spec"],
    "version": ["spec.template.spec.containers[0].envFrom", "metadata.labels", "spec.template.metadata.labels"],
    "always": [],
}
"""What a change of which doesn't run a job again, per `when`."""


def tenant_jobs(
    tenant: TenantSpec, plan: Plan, host: KubernetesHost, image: str, env_secret: pulumi.Input[str], namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> list[pulumi.Resource]:
    """One Job per plan job of an active tenant (its command; the primary service's image unless it names one)."""
    if tenant.status != "active":
        return []
    names = derive.names(tenant)
    jobs: list[pulumi.Resource] = []
    for name, job in sorted(derive.container_jobs(tenant, plan).items()):
        labels = {**derive.labels(tenant, "job"), "job": name}
        annotations = {}
        if job.when == "always":
            annotations["fleet/run"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")  # a new Job each up
        pod = workloads.pod_spec(
            host, [workloads.container("job", job.image or image, host, env_secret, job.cpu, job.memory_mb, command=list(job.command))], restart="Never"
        )
        jobs.append(
            kubernetes.batch.v1.Job(
                names.job(name),
                metadata={"namespace": namespace, "labels": labels},
                spec={"backoffLimit": 0, "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod}},
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=IGNORED_BY_WHEN[job.when])),
            )
        )
    return jobs
