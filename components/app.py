"""TenantApp: a tenant's JWT secrets, its Docker network and its app's containers (backend and frontend, or named services), sized by plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.providers.jobs import JobOutcome, JobOutcomeArgs
from components.providers.volume import TenantVolume, TenantVolumeArgs
from fleet.model import derive, env_template, type_tokens
from fleet.model.spec import Environment, Plan, TenantSpec


@dataclass(frozen=True)
class TenantAppArgs:
    """Inputs of TenantApp."""

    tenant: TenantSpec
    """The tenant whose app this is."""
    plan: Plan
    """The tenant's plan (sizes, limits passed to the app)."""
    environment: Environment
    """The stack's environment (images, proxy upstream address, public URLs)."""
    provider: pulumi.ProviderResource
    """The docker provider of the app host."""
    facts: Mapping[str, pulumi.Input[str]]
    """Every fact env templates may reference (fleet.model.env_template.FACTS) that applies to this tenant: the static
    ones (fleet.model.derive.static_env_facts) and those from resources (db.host, db.port, db.password, db.url, redis.url)."""
    app_secrets: Optional[pulumi.Input[dict]] = None
    """The stack's secret `fleet:app_secrets`, for `secrets: {NAME: {config: <key>}}`."""
    after: Sequence[pulumi.Resource] = ()
    """What the containers wait for (the tenant's migrations)."""
    jobs_facts: Optional[Mapping[str, pulumi.Input[str]]] = None
    """`db.user`, `db.password` and `db.url` of the container jobs' own login (which becomes the owner role): their
    DATABASE_URL and every env template over those facts (`DIRECT_URL: ${db.url}`) use it; default: the app's."""


