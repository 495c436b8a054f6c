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
from fleet.model.spec import Environment, TenantSpec

NOT_FOUND_BODY = "tenant not found"


def proxy_server(environment: Environment) -> CaddyServer:
    """The Caddy HTTP server holding every tenant route, with a terminal 404 catch-all behind them (and on-demand TLS when asked)."""
    proxy = environment.proxy
    return CaddyServer(
        derive.PROXY_SERVER_NAME,
        CaddyServerArgs(
            admin_url=proxy.admin_url,
            server=proxy.server,
            listen=list(proxy.listen),
            automatic_https=proxy.automatic_https,
            not_found_body=NOT_FOUND_BODY,
            on_demand_ask=proxy.on_demand_tls.ask if proxy.on_demand_tls else None,
            on_demand_issuer=proxy.on_demand_tls.issuer if proxy.on_demand_tls else "acme",
        ),
    )


@dataclass(frozen=True)
class TenantRoutesArgs:
    """Inputs of TenantRoutes."""

    tenant: TenantSpec
    """The tenant whose hostnames are routed."""
    environment: Environment
    """The stack's environment (proxy admin API, base domain)."""
    upstreams: dict[str, pulumi.Input[list[str]]]
    """Dial addresses per role (`backend`, `frontend`)."""
    server: Optional[pulumi.Resource] = None
    """The proxy server resource the routes live in (a dependency, so routes come after it and go before it)."""


class TenantRoutes(pulumi.ComponentResource):
    """Routes `api-<name>` to the backend and `app-<name>` plus custom domains to the frontend; a maintenance page while suspended."""

    def __init__(self, name: str, args: TenantRoutesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("TenantRoutes"), name, None, opts)
        tenant, environment = args.tenant, args.environment
        names = derive.names(tenant)
        hosts = {"backend": derive.backend_hostnames(tenant, environment), "frontend": derive.frontend_hostnames(tenant, environment)}
        depends = [args.server] if args.server is not None else []
        for role in derive.APP_ROLES:
            CaddyRoute(
                names.route(role),
                CaddyRouteArgs(
                    admin_url=environment.proxy.admin_url,
                    server=environment.proxy.server,
                    route_id=derive.route_id(tenant, role),
                    hosts=hosts[role],
                    upstreams=args.upstreams[role],
                    maintenance=tenant.status == "suspended",
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        self.register_outputs({})

