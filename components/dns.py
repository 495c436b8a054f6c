"""TenantDns: Cloudflare records for a tenant's hostnames. Imported only when `dns.mode` is `cloudflare`.

Importing pulumi_cloudflare costs seconds and a lot of memory, so nothing imports this module when
DNS is `none` (see components/tenant.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare

from fleet.model import derive, type_tokens
from fleet.model.spec import Environment, TenantSpec


def cloudflare_provider(name: str) -> pulumi.ProviderResource:
    """The shared Cloudflare provider; the API token comes from `cloudflare:apiToken` (secret) or CLOUDFLARE_API_TOKEN."""
    return cloudflare.Provider(name)


@dataclass(frozen=True)
class TenantDnsArgs:
    """Inputs of TenantDns."""

    tenant: TenantSpec
    """The tenant whose hostnames are published."""
    environment: Environment
    """The stack's environment (zones, record target)."""
    provider: pulumi.ProviderResource
    """The Cloudflare provider."""


class TenantDns(pulumi.ComponentResource):
    """One proxied record per hostname in a zone we manage; other custom domains are listed for the customer to point at us."""

    hostnames: list[str]
    unmanaged_domains: list[str]

    def __init__(self, name: str, args: TenantDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("TenantDns"), name, None, opts)
        names = derive.names(args.tenant)
        records = derive.dns_records(args.tenant, args.environment)
        for record in records:
            cloudflare.DnsRecord(
                names.dns_record(record.hostname),
                zone_id=record.zone_id,
                name=record.hostname,
                type=record.type,
                content=record.content,
                ttl=1,  # automatic, required with proxied records
                proxied=True,
                comment=f"tenant-fleet: {args.tenant.name}",
                # Changing the type on the same name fails unless the old record goes first (pulumi-cloudflare#687).
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, delete_before_replace=True),
            )
        self.hostnames = [record.hostname for record in records]
        self.unmanaged_domains = derive.unmanaged_domains(args.tenant, args.environment)
        self.register_outputs({"hostnames": self.hostnames, "unmanaged_domains": self.unmanaged_domains})
