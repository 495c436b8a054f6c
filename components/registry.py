"""TenantRegistry: the registry table and one row per declared tenant (see components.providers.registry).

Declared once per stack when `fleet:registry: {server, database}` is set:
`declare_registry(fleet, server_passwords)` returns None when no registry is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from components.providers.registry import (
    TenantRegistryRow,
    TenantRegistryRowArgs,
    TenantRegistryTable,
    TenantRegistryTableArgs,
)
from fleet.model import derive, type_tokens
from fleet.model.spec import Environment, Fleet, Plan, TenantSpec

REGISTRY_COMPONENT_NAME = derive.REGISTRY_COMPONENT_NAME


@dataclass(frozen=True)
class RegistrySettings:
    """Where the registry lives (the `fleet:registry` stack config)."""

    server: str
    """Key of a server in `fleet:servers`; the provider logs in as its admin (`fleet:server_passwords.<server>`)."""
    database: str
    """Registry database on that server; created when missing."""
    table: str = "tenants"
    """Table name."""
    schema: str = "public"
    """Schema of the table."""
    readers: tuple[str, ...] = ()
    """Roles that may read every column but the password."""
    credentials_reader: Optional[str] = None
    """The shared app's role: rows then carry each tenant's database password, readable by it alone."""

    @classmethod
    def from_config(cls, value: Any) -> Optional["RegistrySettings"]:
        """From `environment.registry` (a pydantic model or a mapping); None when not configured."""
        if value is None:
            return None
        data = value.model_dump() if hasattr(value, "model_dump") else dict(value)
        settings = {key: data[key] for key in ("server", "database", "table", "schema", "credentials_reader") if data.get(key) is not None}
        return cls(**settings, readers=tuple(data.get("readers") or ()))


def row_values(tenant: TenantSpec, plan: Plan, environment: Environment) -> dict[str, Any]:
    """A tenant's registry row (names and limits only; never a password), from the spec through fleet.model.derive."""
    server = environment.servers[tenant.database.server]
    return {
        "name": tenant.name,
        "display_name": tenant.display_name,
        "plan": tenant.plan,
        "user_limit": plan.user_limit,
        "connections_limit": plan.connections_limit,
        "db_connections": plan.db_connections,
        "backup_retention_days": plan.backup_retention_days,
        "status": "purged" if tenant.purge is not None else tenant.status,
        "db_host": server.app_host or server.host,
        "db_port": server.port,
        "db_name": derive.database_name(tenant),
        "db_user": derive.role_name(tenant),
        "hostnames": derive.hostnames(tenant, environment),
        "custom_domains": list(tenant.custom_domains),
        "limits": derive.effective_limits(tenant, plan),
        "contact_name": tenant.contact.name,
        "contact_email": tenant.contact.email,
        "contact_phone": tenant.contact.phone,
        "subscription_status": tenant.subscription.status,
        "subscription_expires": tenant.subscription.expires.isoformat() if tenant.subscription.expires else None,
        "region": tenant.region,
        "app_version": derive.app_version(tenant, plan),
        "modules": list(tenant.modules),
        "jobs": {},  # the program passes what the tenant's jobs did (registry_row's `jobs`)
    }


@dataclass(frozen=True)
class TenantRegistryArgs:
    """Inputs of TenantRegistry."""

    settings: RegistrySettings
    """Where the registry lives."""
    environment: Environment
    """The stack's environment (servers, base domain)."""
    plans: dict[str, Plan]
    """The plan catalog (limits go into the rows)."""
    tenants: Sequence[TenantSpec]
    """The tenants this stack declares: one row each."""
    admin_password: pulumi.Input[str]
    """Admin password of the registry's server (a secret)."""
    locations: Optional[Mapping[str, tuple[pulumi.Input[str], pulumi.Input[int]]]] = None
    """Where each tenant's data is (host, port) as its placement reports it; rows follow a move only once it succeeded."""
    passwords: Optional[Mapping[str, pulumi.Input[str]]] = None
    """Each tenant's database password (secret), written into its row only with a credentials reader."""
    jobs: Optional[Mapping[str, pulumi.Input[dict]]] = None
    """What each tenant's jobs did last (components.database.TenantDatabase.job_results)."""