class TenantApp(pulumi.ComponentResource):
    """The app's containers (fleet.model.derive.services) on a network of their own, with limits, health check, labels and env.

    Containers are named by Pulumi (no fixed `name`), so a replacement starts the new container before
    the old one stops, and the proxy route moves to it in between. Ports are published on the host's
    loopback at a port Docker picks; the proxy reaches them there.
    """

    upstreams: dict[str, pulumi.Output[list[str]]]
    """Dial addresses ("host:port") per service (`backend`, `frontend`, or the plan's service names), for the proxy."""
    env: dict[str, pulumi.Output[list[str]]]
    """Each service's env as its containers get it (`NAME=value` lines; secret when it holds one)."""

    def __init__(self, name: str, args: TenantAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("TenantApp"), name, None, opts)
        tenant, plan, environment = args.tenant, args.plan, args.environment
        names = derive.names(tenant)
        child = pulumi.ResourceOptions(parent=self)
        on_host = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        keepers = {"rotation": str(tenant.rotation)}

        jwt_secret = random.RandomPassword(names.jwt_secret, length=derive.JWT_SECRET_LENGTH, special=False, keepers=keepers, opts=child)
        jwt_refresh = random.RandomPassword(names.jwt_refresh_secret, length=derive.JWT_SECRET_LENGTH, special=False, keepers=keepers, opts=child)
        volumes = {
            name: TenantVolume(
                names.volume(name),
                TenantVolumeArgs(tenant=tenant.name, volume=name, path=path, uid=plan.volumes[name].uid),
                # Kept when it leaves the program, like the database (its delete does nothing either).
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            for name, path in derive.volume_folders(tenant, plan, environment).items()
        }
        mounts = {
            "backend": [docker.ContainerMountArgs(type="bind", source=volume.path, target=plan.volumes[name].mount) for name, volume in volumes.items()],
            "frontend": [],
        }
        network = docker.Network(
            names.network,
            driver="bridge",
            # No plan label: a label change replaces the network, and a plan change must not.
            labels=[docker.NetworkLabelArgs(label=key, value=value) for key, value in derive.network_labels(tenant).items()],
            opts=on_host,
        )

        facts = dict(args.facts)
        if plan.redis == "dedicated":
            facts["redis.url"] = dedicated_redis(names, tenant, plan, environment, network, keepers, on_host, child)
        secret_env: dict[str, dict[str, pulumi.Input[str]]] = {
            "backend": {
                "DATABASE_URL": facts["db.url"],
                "JWT_SECRET": jwt_secret.result,
                "JWT_REFRESH_SECRET": jwt_refresh.result,
                **({"REDIS_URL": facts["redis.url"]} if "redis.url" in facts else {}),
                **declared_secrets(tenant, plan, args.app_secrets, keepers, child),
            },
            "frontend": {},
        }
        declared_env = plan.env.merged_with(tenant.env)
        services = derive.services(plan, tenant, environment)
        primary = derive.primary_service(plan, tenant, environment)

        # The proxy reaches published ports at the app host's address (the default host: the proxy's upstream_host).
        upstream_host = environment.app_hosts()[tenant.app.host].upstream_host or environment.proxy.upstream_host
        self.upstreams = {}
        backend_secrets = secret_env["backend"]

        def service_env_lines(service: derive.AppService, facts: Mapping[str, pulumi.Input[str]], base_secrets: Mapping[str, pulumi.Input[str]]) -> pulumi.Output[list[str]]:
            """A service's `NAME=value` lines: its plain env, its kind's declared templates over `facts`, its secrets."""
            env: dict[str, str] = derive.service_env(tenant, plan, environment, service)
            templates: dict[str, str] = getattr(declared_env, service.env)
            if service.env == "backend" and "app-" in service.routes:
                templates = {**declared_env.frontend, **declared_env.backend}  # it renders the pages too
            secrets = dict(base_secrets)
            for key, template in templates.items():
                value = rendered(template, facts)
                if isinstance(value, str):
                    env[key] = value
                else:  # from a resource's output (or a secret): with the secrets, which are Outputs too
                    secrets[key] = value

            def env_lines(secret_values: Mapping[str, object]) -> list[str]:
                return sorted(f"{key}={value}" for key, value in {**env, **secret_values}.items())

            env_list = pulumi.Output.from_input(secrets).apply(env_lines)
            # Annotated: mypy can't infer Output.secret()'s type from an Output argument alone.
            lines: pulumi.Output[list[str]] = pulumi.Output.secret(env_list) if secrets else env_list
            return lines

        service_envs = {service.name: service_env_lines(service, facts, secret_env[service.env]) for service in services}
        self.env = service_envs

        # The plan's container jobs run first, with the primary service's image and env, as their own login: every
        # db.* fact (DATABASE_URL, and templates such as Prisma's DIRECT_URL) is theirs. The app's containers wait.
        job_envs = service_envs[primary.name]
        if args.jobs_facts is not None:
            job_facts = {**facts, **args.jobs_facts}
            job_envs = service_env_lines(primary, job_facts, {**backend_secrets, "DATABASE_URL": job_facts["db.url"]})
        outcomes = tenant_jobs(names, tenant, plan, primary.image, job_envs, network, mounts["backend"], on_host)
        on_host = pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(depends_on=outcomes))
        for service in services:
            size = service.size
            containers = []
            for index in range(derive.replica_count(plan, tenant, service.name)):
                container = docker.Container(
                    names.container(service.name, index),
                    image=service.image,
                    envs=service_envs[service.name],
                    labels=[docker.ContainerLabelArgs(label=key, value=value) for key, value in derive.labels(tenant, service.name).items()],
                    memory=size.memory_mb,
                    memory_swap=size.memory_mb,  # no swap beyond the limit
                    cpus=derive.cpus_value(size.cpu),
                    restart="unless-stopped",
                    # Created means healthy: the route's upstreams come from this container, so a new container
                    # (an update, a move to another host) takes traffic only once its health check passes; the
                    # one it replaces goes after that. `wait` changes nothing of a running container.
                    wait=True,
                    wait_timeout=derive.HEALTHY_WAIT_SECONDS,
                    healthcheck=docker.ContainerHealthcheckArgs(
                        tests=["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{service.port}{service.health_path}"],
                        interval="30s",
                        timeout="5s",
                        retries=3,
                        start_period="20s",
                    ),
                    networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[service.name])],
                    ports=[docker.ContainerPortArgs(internal=service.port, ip="127.0.0.1")],
                    mounts=mounts[service.env] or None,
                    opts=on_host,
                )
                containers.append(container)
            self.upstreams[service.name] = pulumi.Output.all(*[c.ports for c in containers]).apply(
                lambda all_ports: [f"{upstream_host}:{_external_port(ports_)}" for ports_ in all_ports]
            )

        for worker_name, worker in sorted(plan.workers.items()):
            # The backend's env (secrets included) and volumes; no port, no route, no health check over HTTP.
            for index in range(derive.worker_count(plan, tenant, worker_name)):
                docker.Container(
                    names.worker(worker_name, index),
                    image=worker.image or primary.image,  # a worker of the primary service's image follows its version
                    command=list(worker.command),
                    envs=service_envs[primary.name],
                    labels=[docker.ContainerLabelArgs(label=key, value=value) for key, value in derive.worker_labels(tenant, worker_name).items()],
                    memory=worker.memory_mb,
                    memory_swap=worker.memory_mb,
                    cpus=derive.cpus_value(worker.cpu),
                    restart="unless-stopped",
                    networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[f"worker-{worker_name}"])],
                    mounts=mounts["backend"] or None,
                    opts=on_host,
                )

        self.register_outputs({"upstreams": self.upstreams})


