"""TenantDatabase: a tenant's owner and login roles, its database, their grants and its placement, on one PostgreSQL server.

Also the purge of a purged tenant (`tenant_purge`): the final backup and drop of its database and role.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pulumi
import pulumi_postgresql as postgresql
import pulumi_random as random

from components.providers.first_admin import TenantFirstAdmin, TenantFirstAdminArgs, sql_digest
from components.providers.handover import OwnerHandover, OwnerHandoverArgs
from components.providers.migrations import TenantMigrations, TenantMigrationsArgs
from components.providers.postgres import (
    DatabasePlacement,
    DatabasePlacementArgs,
    TenantPurge,
    TenantPurgeArgs,
)
from components.providers.role_settings import RoleSettings, RoleSettingsArgs
from fleet.model import db_limits, derive, privileges, type_tokens
from fleet.model.migration_sources import digest
from fleet.model.spec import Environment, Plan, TenantSpec


def server_access(environment: Environment, server_passwords: Optional[pulumi.Input[dict]]) -> pulumi.Output[dict[str, Any]]:
    """Admin access to every server of the stack, as the PostgreSQL dynamic resources take it (secret)."""

    def build(passwords: Optional[dict]) -> dict[str, Any]:
        return {
            key: {
                "host": server.host,
                "port": server.port,
                "admin_user": server.admin_user,
                "admin_password": str((passwords or {}).get(key) or ""),
                "sslmode": server.sslmode,
            }
            for key, server in sorted(environment.servers.items())
        }

    return pulumi.Output.secret(pulumi.Output.from_input(server_passwords or {}).apply(build))


@dataclass(frozen=True)
class TenantDatabaseArgs:
    """Inputs of TenantDatabase."""

    tenant: TenantSpec
    """The tenant whose database this is."""
    plan: Plan
    """The tenant's plan (sets the role's connection limit)."""
    environment: Environment
    """The stack's environment (server host, port, locale)."""
    provider: pulumi.ProviderResource
    """The postgresql provider of the tenant's server."""
    server_passwords: Optional[pulumi.Input[dict]] = None
    """Admin password per server key (secret): the placement needs the old and the new server's to move data."""
    project_root: Optional[str] = None
    """The repository, where the plan's migrations and `modules/` are (none declared without it)."""


