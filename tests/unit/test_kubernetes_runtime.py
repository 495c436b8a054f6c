"""The Kubernetes runtime under mocks: what a tenant on a cluster (fleet:kubernetes_hosts) declares, suspend, a plan
change, routing modes, and the errors of a wrong host config."""

from __future__ import annotations

import pytest
import yaml

from fleet.errors import SpecError
from fleet.model import type_tokens as tokens
from tests.unit.graph import CONTAINER, DATABASE, ROUTE, env_of, of_type
from tests.unit.test_lifecycle import changes, only

CLUSTER = {
    "kubeconfig": "/etc/fleet/k8s-1.kubeconfig",
    "cpus": 16,
    "memory_mb": 32768,
    "routing": "pods",
    "proxy_sources": ["10.88.0.1/32"],
    "image_pull_policy": "Never",
}


@pytest.fixture
def cluster(workspace):
    """The dev fleet with a cluster `k8s-1`; gurupi (pro) and pirapora (enterprise, 2 replicas) run their apps on it."""
    workspace.config["kubernetes_hosts"] = {"k8s-1": dict(CLUSTER)}
    workspace.edit("gurupi", app={"host": "k8s-1"})
    workspace.edit("pirapora", app={"host": "k8s-1"})
    return workspace


def by_name(evaluation, type_, tenant):
    return {r.name: r for r in of_type(evaluation, type_, tenant)}


def add_jobs_and_workers(workspace, plan="pro"):
    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"][plan]["jobs"] = {
        "migrate": {"command": ["npx", "prisma", "migrate", "deploy"], "cpu": 0.5, "memory_mb": 384},
        "seed": {"command": ["node", "seed.js"], "when": "create"},
    }
    plans["plans"][plan]["workers"] = {"queue": {"command": ["node", "worker.js"], "cpu": 0.25, "memory_mb": 128, "replicas": 2}}
    path.write_text(yaml.safe_dump(plans, sort_keys=False))


def test_a_tenant_on_a_cluster_gets_a_labelled_namespace_and_no_containers(cluster):
    evaluation = cluster.evaluate()
    assert of_type(evaluation, CONTAINER, "gurupi") == []
    (namespace,) = of_type(evaluation, tokens.KUBE_NAMESPACE, "gurupi")
    assert namespace.name == "gurupi-namespace"
    assert namespace.raw_inputs["metadata"] == {"name": "tenant-gurupi", "labels": {"tenant": "gurupi", "plan": "pro", "managed-by": "tenant-fleet"}}
    assert "::kubernetes-k8s-1::" in namespace.provider
    # Everything of the tenant on the cluster is in its namespace, through the cluster's provider.
    for resource in evaluation.resources:
        if resource.tenant == "gurupi" and resource.type.startswith("kubernetes:") and resource.type != tokens.KUBE_NAMESPACE:
            assert resource.raw_inputs["metadata"]["namespace"] == "tenant-gurupi", resource.name
            assert "::kubernetes-k8s-1::" in resource.provider, resource.name
    # Other tenants keep their Docker containers.
    assert of_type(evaluation, CONTAINER, "santarita")


def test_quota_and_limit_range_come_from_the_plan(cluster):
    add_jobs_and_workers(cluster)
    evaluation = cluster.evaluate()
    (quota,) = of_type(evaluation, tokens.KUBE_QUOTA, "gurupi")
    # pro: backend 0.5 CPU/512 MB ×1, frontend 0.25/256 ×1, worker 0.25/128 ×2, each Deployment +1 surge pod; jobs 0.5/384 and 0.25/256.
    cpu = 2 * 0.5 + 2 * 0.25 + 3 * 0.25 + 0.5 + 0.25
    memory = 2 * 512 + 2 * 256 + 3 * 128 + 384 + 256
    assert quota.raw_inputs["spec"]["hard"] == {
        "requests.cpu": f"{round(cpu * 1000)}m",
        "limits.cpu": f"{round(cpu * 1000)}m",
        "requests.memory": f"{memory}Mi",
        "limits.memory": f"{memory}Mi",
        "pods": str(2 + 2 + 3 + 2),
    }
    (limit_range,) = of_type(evaluation, tokens.KUBE_LIMIT_RANGE, "gurupi")
    (limits,) = limit_range.raw_inputs["spec"]["limits"]
    assert limits["type"] == "Container"
    assert limits["max"] == {"cpu": "500m", "memory": "512Mi"}
    assert limits["default"] == limits["defaultRequest"] == {"cpu": "250m", "memory": "128Mi"}