def tenant_jobs(names, tenant: TenantSpec, plan: Plan, image: str, envs, network, mounts, on_host) -> list[pulumi.Resource]:
    """A one-shot container per plan job (its command, the backend's image and env), and the outcome that fails the
    tenant's `up` on a non-zero exit with the tail of its output. `when` decides what runs it again: `create` nothing,
    `version` a new app version (image), `always` every `up`."""
    if tenant.status != "active":
        return []
    outcomes: list[pulumi.Resource] = []
    for name, job in sorted(derive.container_jobs(tenant, plan).items()):
        ignored = {"create": ["image", "envs", "labels"], "version": ["envs", "labels"], "always": []}[job.when]
        labels = {**derive.labels(tenant, "backend"), "component": "job", "job": name}
        if job.when == "always":
            labels["run"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")  # a new container each up
        container = docker.Container(
            names.job(name),
            image=job.image or image,
            command=list(job.command),
            envs=envs,
            labels=[docker.ContainerLabelArgs(label=key, value=value) for key, value in labels.items()],
            memory=job.memory_mb,
            memory_swap=job.memory_mb,
            cpus=derive.cpus_value(job.cpu),
            must_run=False,
            attach=True,  # the provider waits for it to end...
            logs=True,  # ...and keeps its output
            restart="no",
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[f"job-{name}"])],
            mounts=mounts or None,
            opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(ignore_changes=ignored)),
        )
        outcomes.append(
            JobOutcome(
                names.job_outcome(name),
                JobOutcomeArgs(tenant=tenant.name, job=name, exit_code=container.exit_code, output=container.container_logs),
                opts=pulumi.ResourceOptions(parent=on_host.parent, depends_on=[container]),
            )
        )
    return outcomes


def dedicated_redis(names, tenant: TenantSpec, plan: Plan, environment: Environment, network, keepers, on_host, child) -> pulumi.Output[str]:
    """A tenant's own Redis container on its network (alias `redis`), password-protected; returns its REDIS_URL (secret).

    maxmemory is 90 % of the container's limit and nothing is evicted (queues must not lose jobs); no persistence:
    a replaced container starts empty."""
    password = random.RandomPassword(names.redis_password, length=derive.PASSWORD_LENGTH, special=False, keepers=keepers, opts=child)
    maxmemory = max(8, plan.redis_memory_mb * 9 // 10)
    envs: pulumi.Output[list[str]] = pulumi.Output.secret(password.result.apply(lambda value: [f"REDIS_PASSWORD={value}"]))
    if tenant.status == "active":
        docker.Container(
            names.redis_container,
            image=environment.images.redis,
            # The password comes from the env, not the command line (`docker inspect` and `ps` would show it).
            command=["sh", "-c", f'exec redis-server --requirepass "$REDIS_PASSWORD" --maxmemory {maxmemory}mb --maxmemory-policy noeviction --save "" --appendonly no'],
            envs=envs,
            labels=[docker.ContainerLabelArgs(label=key, value=value) for key, value in {**derive.labels(tenant, "backend"), "component": "redis"}.items()],
            memory=plan.redis_memory_mb,
            memory_swap=plan.redis_memory_mb,
            cpus="0.25",
            restart="unless-stopped",
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[derive.DEDICATED_REDIS_ALIAS])],
            opts=on_host,
        )
    return pulumi.Output.secret(password.result.apply(derive.dedicated_redis_url))


def rendered(template: str, facts: Mapping[str, pulumi.Input[str]]) -> pulumi.Input[str]:
    """A template's value: a string when every fact it references is one, else an Output (secret if any fact is)."""
    needed = sorted(env_template.references(template))
    if all(isinstance(facts[fact], str) for fact in needed):
        return env_template.render(template, {fact: str(facts[fact]) for fact in needed})
    value = pulumi.Output.all(*[facts[fact] for fact in needed]).apply(lambda values: env_template.render(template, dict(zip(needed, values))))
    return pulumi.Output.secret(value) if set(needed) & env_template.SECRET_FACTS else value


def declared_secrets(
    tenant: TenantSpec, plan: Plan, app_secrets: Optional[pulumi.Input[dict]], keepers: dict[str, str], opts: pulumi.ResourceOptions
) -> dict[str, pulumi.Input[str]]:
    """The backend's `secrets:` (its plan's, then its own): generated per tenant, or read from `fleet:app_secrets`."""
    values: dict[str, pulumi.Input[str]] = {}
    for name, source in sorted(plan.secrets.merged_with(tenant.secrets).backend.items()):
        if source.generate is not None:
            password = random.RandomPassword(
                derive.generated_secret_name(tenant, name), length=source.generate, special=False, keepers=keepers, opts=opts
            )
            values[name] = password.result
        else:
            key = source.config

            def pick(secrets: Optional[dict], key: Optional[str] = key, name: str = name) -> str:
                if not secrets or key not in secrets:
                    raise KeyError(f"tenant {tenant.name}: secrets.backend.{name} reads fleet:app_secrets.{key}, which is not set")
                return str(secrets[key])

            values[name] = pulumi.Output.secret(pulumi.Output.from_input(app_secrets or {}).apply(pick))
    return values


def _external_port(ports) -> int:
    """The host port Docker published for a container's only port (typed output or plain dict under mocks)."""
    first = ports[0]
    return first["external"] if isinstance(first, dict) else first.external
