"""Tenant: everything one tenant owns, composed from the per-concern components."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.app import TenantApp, TenantAppArgs
from components.backup import ScheduledBackup, ScheduledBackupArgs
from components.cache import TenantRedis, TenantRedisArgs
from components.database import TenantDatabase, TenantDatabaseArgs, tenant_purge
from components.proxy import TenantRoutes, TenantRoutesArgs
from fleet.model import derive, type_tokens
from fleet.model.spec import Environment, Plan, TenantSpec


@dataclass(frozen=True)
class Platform:
    """Shared resources tenants attach to: one provider per PostgreSQL server, the Docker and DNS providers, the proxy server."""

    backup_dir: str
    """Absolute backups folder (`fleet:backups.dir` resolved by the program): scheduled backups and purges write there."""
    postgres: dict[str, pulumi.ProviderResource] = field(default_factory=dict)
    """postgresql providers by server key."""
    docker: dict[str, pulumi.ProviderResource] = field(default_factory=dict)
    """docker providers by app host key (`default` and fleet:docker_hosts)."""
    dns: Optional[pulumi.ProviderResource] = None
    """The Cloudflare provider (only with dns mode cloudflare)."""
    proxy: Optional[pulumi.Resource] = None
    """The proxy server resource."""
    server_passwords: Optional[pulumi.Input[dict]] = None
    """Admin password per server key (secret, `fleet:server_passwords`), for the fleet's own PostgreSQL resources (placement, purge)."""
    redis_password: Optional[pulumi.Input[str]] = None
    """The shared Redis admin's password (secret, `fleet:redis_password`), for tenants whose plan has `redis: shared`."""
    app_secrets: Optional[pulumi.Input[dict]] = None
    """The stack's secret `fleet:app_secrets`, for `secrets: {NAME: {config: <key>}}`."""
    project_root: Optional[str] = None
    """The repository (the plan's migrations and `modules/`)."""


@dataclass(frozen=True)
class TenantArgs:
    """Inputs of Tenant."""

    tenant: TenantSpec
    """The validated tenant spec."""
    plan: Plan
    """The tenant's plan."""
    environment: Environment
    """The stack's environment."""
    platform: Platform
    """Shared providers and the proxy server."""


class Tenant(pulumi.ComponentResource):
    """One tenant: database and role, app containers, DNS records and proxy routes, for the layers this stack manages.

    A tenant whose file carries `purge:` declares only its purge (see components.database.tenant_purge).
    """

    spec: TenantSpec
    urls: dict[str, str]
    database: Optional[TenantDatabase]
    purge: Optional[pulumi.Resource]
    """The TenantPurge of a tenant whose file asks for a purge (then `database` is None)."""
    redis: Optional[TenantRedis]
    """Its Redis user, when its plan has `redis: shared`."""

    def env_facts(self, plan: Plan, environment: Environment) -> dict[str, pulumi.Input[str]]:
        """What the app's env templates may reference (fleet.model.env_template.FACTS), for this tenant."""
        assert self.database is not None
        facts: dict[str, pulumi.Input[str]] = {**derive.static_env_facts(self.spec, plan, environment)}
        facts.update(
            {
                "db.host": self.database.host,
                "db.port": self.database.port.apply(str),
                "db.password": self.database.password,
                "db.url": self.database.database_url,
            }
        )
        if self.redis is not None:
            facts["redis.url"] = self.redis.url
        return facts

    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("Tenant"), name, None, opts)
        tenant, plan, environment, platform = args.tenant, args.plan, args.environment, args.platform
        names = derive.names(tenant)
        child = pulumi.ResourceOptions(parent=self)
        self.spec = tenant
        self.environment = environment

        # A purge request replaces everything: no app, routes or DNS; instead of the role, database and
        # placement, only the purge (final backup, then drop) is declared.
        purged = tenant.purge is not None
        self.database = None
        self.purge = None
        if environment.manages("database"):
            if purged:
                self.purge = tenant_purge(tenant, environment, platform.server_passwords or {}, platform.backup_dir, opts=child)
            else:
                self.database = TenantDatabase(
                    names.database_component,
                    TenantDatabaseArgs(tenant, plan, environment, platform.postgres[tenant.database.server], platform.server_passwords or {}, platform.project_root),
                    opts=child,
                )

        self.redis = None
        if environment.manages("database") and plan.redis == "shared" and not purged:
            self.redis = TenantRedis(names.redis_component, TenantRedisArgs(tenant, environment, platform.redis_password), opts=child)

        self.app_env: Optional[dict[str, pulumi.Output[list[str]]]] = None
        service_names = [service.name for service in derive.services(plan, tenant, environment)]
        upstreams: dict[str, pulumi.Input[list[str]]] = dict(derive.external_upstreams(tenant, environment, service_names))
        if environment.manages("app") and not purged:
            # Environment refuses app without database, and build_platform declares the docker provider with app.
            assert self.database is not None and tenant.app.host in platform.docker
            host_provider = platform.docker[tenant.app.host]
            app = TenantApp(
                names.app_component,
                TenantAppArgs(
                    tenant, plan, environment, host_provider, self.env_facts(plan, environment), platform.app_secrets,
                    # The jobs run before the containers are (re)created: a new version starts on a migrated database.
                    after=[self.database.migrations] if self.database.migrations is not None else [],
                    jobs_facts=self.database.jobs_facts,
                ),
                opts=child,
            )
            upstreams = dict(app.upstreams)
            self.app_env = app.env
            if environment.images.ops:
                ScheduledBackup(
                    names.backup_component,
                    ScheduledBackupArgs(
                        tenant,
                        plan,
                        environment,
                        host_provider,
                        self.database.password,
                        environment.images.ops,
                        platform.backup_dir,
                        environment.backups.schedule,
                        app_env=app.env if environment.backups.env_recipient else None,
                    ),
                    opts=child,
                )

        if environment.manages("dns") and environment.dns.mode == "cloudflare" and not purged:
            from components.dns import (  # imports pulumi_cloudflare: only when used
                TenantDns,
                TenantDnsArgs,
            )

            assert platform.dns is not None  # build_platform declares it for dns mode cloudflare
            TenantDns(names.dns_component, TenantDnsArgs(tenant, environment, platform.dns), opts=child)

        if environment.manages("proxy") and not purged:
            TenantRoutes(names.proxy_component, TenantRoutesArgs(tenant, plan, environment, upstreams, platform.proxy), opts=child)

        self.urls = {}
        if not purged:
            self.urls = {
                "api": derive.public_url(derive.api_hostname(tenant, environment), environment),
                "app": derive.public_url(derive.app_hostname(tenant, environment), environment),
                **{domain: derive.public_url(domain, environment) for domain in tenant.custom_domains},
            }
        self.register_outputs({"urls": self.urls})