def test_a_deployment_and_service_per_service_sized_probed_and_locked_down(cluster):
    evaluation = cluster.evaluate()
    deployments = by_name(evaluation, tokens.KUBE_DEPLOYMENT, "gurupi")
    assert set(deployments) == {"gurupi-backend", "gurupi-frontend"}
    backend = deployments["gurupi-backend"].raw_inputs
    assert backend["metadata"]["name"] == "backend"
    assert backend["metadata"]["labels"] == {"tenant": "gurupi", "plan": "pro", "component": "backend", "managed-by": "tenant-fleet"}
    spec = backend["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == {"matchLabels": {"tenant": "gurupi", "component": "backend"}}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    assert (pod["hostNetwork"], pod["hostPID"], pod["hostIPC"], pod["automountServiceAccountToken"]) == (False, False, False, False)
    assert "volumes" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65534
    (container,) = pod["containers"]
    assert container["image"] == "nginx:1.27.3-alpine" and container["imagePullPolicy"] == "Never"
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert container["securityContext"] == {"privileged": False, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": 80}  # fleet:images.health_path and backend_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/", "port": 80}
    assert container["ports"] == [{"name": "http", "containerPort": 80}]
    services = by_name(evaluation, tokens.KUBE_SERVICE, "gurupi")
    assert set(services) == {"gurupi-backend-service", "gurupi-frontend-service"}
    backend_service = services["gurupi-backend-service"].raw_inputs
    assert backend_service["metadata"]["name"] == "backend"
    assert backend_service["spec"]["selector"] == {"tenant": "gurupi", "component": "backend"}
    assert backend_service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 80}]
    # santarita's override (768 MB backend) applies the same way on a cluster.
    cluster.edit("santarita", app={"host": "k8s-1"})
    santarita = by_name(cluster.evaluate(), tokens.KUBE_DEPLOYMENT, "santarita")["santarita-backend"]
    assert santarita.raw_inputs["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "768Mi"}


def test_the_env_secret_holds_the_same_env_the_docker_runtime_gives(workspace):
    on_docker = workspace.evaluate()
    docker_env = {c.name.rsplit("-", 2)[1]: env_of(c) for c in of_type(on_docker, CONTAINER, "gurupi")}
    workspace.config["kubernetes_hosts"] = {"k8s-1": dict(CLUSTER)}
    workspace.edit("gurupi", app={"host": "k8s-1"})
    on_cluster = workspace.evaluate()
    secrets = by_name(on_cluster, tokens.KUBE_SECRET, "gurupi")
    assert set(secrets) == {"gurupi-backend-env", "gurupi-frontend-env", "gurupi-job-env"}
    for service in ("backend", "frontend"):
        secret = secrets[f"gurupi-{service}-env"]
        assert secret.raw_inputs["stringData"] == docker_env[service], service
        assert "metadata" in secret.raw_inputs and "name" not in secret.raw_inputs["metadata"]  # named by Pulumi: a new env rolls the pods
    assert "stringData" in secrets["gurupi-backend-env"].secret_inputs  # DATABASE_URL and the JWT secrets
    # The pods read their env from their own Secret.
    deployment = by_name(on_cluster, tokens.KUBE_DEPLOYMENT, "gurupi")["gurupi-backend"]
    env_from = deployment.raw_inputs["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from == [{"secretRef": {"name": "gurupi-backend-env-mock"}}]


def test_network_policy_admits_the_namespace_and_the_proxy_only(cluster):
    evaluation = cluster.evaluate()
    (policy,) = of_type(evaluation, tokens.KUBE_NETWORK_POLICY, "gurupi")
    spec = policy.raw_inputs["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [{"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "10.88.0.1/32"}}]}]


