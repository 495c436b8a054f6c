"""What the operations know about a stack: each tenant's spec, plan, server, names and credentials.
"""


from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.model.spec import (
    Environment,
    Fleet,
    Plan,
    PostgresServer,
    Retention,
    TenantSpec,
    absolute_folder,
)
from fleet.offline.plan import stack_config
from fleet.ops.secrets import (
    DATABASE_PASSWORD_ENV,
    DATABASE_PASSWORDS_OUTPUT,
    SERVER_PASSWORD_ENV,
    ChainedSecrets,
    EngineSecrets,
    EnvSecrets,
    SecretSource,
    env_suffix,
    fleet_error,
)
from fleet.paths import PROJECT_ROOT
from fleet.postgres.access import ServerAccess

# ---------------------------------------------------------------- the inventory


@dataclass(frozen=True)
class TenantEntry:
    """One tenant as the operations commands see it: spec, plan, placement and every derived name."""

    spec: TenantSpec
    plan: Plan
    server_key: str
    server: PostgresServer
    database: str
    """Its database (fleet.model.derive.database_name)."""
    role: str
    """Its login role (fleet.model.derive.role_name)."""
    owner: str
    """Its NOLOGIN owner role, owner of its database (fleet.model.derive.owner_role_name)."""
    hostnames: tuple[str, ...]
    """api-, app- and custom domains (fleet.model.derive.hostnames)."""
    api_hostname: str
    frontend_hostnames: tuple[str, ...]
    health_paths: dict[str, str] = field(default_factory=dict)
    """The health-check path per hostname, of the service that serves it (fleet.model.derive.routes)."""
    volumes: dict[str, str] = field(default_factory=dict)
    """Its volume folders on the app host by name (fleet.model.derive.volume_folders)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def plan_name(self) -> str:
        return self.spec.plan

    @property
    def active(self) -> bool:
        """Whether the tenant is active (not suspended)."""
        return self.spec.status == "active"

    @property
    def retention(self) -> Retention:
        """Its backup tiers (fleet.model.derive.retention: its own, its plan's, or the plan's days)."""
        return derive.retention(self.spec, self.plan)

    @property
    def retention_days(self) -> int:
        """The daily tier of its retention."""
        return self.retention.daily

    @property
    def connection_limit(self) -> int:
        """Its role's planned connection limit (the plan's db_connections)."""
        return self.plan.db_connections

    def to_mapping(self) -> dict[str, Any]:
        """JSON-able facts (no secrets)."""
        return {
            "tenant": self.name,
            "plan": self.plan_name,
            "status": self.spec.status,
            "server": self.server_key,
            "host": self.server.host,
            "port": self.server.port,
            "database": self.database,
            "role": self.role,
            "owner": self.owner,
            "hostnames": list(self.hostnames),
        }


def tenant_entry(tenant: TenantSpec, plan: Plan, environment: Environment) -> TenantEntry:
    """A tenant's entry from its spec (all names through fleet.model.derive)."""
    return TenantEntry(
        spec=tenant,
        plan=plan,
        server_key=tenant.database.server,
        server=environment.servers[tenant.database.server],
        database=derive.database_name(tenant),
        role=derive.role_name(tenant),
        owner=derive.owner_role_name(tenant),
        hostnames=tuple(derive.hostnames(tenant, environment)),
        api_hostname=derive.api_hostname(tenant, environment),
        frontend_hostnames=tuple(derive.frontend_hostnames(tenant, environment)),
        health_paths={host: route.health_path for route in derive.routes(plan, tenant, environment) for host in route.hostnames},
        volumes=derive.volume_folders(tenant, plan, environment),
    )


