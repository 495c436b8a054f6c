"""Which hostnames may get a certificate: a name as a TLS client sends it, normalised, and the active tenants' names.

`fleet ask` (Caddy's on-demand TLS `ask` endpoint) answers from these when the stack has no registry, and
normalises every name it is asked about with `normalised_hostname` either way.
"""

from __future__ import annotations

from typing import Optional

from fleet.model import derive
from fleet.model.spec import HOSTNAME, Fleet

MAX_HOSTNAME_LENGTH = 253


def normalised_hostname(raw: Optional[str]) -> Optional[str]:
    """`Shop.Example.COM.` -> `shop.example.com`; None for anything that is not a DNS hostname.

    Lowercased, one trailing dot dropped; refused: empty, longer than 253 characters, non-ASCII (SNI names are
    A-labels), IP addresses, ports, wildcards, paths, spaces, and labels that aren't letters, digits and `-`.
    """
    if not raw or raw != raw.strip() or not raw.isascii():
        return None
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_HOSTNAME_LENGTH or not HOSTNAME.match(name):
        return None
    return name


def active_hostnames(fleet: Fleet) -> dict[str, str]:
    """Hostname -> tenant for every active tenant (api-, app- and custom domains); suspended ones have none."""
    return {
        hostname: tenant.name
        for tenant in fleet.tenants
        if tenant.status == "active"
        for hostname in derive.hostnames(tenant, fleet.environment)
    }