def test_a_disruption_budget_only_where_a_service_has_more_than_one_replica(cluster):
    evaluation = cluster.evaluate()
    assert of_type(evaluation, tokens.KUBE_DISRUPTION_BUDGET, "gurupi") == []  # pro: 1 replica each
    budgets = by_name(evaluation, tokens.KUBE_DISRUPTION_BUDGET, "pirapora")  # enterprise: 2 each
    assert set(budgets) == {"pirapora-backend-pdb", "pirapora-frontend-pdb"}
    assert budgets["pirapora-backend-pdb"].raw_inputs["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"tenant": "pirapora", "component": "backend"}}}
    assert by_name(evaluation, tokens.KUBE_DEPLOYMENT, "pirapora")["pirapora-backend"].raw_inputs["spec"]["replicas"] == 2


def test_jobs_run_before_the_deployments_and_workers_have_no_service(cluster):
    add_jobs_and_workers(cluster)
    evaluation = cluster.evaluate()
    jobs = by_name(evaluation, tokens.KUBE_JOB, "gurupi")
    assert set(jobs) == {"gurupi-job-migrate", "gurupi-job-seed"}
    migrate = jobs["gurupi-job-migrate"]
    assert migrate.raw_inputs["spec"]["backoffLimit"] == 0  # one failed run fails the Job, and the tenant's up with its name
    pod = migrate.raw_inputs["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["npx", "prisma", "migrate", "deploy"] and container["image"] == "nginx:1.27.3-alpine"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "384Mi"}
    assert container["envFrom"] == [{"secretRef": {"name": "gurupi-job-env-mock"}}]
    assert jobs["gurupi-job-seed"].options["ignoreChanges"] == ["spec"]  # when: create
    # The job's env is the backend's with the jobs' own database login.
    job_env = by_name(evaluation, tokens.KUBE_SECRET, "gurupi")["gurupi-job-env"].raw_inputs["stringData"]
    backend_env = by_name(evaluation, tokens.KUBE_SECRET, "gurupi")["gurupi-backend-env"].raw_inputs["stringData"]
    assert job_env["DATABASE_URL"] != backend_env["DATABASE_URL"] and "_job:" in job_env["DATABASE_URL"]
    deployments = by_name(evaluation, tokens.KUBE_DEPLOYMENT, "gurupi")
    for name in ("gurupi-backend", "gurupi-frontend", "gurupi-worker-queue"):
        assert {job.urn for job in jobs.values()} <= set(deployments[name].options["dependencies"]), name
    worker = deployments["gurupi-worker-queue"].raw_inputs
    assert worker["metadata"]["name"] == "worker-queue" and worker["spec"]["replicas"] == 2
    assert worker["metadata"]["labels"]["component"] == "worker" and worker["metadata"]["labels"]["worker"] == "queue"
    (worker_container,) = worker["spec"]["template"]["spec"]["containers"]
    assert "ports" not in worker_container and "readinessProbe" not in worker_container
    assert worker_container["command"] == ["node", "worker.js"]
    assert not any(s.raw_inputs["metadata"]["name"].startswith("worker") for s in of_type(evaluation, tokens.KUBE_SERVICE, "gurupi"))


def test_routes_dial_the_ready_pods_read_after_each_rollout(cluster):
    evaluation = cluster.evaluate()
    pods = by_name(evaluation, tokens.KUBE_READY_PODS, "pirapora")
    assert set(pods) == {"pirapora-backend-pods", "pirapora-frontend-pods"}
    deployments = by_name(evaluation, tokens.KUBE_DEPLOYMENT, "pirapora")
    reader = pods["pirapora-backend-pods"]
    assert deployments["pirapora-backend"].urn in reader.options["dependencies"]
    assert reader.raw_inputs["selector"] == {"tenant": "pirapora", "component": "backend"}
    assert reader.raw_inputs["namespace"] == "tenant-pirapora" and reader.raw_inputs["expected"] == 2
    assert "kubeconfig" in reader.secret_inputs
    routes = by_name(evaluation, ROUTE, "pirapora")
    upstreams = routes["pirapora-route-backend"].raw_inputs["upstreams"]
    assert len(upstreams) == 2 and all(upstream.startswith("10.88.") and upstream.endswith(":80") for upstream in upstreams)


def test_services_routing_dials_cluster_ips_and_ingress_routing_the_controller(cluster):
    cluster.config["kubernetes_hosts"]["k8s-1"]["routing"] = "services"
    evaluation = cluster.evaluate()
    assert of_type(evaluation, tokens.KUBE_READY_PODS, "gurupi") == []
    (upstream,) = by_name(evaluation, ROUTE, "gurupi")["gurupi-route-backend"].raw_inputs["upstreams"]
    assert upstream.startswith("10.96.") and upstream.endswith(":80")

    cluster.config["kubernetes_hosts"]["k8s-1"].update(routing="ingress", ingress="127.0.0.1:8088", ingress_class="nginx", ingress_namespace="ingress")
    evaluation = cluster.evaluate()
    ingresses = by_name(evaluation, tokens.KUBE_INGRESS, "pirapora")
    assert set(ingresses) == {"pirapora-backend-ingress", "pirapora-frontend-ingress"}
    frontend = ingresses["pirapora-frontend-ingress"].raw_inputs["spec"]
    assert frontend["ingressClassName"] == "nginx"
    assert [rule["host"] for rule in frontend["rules"]] == ["app-pirapora.fleet.localhost", "compras.pirapora.mg.gov.br", "precos.pirapora.mg.gov.br"]
    assert frontend["rules"][0]["http"]["paths"][0]["backend"] == {"service": {"name": "frontend", "port": {"number": 80}}}
    for route in of_type(evaluation, ROUTE, "pirapora"):
        assert route.raw_inputs["upstreams"] == ["127.0.0.1:8088"]
    (policy,) = of_type(evaluation, tokens.KUBE_NETWORK_POLICY, "pirapora")
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}} in policy.raw_inputs["spec"]["ingress"][0]["from"]