class Inventory:
    """Every tenant of a stack with its placement and names, and how to log in (from a SecretSource)."""

    def __init__(
        self,
        fleet: Fleet,
        secrets: SecretSource,
        *,
        stack: str = "dev",
        root: Optional[Path] = None,
        backups_dir: Optional[str | os.PathLike[str]] = None,
    ) -> None:

        self.fleet = fleet
        self.secrets = secrets
        self.stack = stack
        self.root = Path(root or PROJECT_ROOT)
        self.environment: Environment = fleet.environment
        self.tenants: dict[str, TenantEntry] = {
            tenant.name: tenant_entry(tenant, fleet.plan_of(tenant), fleet.environment) for tenant in fleet.tenants
        }
        self.backups_dir = self.environment.backups.folder(self.root) if backups_dir is None else absolute_folder(backups_dir, self.root)
        """Folder of the tenants' backups (`fleet:backups.dir`, or the `backups_dir` given; relative to the project root)."""

    @property
    def pg_bin(self) -> Optional[str]:
        """`fleet:backups.pg_bin` (None: pgtools finds pg_dump/pg_restore)."""
        return self.environment.backups.pg_bin

    def select(self, names: Optional[Iterable[str]] = None) -> list[TenantEntry]:
        """The named tenants (all when None), sorted; an unknown name is an error that lists the known ones."""
        if names is None:
            return [self.tenants[name] for name in sorted(self.tenants)]
        wanted = list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in self.tenants]
        if unknown:
            raise fleet_error(f"unknown tenant(s) {', '.join(unknown)} in stack {self.stack}; tenants: {', '.join(sorted(self.tenants)) or 'none'}")
        return [self.tenants[name] for name in sorted(wanted)]

    def tenant(self, name: str) -> TenantEntry:
        """One tenant by name."""
        return self.select([name])[0]

    def on_server(self, server_key: str) -> list[TenantEntry]:
        """The tenants whose database is on a server."""
        return [entry for entry in self.select() if entry.server_key == server_key]

    def server_password(self, server_key: str) -> str:
        """The admin password of a server, or an error saying where it was looked for."""
        if server_key not in self.environment.servers:
            raise fleet_error(f"unknown server {server_key!r}; servers: {', '.join(sorted(self.environment.servers))}")
        password = self.secrets.server_password(server_key)
        if not password:
            raise fleet_error(
                f"no admin password for server {server_key} (looked in: {self.secrets.description}); set "
                f"{SERVER_PASSWORD_ENV}{env_suffix(server_key)}, pass --secrets FILE, or deploy the stack with "
                f"`pulumi config set --secret --path 'fleet:server_passwords.{server_key}' ...`"
            )
        return password

    def tenant_password(self, tenant: str) -> str:
        """A tenant role's password, or an error saying where it was looked for."""
        password = self.secrets.database_password(tenant)
        if not password:
            raise fleet_error(
                f"no database password for tenant {tenant} (looked in: {self.secrets.description}); set "
                f"{DATABASE_PASSWORD_ENV}{env_suffix(tenant)}, pass --secrets FILE, or deploy the stack (output {DATABASE_PASSWORDS_OUTPUT})"
            )
        return password

    def app_env(self, tenant: str) -> Optional[dict[str, list[str]]]:
        """A tenant's generated app env (service -> lines), from a source that knows it (the deployed stack), else None."""
        reader = getattr(self.secrets, "app_env", None)
        return reader(tenant) if reader is not None else None

    def admin_access(self, server_key: str):
        """pgtools.ServerAccess to a server as its admin."""

        server = self.environment.servers[server_key]
        return ServerAccess(server.host, server.port, server.admin_user, self.server_password(server_key), server.sslmode)

    def tenant_access(self, name: str):
        """pgtools.ServerAccess to a tenant's server as the tenant's own role (what its app logs in as)."""

        entry = self.tenant(name)
        return ServerAccess(entry.server.host, entry.server.port, entry.role, self.tenant_password(name), entry.server.sslmode)


def load_inventory(
    stack: str = "dev",
    *,
    root: Optional[Path] = None,
    tenants_dir: Optional[Path] = None,
    config: Optional[Mapping[str, Any] | Environment] = None,
    secrets: Optional[SecretSource] = None,
    backups_dir: Optional[str | os.PathLike[str]] = None,
) -> Inventory:
    """The inventory of a stack: `config` (the `fleet:` values) or `<root>/Pulumi.<stack>.yaml`, and the tenant files.

    Honours `fleet:tenants` (a shard's selection). Raises SpecError for an invalid spec, like `fleet plan`.
    """

    root = Path(root or PROJECT_ROOT)
    tenants_dir = Path(tenants_dir or root / "tenants")
    if config is None:
        config = stack_config(stack, root)
    environment = config if isinstance(config, Environment) else dict(config)
    fleet = load_fleet(tenants_dir, environment, root=tenants_dir.parent, environment_display=f"Pulumi.{stack}.yaml")
    if fleet.environment.tenants is not None:
        fleet = fleet.select(set(fleet.environment.tenants))
    return Inventory(fleet, secrets or ChainedSecrets(EnvSecrets(), EngineSecrets(stack, root)), stack=stack, root=root, backups_dir=backups_dir)