class TenantDatabase(pulumi.ComponentResource):
    """A NOLOGIN owner role that owns the database and its objects, a login role for the app with a generated
    password and only the privileges of fleet.model.privileges (docs/isolation.md), PUBLIC's CONNECT/TEMPORARY
    revoked, and the placement that records (and on a server change, moves) where the data is.

    The roles and database are kept on the server when they leave the program (retain_on_delete), and
    the roles' delete would not drop anything even if it ran (skip_drop_role, skip_reassign_owned):
    removing a tenant file never drops its data. A server change declares new roles and a new database on
    the target (the server key is in their names); the placement copies the data into them and only
    then do `host`, `port` and `database_url` (what the app uses) change. The OwnerHandover before the
    database gives the database of a tenant created before the owner/app split to its owner role.
    """

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    server: pulumi.Output[str]
    database_name: pulumi.Output[str]
    role_name: pulumi.Output[str]
    owner_role_name: pulumi.Output[str]
    password: pulumi.Output[str]
    database_url: pulumi.Output[str]
    placement: DatabasePlacement

    def __init__(self, name: str, args: TenantDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("TenantDatabase"), name, None, opts)
        tenant, environment = args.tenant, args.environment
        names = derive.names(tenant)
        server_key = tenant.database.server
        server = environment.servers[server_key]
        on_server = pulumi.ResourceOptions(parent=self, provider=args.provider)
        keep = pulumi.ResourceOptions(retain_on_delete=True)
        servers = server_access(environment, args.server_passwords)
        # Noisy-neighbour limits (fleet.model.db_limits): the timeouts on the official Role, work_mem and
        # temp_file_limit through RoleSettings, the database's own connection limit; all changed in place.
        app_limits = db_limits.app_role_limits(tenant, args.plan)
        has_jobs = bool(derive.container_jobs(tenant, args.plan))

        password = random.RandomPassword(
            names.password,
            length=derive.PASSWORD_LENGTH,
            special=False,  # goes into a connection URL unescaped
            keepers={"rotation": str(tenant.rotation)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        owner = postgresql.Role(
            names.owner_role(server_key),
            name=derive.owner_role_name(tenant),
            login=False,
            connection_limit=0,  # never logs in; 0 keeps it so should LOGIN ever be switched on by hand
            skip_drop_role=True,
            skip_reassign_owned=True,
            opts=pulumi.ResourceOptions.merge(on_server, keep),
        )
        role = postgresql.Role(
            names.role(server_key),
            name=derive.role_name(tenant),
            login=tenant.status == "active",
            password=password.result,
            connection_limit=args.plan.db_connections,
            statement_timeout=app_limits.statement_timeout_ms,
            idle_in_transaction_session_timeout=app_limits.idle_in_transaction_timeout_ms,
            encrypted_password=True,
            skip_drop_role=True,
            skip_reassign_owned=True,
            opts=pulumi.ResourceOptions.merge(on_server, keep),
        )
        RoleSettings(
            names.role_settings(server_key),
            RoleSettingsArgs(tenant=tenant.name, role=role.name, server=server_key, servers=servers, settings=app_limits.memory_settings()),
            opts=pulumi.ResourceOptions(parent=self),
        )
        handover = OwnerHandover(
            names.handover(server_key),
            OwnerHandoverArgs(
                tenant=tenant.name,
                database=derive.database_name(tenant),
                owner=owner.name,
                role=role.name,
                server=server_key,
                servers=servers,
            ),
            # Before the Database: an existing tenant's database changes owner here, in one transaction with the
            # app role's new grants, and the Database's owner update then finds nothing left to do.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[owner, role]),
        )
        database = postgresql.Database(
            names.database(server_key),
            name=derive.database_name(tenant),
            owner=owner.name,
            # Set once: a change to any of these forces a new database.
            template="template0",
            encoding="UTF8",
            lc_collate=server.locale,
            lc_ctype=server.locale,
            allow_connections=True,
            connection_limit=db_limits.database_connection_limit(tenant, args.plan, jobs=has_jobs),
            opts=pulumi.ResourceOptions.merge(on_server, pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(depends_on=[handover]))),
        )
        # Grants go with their database when it leaves the program (moved away, removed, purged) without a
        # REVOKE: the retained database keeps its access as it was. A drifted grant replaced create-then-delete
        # ends up deleted (pulumi-postgresql#233), hence delete_before_replace.
        grant_options = pulumi.ResourceOptions.merge(on_server, pulumi.ResourceOptions(delete_before_replace=True, deleted_with=database))
        grant = postgresql.Grant(
            names.revoke_public(server_key),
            database=database.name,
            role="public",
            object_type="database",
            privileges=[],
            opts=grant_options,
        )
        app_grants = [
            postgresql.Grant(
                names.app_grant(server_key, "database"),
                database=database.name,
                role=role.name,
                object_type="database",
                privileges=list(privileges.APP_DATABASE_PRIVILEGES),
                opts=grant_options,
            ),
            postgresql.Grant(
                names.app_grant(server_key, "schema"),
                database=database.name,
                role=role.name,
                schema="public",
                object_type="schema",
                privileges=list(privileges.APP_SCHEMA_PRIVILEGES),
                opts=grant_options,
            ),
            *(
                postgresql.DefaultPrivileges(
                    names.app_default_privileges(server_key, object_type),
                    database=database.name,
                    owner=owner.name,
                    role=role.name,
                    object_type=object_type,
                    privileges=list(granted),
                    opts=grant_options,
                )
                for object_type, granted in privileges.DEFAULT_PRIVILEGES.items()
            ),
        ]
        placement = DatabasePlacement(
            derive.names(tenant).placement,
            DatabasePlacementArgs(
                tenant=tenant.name,
                database=database.name,
                role=role.name,
                server=server_key,
                host=server.app_host or server.host,
                port=server.port,
                servers=servers,
                pg_bin=environment.backups.pg_bin,
                owner=owner.name,
            ),
            # After the target's roles, database and grants exist; a failed move fails this resource, and
            # everything that reads its outputs (the app's DATABASE_URL) stays as it was.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[owner, role, database, grant, *app_grants]),
        )

        self.placement = placement
        self.migrations: Optional[TenantMigrations] = None
        sources = derive.migration_sources(tenant, args.plan, Path(args.project_root)) if args.project_root else {}
        if sources:
            self.migrations = TenantMigrations(
                names.migrations,
                TenantMigrationsArgs(
                    tenant=tenant.name,
                    database=placement.database,
                    owner=owner.name,
                    role=role.name,
                    server=placement.server,
                    servers=servers,
                    sources=[{"name": name, "folder": str(folder), "digest": digest(folder)} for name, folder in sources.items()],
                ),
                # After the data is where the placement says (a move first, then the migrations run there).
                opts=pulumi.ResourceOptions(parent=self, depends_on=[placement, *app_grants]),
            )
        # What the jobs did last, for the registry: empty until a plan declares migrations.
        self.job_results: Optional[pulumi.Output[dict]] = (
            pulumi.Output.all(self.migrations.last_applied, self.migrations.last_run).apply(
                lambda parts: {"migrations": {"applied": parts[0] or {}, "at": parts[1]}}
            )
            if self.migrations is not None
            else None
        )
        self.jobs_url: Optional[pulumi.Output[str]] = None
        self.jobs_facts: Optional[dict[str, pulumi.Input[str]]] = None
        """The `db.*` env facts as the container jobs' own login sees them (user, password, url), when it has jobs."""
        if has_jobs:
            # The container jobs' own login: it becomes the owner role at login, so an ORM's migrations create
            # tables the owner owns (the app's role could not, and the owner never logs in itself).
            jobs_password = random.RandomPassword(
                names.jobs_password, length=derive.PASSWORD_LENGTH, special=False, keepers={"rotation": str(tenant.rotation)},
                opts=pulumi.ResourceOptions(parent=self),
            )
            jobs_limits = db_limits.jobs_role_limits(tenant, args.plan)
            jobs_role = postgresql.Role(
                names.jobs_role(server_key),
                name=derive.jobs_role_name(tenant),
                login=tenant.status == "active",
                password=jobs_password.result,
                connection_limit=db_limits.JOBS_CONNECTIONS,
                statement_timeout=jobs_limits.statement_timeout_ms,
                idle_in_transaction_session_timeout=jobs_limits.idle_in_transaction_timeout_ms,
                roles=[owner.name],
                assume_role=owner.name,
                encrypted_password=True,
                skip_drop_role=True,
                skip_reassign_owned=True,
                opts=pulumi.ResourceOptions.merge(on_server, keep),
            )
            RoleSettings(
                names.jobs_role_settings(server_key),
                RoleSettingsArgs(tenant=tenant.name, role=jobs_role.name, server=server_key, servers=servers, settings=jobs_limits.memory_settings()),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.jobs_url = pulumi.Output.secret(
                pulumi.Output.all(jobs_password.result, placement.host, placement.port, jobs_role.name).apply(
                    lambda parts: derive.database_url(tenant, environment, parts[0], parts[1], parts[2], user=parts[3])
                )
            )
            self.jobs_facts = {"db.user": jobs_role.name, "db.password": pulumi.Output.secret(jobs_password.result), "db.url": self.jobs_url}
        self.admin: Optional[dict[str, pulumi.Input[str]]] = None
        email = derive.admin_email(tenant)
        if args.plan.first_admin and args.project_root and email:
            sql_file = Path(args.project_root) / args.plan.first_admin
            admin_password = random.RandomPassword(
                names.admin_password, length=32, special=False, keepers={"rotation": str(tenant.admin.rotation)}, opts=pulumi.ResourceOptions(parent=self)
            )
            TenantFirstAdmin(
                names.first_admin,
                TenantFirstAdminArgs(
                    tenant=tenant.name, database=placement.database, owner=owner.name, role=role.name, server=placement.server, servers=servers,
                    sql_file=str(sql_file), digest=sql_digest(sql_file), email=email, password=admin_password.result,
                ),
                # After the migrations that create the app's users table.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[placement, *([self.migrations] if self.migrations else [])]),
            )
            self.admin = {"email": email, "password": pulumi.Output.secret(admin_password.result)}
        self.server = placement.server
        self.host = placement.host
        self.port = placement.port
        self.database_name = database.name
        self.role_name = role.name
        self.owner_role_name = owner.name
        self.password = pulumi.Output.secret(password.result)
        self.database_url = pulumi.Output.secret(
            pulumi.Output.all(password.result, placement.host, placement.port).apply(
                lambda parts: derive.database_url(tenant, environment, parts[0], parts[1], parts[2])
            )
        )
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "server": self.server,
                "database_name": self.database_name,
                "role_name": self.role_name,
                "owner_role_name": self.owner_role_name,
                "password": self.password,
            }
        )


def tenant_purge(
    tenant: TenantSpec,
    environment: Environment,
    server_passwords: Optional[pulumi.Input[dict]],
    backup_dir: str,
    opts: Optional[pulumi.ResourceOptions] = None,
) -> TenantPurge:
    """The purge of a tenant whose file carries `purge:`: final backup to `backup_dir`, then DROP DATABASE and ROLE.

    Declared instead of the role, database, grant and placement: those leave the program (retained, so
    the engine never drops anything itself) and this resource's create does the backup and the drops.
    """
    assert tenant.purge is not None, "tenant_purge needs a tenant with purge set"
    return TenantPurge(
        derive.names(tenant).purge,
        TenantPurgeArgs(
            tenant=tenant.name,
            confirm=tenant.purge.confirm,
            database=derive.database_name(tenant),
            role=derive.role_name(tenant),
            server=tenant.database.server,
            servers=server_access(environment, server_passwords),
            backup_dir=backup_dir,
            reason=tenant.purge.reason,
            pg_bin=environment.backups.pg_bin,
            owner=derive.owner_role_name(tenant),
            jobs_role=derive.jobs_role_name(tenant),
        ),
        opts=opts,
    )