def test_suspend_scales_to_zero_and_shows_the_maintenance_page(cluster):
    add_jobs_and_workers(cluster, plan="enterprise")
    before = cluster.evaluate()
    cluster.edit("pirapora", status="suspended")
    after = cluster.evaluate()
    for deployment in of_type(after, tokens.KUBE_DEPLOYMENT, "pirapora"):
        assert deployment.raw_inputs["spec"]["replicas"] == 0, deployment.name
    assert of_type(after, tokens.KUBE_DISRUPTION_BUDGET, "pirapora") == []
    assert of_type(after, tokens.KUBE_JOB, "pirapora") == []
    for route in of_type(after, ROUTE, "pirapora"):
        assert route.raw_inputs["maintenance"] is True and route.raw_inputs["upstreams"] == []
    # The namespace, its quota (kept, so a resume fits), its Secrets and Services stay.
    for type_ in (tokens.KUBE_NAMESPACE, tokens.KUBE_QUOTA, tokens.KUBE_LIMIT_RANGE, tokens.KUBE_SECRET, tokens.KUBE_SERVICE, tokens.KUBE_NETWORK_POLICY):
        assert [r.raw_inputs for r in of_type(after, type_, "pirapora")] == [r.raw_inputs for r in of_type(before, type_, "pirapora")], type_