class TenantRegistry(pulumi.ComponentResource):
    """The registry table and one row per tenant."""

    table: TenantRegistryTable
    rows: dict[str, TenantRegistryRow]

    def __init__(self, name: str, args: TenantRegistryArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(type_tokens.COMPONENT_TYPE.format("TenantRegistry"), name, None, opts)
        location = registry_location(args.settings, args.environment, args.admin_password)
        self.table = TenantRegistryTable(
            derive.registry_table_name(name),
            TenantRegistryTableArgs(table=args.settings.table, readers=args.settings.readers, credentials_reader=args.settings.credentials_reader, **location),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.rows = {}
        for tenant in sorted(args.tenants, key=lambda spec: spec.name):
            # The table output (not the plain name) orders every row after the table exists.
            password = (args.passwords or {}).get(tenant.name) if args.settings.credentials_reader else None
            self.rows[tenant.name] = registry_row(
                tenant, args.plans[tenant.plan], args.environment, location, self.table.table,
                (args.locations or {}).get(tenant.name), name=name, opts=pulumi.ResourceOptions(parent=self), password=password,
                jobs=(args.jobs or {}).get(tenant.name),
            )
        self.register_outputs({"table": self.table.qualified_name})


def registry_location(settings: RegistrySettings, environment: Environment, admin_password: pulumi.Input[str]) -> dict[str, Any]:
    """Where the registry table is and how its provider logs in (the admin password stays a secret)."""
    if settings.server not in environment.servers:
        raise ValueError(f"registry server {settings.server!r} is not in fleet:servers ({', '.join(sorted(environment.servers))})")
    server = environment.servers[settings.server]
    return {
        "host": server.host,
        "port": server.port,
        "admin_user": server.admin_user,
        "admin_password": pulumi.Output.secret(admin_password),
        "sslmode": server.sslmode,
        "database": settings.database,
        "schema": settings.schema,
    }


def registry_row(
    tenant: TenantSpec,
    plan: Plan,
    environment: Environment,
    location: dict[str, Any],
    table: pulumi.Input[str],
    database_at: Optional[tuple[pulumi.Input[str], pulumi.Input[int]]] = None,
    *,
    name: str = REGISTRY_COMPONENT_NAME,
    opts: Optional[pulumi.ResourceOptions] = None,
    password: Optional[pulumi.Input[str]] = None,
    jobs: Optional[pulumi.Input[dict]] = None,
) -> TenantRegistryRow:
    """One tenant's row; `database_at` is (host, port) as the tenant's placement reports it; `password` only for a
    credentials reader; `jobs` what its jobs did last."""
    values: dict[str, Any] = row_values(tenant, plan, environment)
    if database_at is not None:
        values["db_host"], values["db_port"] = database_at
    if jobs is not None:
        values["jobs"] = jobs
    return TenantRegistryRow(derive.registry_row_name(tenant, name), TenantRegistryRowArgs(table=table, **location, **values, db_password=password), opts=opts)


def tenant_stack_registry_row(
    tenant: TenantSpec,
    fleet: Fleet,
    server_passwords: Optional[pulumi.Output],
    database_at: Optional[tuple[pulumi.Input[str], pulumi.Input[int]]] = None,
    password: Optional[pulumi.Input[str]] = None,
    jobs: Optional[pulumi.Input[dict]] = None,
) -> Optional[TenantRegistryRow]:
    """A tenant stack's own registry row (`fleet:stacks: per-tenant`), at the stack's root: the table is the platform's."""
    settings = RegistrySettings.from_config(getattr(fleet.environment, "registry", None))
    if settings is None:
        return None
    location = registry_location(settings, fleet.environment, _admin_password(server_passwords, settings))
    return registry_row(
        tenant, fleet.plan_of(tenant), fleet.environment, location, settings.table, database_at,
        password=password if settings.credentials_reader else None, jobs=jobs,
    )


def _admin_password(server_passwords: Optional[pulumi.Output], settings: RegistrySettings) -> pulumi.Input[str]:
    if server_passwords is None:
        return ""
    return server_passwords.apply(lambda passwords: (passwords or {}).get(settings.server, ""))


def declare_registry(
    fleet: Fleet,
    server_passwords: Optional[pulumi.Output],
    settings: Optional[RegistrySettings] = None,
    name: str = REGISTRY_COMPONENT_NAME,
    locations: Optional[Mapping[str, tuple[pulumi.Input[str], pulumi.Input[int]]]] = None,
    passwords: Optional[Mapping[str, pulumi.Input[str]]] = None,
    jobs: Optional[Mapping[str, pulumi.Input[dict]]] = None,
) -> Optional[TenantRegistry]:
    """The registry of a fleet when one is configured (`settings`, else `fleet:registry`); None otherwise."""
    settings = settings or RegistrySettings.from_config(getattr(fleet.environment, "registry", None))
    if settings is None:
        return None
    password = _admin_password(server_passwords, settings)
    return TenantRegistry(
        name,
        TenantRegistryArgs(settings, fleet.environment, fleet.plans, list(fleet.tenants), pulumi.Output.secret(password), locations, passwords, jobs),
    )
