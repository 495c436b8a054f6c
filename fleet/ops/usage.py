"""What the apps report they use, read from the tenant registry's `usage` column (for the PR summary's warnings)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from fleet.errors import FleetError
from fleet.preview.usage import Usage, checked_usage


def registry_usage(inventory) -> tuple[Usage, str]:
    """(usage by tenant, a description with the newest report's time) from the registry of the inventory's stack."""
    registry = inventory.environment.registry
    if registry is None:
        raise FleetError("--usage registry: the stack config sets no fleet:registry")
    access = inventory.admin_access(registry.server)
    query = sql.SQL("SELECT name, usage, usage_at FROM {} WHERE active").format(sql.Identifier(registry.table))
    try:
        with access.connect(registry.database) as connection:
            rows: list[Any] = connection.execute(query).fetchall()
    except psycopg.Error as error:
        raise FleetError(f"--usage registry: can't read {registry.database}.{registry.table} on {access.label}: {str(error).splitlines()[0]}") from None
    usage = checked_usage({name: counts or {} for name, counts, _ in rows}, "the registry's usage column")
    newest = max((at for _, _, at in rows if at is not None), default=None)
    return usage, f"registry, reported {newest:%Y-%m-%d %H:%M} UTC" if newest else "registry"