def test_a_plan_change_touches_only_that_tenants_namespace_objects(cluster):
    before = cluster.evaluate()
    cluster.edit("gurupi", plan="enterprise")
    after = cluster.evaluate()
    found = only("gurupi", changes(before, after))
    assert found["delete"] == set()
    assert found["create"] == {(tokens.KUBE_DISRUPTION_BUDGET, "gurupi-backend-pdb"), (tokens.KUBE_DISRUPTION_BUDGET, "gurupi-frontend-pdb")}
    updated = {name for type_, name in found["update"]}
    assert {"gurupi-namespace", "gurupi-quota", "gurupi-limits", "gurupi-backend", "gurupi-frontend"} <= updated
    # The database stays where it is; only its connection limit follows the plan (the noisy-neighbour limits), in place.
    for type_, name in found["update"]:
        if type_ == DATABASE:
            old_db, new_db = by_name(before, DATABASE, "gurupi")[name].raw_inputs, by_name(after, DATABASE, "gurupi")[name].raw_inputs
            assert {key for key in {*old_db, *new_db} if old_db.get(key) != new_db.get(key)} == {"connectionLimit"}
    backend = by_name(after, tokens.KUBE_DEPLOYMENT, "gurupi")["gurupi-backend"].raw_inputs["spec"]
    assert backend["replicas"] == 2 and backend["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1000m", "memory": "1024Mi"}


def test_a_wrong_cluster_config_is_named_with_file_tenant_and_field(cluster):
    cluster.config["kubernetes_hosts"]["vps-2"] = dict(CLUSTER)
    cluster.config["docker_hosts"] = {"vps-2": {"url": "tcp://10.0.0.2:2376", "memory_mb": 8192, "cpus": 4}}
    with pytest.raises(SpecError) as raised:
        cluster.evaluate()
    assert "app host keys used twice (docker_hosts and kubernetes_hosts): vps-2" in str(raised.value)

    del cluster.config["docker_hosts"]
    cluster.config["kubernetes_hosts"]["vps-2"] = {**CLUSTER, "routing": "ingress"}
    cluster.config["kubernetes_hosts"]["vps-3"] = {**CLUSTER, "namespace_prefix": "Tenant_"}
    with pytest.raises(SpecError) as raised:
        cluster.evaluate()
    text = str(raised.value)
    assert "fleet:kubernetes_hosts.vps-2: routing: ingress needs `ingress`" in text
    assert "fleet:kubernetes_hosts.vps-3.namespace_prefix: 'Tenant_' must start a DNS label" in text
    del cluster.config["kubernetes_hosts"]["vps-3"]

    del cluster.config["kubernetes_hosts"]["vps-2"]
    cluster.edit("santarita", app={"host": "k8s-9"})
    path = cluster.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["redis"] = "dedicated"
    plans["plans"]["pro"]["redis_memory_mb"] = 64
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    with pytest.raises(SpecError) as raised:
        cluster.evaluate()
    text = str(raised.value)
    assert "tenants/santarita.yaml: tenant santarita: app.host: unknown app host 'k8s-9'; hosts: default, k8s-1" in text
    assert "tenants/gurupi.yaml: tenant gurupi: app.host: plan pro has redis: dedicated, which the Kubernetes runtime doesn't run" in text


def test_a_namespace_name_too_long_is_refused(cluster):
    cluster.config["kubernetes_hosts"]["k8s-1"]["namespace_prefix"] = "t" + "x" * 30
    long_name = "a" * 40
    cluster.write(long_name, {"name": long_name, "display_name": "Long", "plan": "basic", "database": {"server": "shared-1"}, "app": {"host": "k8s-1"}})
    with pytest.raises(SpecError) as raised:
        cluster.evaluate()
    assert f"tenant {long_name}: name: namespace 't{'x' * 30}{long_name}' is longer than 63 characters" in str(raised.value)


