"""Tenant: everything one tenant owns, composed from the per-concern components."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.database import TenantDatabase, TenantDatabaseArgs
from components.proxy import TenantRoutes, TenantRoutesArgs
from fleet import derive
from fleet.spec import Environment, Plan, TenantSpec


@dataclass(frozen=True)
class Platform:
    """Shared resources tenants attach to: one provider per PostgreSQL server, the Docker and DNS providers, the proxy server."""

    postgres: dict[str, pulumi.ProviderResource] = field(default_factory=dict)
    """postgresql providers by server key."""
    docker: Optional[pulumi.ProviderResource] = None
    """The docker provider of the app host."""
    dns: Optional[pulumi.ProviderResource] = None
    """The Cloudflare provider (only with dns mode cloudflare)."""
    proxy: Optional[pulumi.Resource] = None
    """The proxy server resource."""


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
    """One tenant: database and role, app containers, DNS records and proxy routes, for the layers this stack manages."""

    spec: TenantSpec
    urls: dict[str, str]
    database: Optional[TenantDatabase]

    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(derive.COMPONENT_TYPE.format("Tenant"), name, None, opts)
        tenant, plan, environment, platform = args.tenant, args.plan, args.environment, args.platform
        names = derive.names(tenant)
        child = pulumi.ResourceOptions(parent=self)
        self.spec = tenant

        self.database = None
        if environment.manages("database"):
            self.database = TenantDatabase(
                names.database_component,
                TenantDatabaseArgs(tenant, plan, environment, platform.postgres[tenant.database.server]),
                opts=child,
            )

        upstreams: dict[str, pulumi.Input[list[str]]] = dict(derive.external_upstreams(tenant, environment))
        if environment.manages("app"):
            from components.app import TenantApp, TenantAppArgs

            app = TenantApp(
                names.app_component,
                TenantAppArgs(tenant, plan, environment, platform.docker, self.database.database_url),
                opts=child,
            )
            upstreams = dict(app.upstreams)

        if environment.manages("dns") and environment.dns.mode == "cloudflare":
            from components.dns import TenantDns, TenantDnsArgs  # imports pulumi_cloudflare: only when used

            TenantDns(names.dns_component, TenantDnsArgs(tenant, environment, platform.dns), opts=child)

        if environment.manages("proxy"):
            TenantRoutes(names.proxy_component, TenantRoutesArgs(tenant, environment, upstreams, platform.proxy), opts=child)

        self.urls = {
            "api": derive.public_url(derive.api_hostname(tenant, environment), environment),
            "app": derive.public_url(derive.app_hostname(tenant, environment), environment),
            **{domain: derive.public_url(domain, environment) for domain in tenant.domains},
        }
        self.register_outputs({"urls": self.urls})
