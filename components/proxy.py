"""The shared proxy and each tenant's routes on it (Caddy, driven through its admin API).

The proxy server is declared once per stack; each tenant's routes are resources of their own, so
adding, changing or removing one tenant changes only that tenant's route objects in Caddy: no
reload of anyone else's route, no restart of the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.providers.caddy import (
    CaddyRoute,
    CaddyRouteArgs,
    CaddyServer,
    CaddyServerArgs,
)
from fleet.model import derive, type_tokens
from fleet.model.spec import Environment, Plan, TenantSpec

NOT_FOUND_BODY = "tenant not found"


def proxy_server(environment: Environment) -> CaddyServer:
    """The Caddy HTTP server holding every tenant route, with a terminal 404 catch-all behind them."""
    proxy = environment.proxy
    return CaddyServer(
        derive.PROXY_SERVER_NAME,
        CaddyServerArgs(
            admin_url=proxy.admin_url,
            server=proxy.server,
            listen=list(proxy.listen),
            automatic_https=proxy.automatic_https,
            not_found_body=NOT_FOUND_BODY,
        ),
    )


@dataclass(frozen=True)
class TenantRoutesArgs:
    """Inputs of TenantRoutes."""

    tenant: TenantSpec
    """The tenant whose hostnames are routed."""
    plan: Plan
    """Its plan (which service serves which hostnames)."""
    environment: Environment
    """The stack's environment (proxy admin API, base domain)."""
    upstreams: dict[str, pulumi.Input[list[str]]]
    """Dial addresses per service (`backend`, `frontend`, or the plan's service names)."""
    server: Optional[pulumi.Resource] = None
    """The proxy server resource the routes live in (a dependency, so routes come after it and go before it)."""


class TenantRoutes(pulumi.ComponentResource):
    """A route per group of hostnames to the service serving them (fleet.model.derive.routes); a maintenance page while suspended.

    The default shape routes `api-<name>` and its api_domains to the backend, `app-<name>` and its domains to the frontend."""

    def __init__(self, name: str, args: TenantRoutesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("TenantRoutes"), name, None, opts)
        tenant, environment = args.tenant, args.environment
        names = derive.names(tenant)
        depends = [args.server] if args.server is not None else []
        for route in derive.routes(args.plan, tenant, environment):
            CaddyRoute(
                names.route(route.key),
                CaddyRouteArgs(
                    admin_url=environment.proxy.admin_url,
                    server=environment.proxy.server,
                    route_id=route.route_id,
                    hosts=list(route.hostnames),
                    upstreams=args.upstreams.get(route.service, []),
                    maintenance=derive.app_stopped(tenant),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        self.register_outputs({})