def test_the_offline_plan_shows_the_kubernetes_objects(cluster):
    import io

    from fleet.offline.report import key_inputs, print_plan_table

    evaluation = cluster.evaluate()
    shown = {r.name: key_inputs(r) for r in evaluation.resources if r.tenant == "gurupi" and r.custom}
    assert shown["gurupi-backend"] == "ns=tenant-gurupi name=backend replicas=1 image=nginx:1.27.3-alpine cpu=500m memory=512Mi ready=/:80"
    assert shown["gurupi-namespace"] == "name=tenant-gurupi labels=managed-by=tenant-fleet,plan=pro,tenant=gurupi"
    assert shown["gurupi-quota"] == "ns=tenant-gurupi name=tenant-quota hard=limits.cpu=1500m,limits.memory=1536Mi,pods=4,requests.cpu=1500m,requests.memory=1536Mi"
    assert shown["gurupi-isolation"] == "ns=tenant-gurupi name=tenant-isolation from=namespace,{'cidr': '10.88.0.1/32'}"
    pods = shown["gurupi-backend-pods"]  # the selector's keys in the wire's order
    assert pods.startswith("namespace=tenant-gurupi selector=") and pods.endswith(" port=80 expected=1")
    assert "component=backend" in pods and "tenant=gurupi" in pods
    out = io.StringIO()
    print_plan_table(evaluation, {"gurupi": "pro"}, out)
    for kind in ("Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "Deployment", "Service", "Secret", "ReadyPods"):
        assert kind in out.getvalue(), kind


def test_the_policy_packs_kubernetes_tokens_are_the_models_tokens():
    from policies import fleet_policies as pack

    assert pack.KUBE_QUOTA == tokens.KUBE_QUOTA and pack.KUBE_NAMESPACE == tokens.KUBE_NAMESPACE
    assert {tokens.KUBE_DEPLOYMENT, tokens.KUBE_JOB} <= set(pack.POD_SPEC_PATHS)
    assert pack.COMPONENT_SUFFIXES[tokens.KUBERNETES_APP] == "-kubernetes"


def test_a_cluster_without_a_kubeconfig_file_reads_the_secret_and_never_the_machines_default(cluster):
    host = {key: value for key, value in CLUSTER.items() if key != "kubeconfig"}
    cluster.config["kubernetes_hosts"] = {"k8s-1": host}
    cluster.config["kubeconfigs"] = {"k8s-1": "apiVersion: v1\nkind: Config\n"}
    evaluation = cluster.evaluate()
    (provider,) = [r for r in evaluation.resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.raw_inputs["kubeconfig"] == "apiVersion: v1\nkind: Config\n" and "kubeconfig" in provider.secret_inputs
    del cluster.config["kubeconfigs"]
    with pytest.raises(SpecError) as raised:  # refused before anything is declared
        cluster.evaluate()
    assert "Pulumi.dev.yaml: fleet:: kubernetes_hosts.k8s-1: no kubeconfig file and no secret fleet:kubeconfigs.k8s-1" in str(raised.value)


def test_a_tenant_stack_on_a_cluster_declares_its_cluster_and_the_default_docker_host_for_its_backup(cluster):
    """With `fleet:stacks: per-tenant`, stack `dev.gurupi` declares the cluster's provider (its app) and the default
    Docker host (its scheduled backup container), and no other host."""
    from tests.unit.test_program import _evaluate_as_stack

    cluster.config["stacks"] = "per-tenant"
    cluster.config["images"] = {**cluster.config["images"], "ops": "registry.example/tenant-fleet/ops:1.0.0"}
    evaluation = _evaluate_as_stack(cluster, "dev.gurupi")
    providers = sorted(r.name for r in evaluation.resources if r.type.startswith("pulumi:providers:") and r.type != "pulumi:providers:postgresql")
    assert providers == ["docker-host", "kubernetes-k8s-1"]
    # (this run records no tenant attribution: the stack holds gurupi alone)
    assert {d.name for d in of_type(evaluation, tokens.KUBE_DEPLOYMENT)} == {"gurupi-backend", "gurupi-frontend"}
    containers = of_type(evaluation, CONTAINER)
    assert containers and all(c.raw_inputs["image"].startswith("registry.example/tenant-fleet/ops") for c in containers)  # the backup job only
    assert all("::docker-host::" in c.provider for c in containers)
