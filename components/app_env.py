"""A tenant's app env per service, computed once for every runtime (Docker containers, Kubernetes Secrets).

What each service gets: its plain env (fleet.model.derive.service_env), the declared `env:` templates rendered
against the tenant's facts, and, for backend-kind services, the secrets (DATABASE_URL, JWT secrets, REDIS_URL,
declared `secrets:`). Values that come from resources stay Outputs, and the whole env is secret when any part is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_random as random

from fleet.model import derive, env_template
from fleet.model.spec import Environment, Plan, TenantSpec


@dataclass(frozen=True)
class ServiceEnv:
    """One service's env: plain values, and values that are Outputs (secrets, or rendered from resources)."""

    plain: dict[str, str]
    secret: dict[str, pulumi.Input[str]]

    def mapping(self) -> pulumi.Output[dict[str, str]]:
        """The env as one mapping (secret when it holds a secret or an Output)."""
        merged = pulumi.Output.from_input(self.secret).apply(lambda values: {**self.plain, **{key: str(value) for key, value in values.items()}})
        return pulumi.Output.secret(merged) if self.secret else merged

    def lines(self) -> pulumi.Output[list[str]]:
        """The env as sorted `NAME=value` lines, as Docker takes it (secret when it holds a secret or an Output)."""

        def env_lines(secret_values: Mapping[str, object], env: dict[str, str] = self.plain) -> list[str]:
            return sorted(f"{key}={value}" for key, value in {**env, **secret_values}.items())

        env_list = pulumi.Output.from_input(self.secret).apply(env_lines)
        # Annotated: mypy can't infer Output.secret()'s type from an Output argument alone.
        envs: pulumi.Output[list[str]] = pulumi.Output.secret(env_list) if self.secret else env_list
        return envs


def secret_env(
    names: derive.Names,
    tenant: TenantSpec,
    plan: Plan,
    facts: Mapping[str, pulumi.Input[str]],
    app_secrets: Optional[pulumi.Input[dict]],
    keepers: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> dict[str, dict[str, pulumi.Input[str]]]:
    """The secrets per env kind: the backend's DATABASE_URL, JWT secrets (generated here, kept per `rotation`),
    REDIS_URL and declared `secrets:`; the frontend's none (its env is public)."""
    jwt_secret = random.RandomPassword(names.jwt_secret, length=derive.JWT_SECRET_LENGTH, special=False, keepers=keepers, opts=opts)
    jwt_refresh = random.RandomPassword(names.jwt_refresh_secret, length=derive.JWT_SECRET_LENGTH, special=False, keepers=keepers, opts=opts)
    return {
        "backend": {
            "DATABASE_URL": facts["db.url"],
            "JWT_SECRET": jwt_secret.result,
            "JWT_REFRESH_SECRET": jwt_refresh.result,
            **({"REDIS_URL": facts["redis.url"]} if "redis.url" in facts else {}),
            **declared_secrets(tenant, plan, app_secrets, keepers, opts),
        },
        "frontend": {},
    }


def service_envs(
    tenant: TenantSpec,
    plan: Plan,
    environment: Environment,
    facts: Mapping[str, pulumi.Input[str]],
    secrets_by_kind: Mapping[str, Mapping[str, pulumi.Input[str]]],
) -> dict[str, ServiceEnv]:
    """Each service's env (fleet.model.derive.services), by service name."""
    declared_env = plan.env.merged_with(tenant.env)
    envs: dict[str, ServiceEnv] = {}
    for service in derive.services(plan, tenant, environment):
        env: dict[str, str] = derive.service_env(tenant, plan, environment, service)
        templates: dict[str, str] = getattr(declared_env, service.env)
        if service.env == "backend" and "app-" in service.routes:
            templates = {**declared_env.frontend, **declared_env.backend}  # it renders the pages too
        secrets = dict(secrets_by_kind[service.env])
        for key, template in templates.items():
            value = rendered(template, facts)
            if isinstance(value, str):
                env[key] = value
            else:  # from a resource's output (or a secret): with the secrets, which are Outputs too
                secrets[key] = value
        envs[service.name] = ServiceEnv(env, secrets)
    return envs


def jobs_env_lines(
    tenant: TenantSpec,
    plan: Plan,
    environment: Environment,
    facts: Mapping[str, pulumi.Input[str]],
    secrets_by_kind: Mapping[str, Mapping[str, pulumi.Input[str]]],
    primary: str,
    jobs_facts: Optional[Mapping[str, pulumi.Input[str]]],
) -> pulumi.Output[list[str]]:
    """The plan's jobs' env: the primary service's, rendered as the jobs' own login when they have one. DATABASE_URL
    and every `db.*` fact (`DIRECT_URL: ${db.url}`, which Prisma migrates through) are then that login's."""
    if jobs_facts is not None:
        facts = {**facts, **jobs_facts}
        secrets_by_kind = {**secrets_by_kind, "backend": {**secrets_by_kind["backend"], "DATABASE_URL": facts["db.url"]}}
    return service_envs(tenant, plan, environment, facts, secrets_by_kind)[primary].lines()


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
