"""TenantDatabase: a tenant's login role, its database and the isolation grant, on one PostgreSQL server."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql
import pulumi_random as random

from fleet import derive
from fleet.spec import Environment, Plan, TenantSpec


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


class TenantDatabase(pulumi.ComponentResource):
    """A login role with a generated password, a database it owns, and PUBLIC's CONNECT/TEMPORARY revoked.

    The role and database are kept on the server when they leave the program (retain_on_delete), and
    the role's delete would not drop anything even if it ran (skip_drop_role, skip_reassign_owned):
    removing a tenant file never drops its data.
    """

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database_name: pulumi.Output[str]
    role_name: pulumi.Output[str]
    password: pulumi.Output[str]
    database_url: pulumi.Output[str]

    def __init__(self, name: str, args: TenantDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(derive.COMPONENT_TYPE.format("TenantDatabase"), name, None, opts)
        tenant, environment = args.tenant, args.environment
        names = derive.names(tenant)
        server_key = tenant.database.server
        server = environment.servers[server_key]
        on_server = pulumi.ResourceOptions(parent=self, provider=args.provider)
        keep = pulumi.ResourceOptions(retain_on_delete=True)

        password = random.RandomPassword(
            names.password,
            length=derive.PASSWORD_LENGTH,
            special=False,  # goes into a connection URL unescaped
            keepers={"rotation": str(tenant.rotation)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        role = postgresql.Role(
            names.role(server_key),
            name=derive.role_name(tenant),
            login=tenant.status == "active",
            password=password.result,
            connection_limit=args.plan.db_connections,
            encrypted_password=True,
            skip_drop_role=True,
            skip_reassign_owned=True,
            opts=pulumi.ResourceOptions.merge(on_server, keep),
        )
        database = postgresql.Database(
            names.database(server_key),
            name=derive.database_name(tenant),
            owner=role.name,
            # Set once: a change to any of these forces a new database.
            template="template0",
            encoding="UTF8",
            lc_collate=server.locale,
            lc_ctype=server.locale,
            allow_connections=True,
            opts=pulumi.ResourceOptions.merge(on_server, keep),
        )
        postgresql.Grant(
            names.revoke_public(server_key),
            database=database.name,
            role="public",
            object_type="database",
            privileges=[],
            # A drifted grant replaced create-then-delete ends up deleted (pulumi-postgresql#233).
            opts=pulumi.ResourceOptions.merge(on_server, pulumi.ResourceOptions(delete_before_replace=True)),
        )

        self.host = pulumi.Output.from_input(server.app_host or server.host)
        self.port = pulumi.Output.from_input(server.port)
        self.database_name = database.name
        self.role_name = role.name
        self.password = pulumi.Output.secret(password.result)
        self.database_url = pulumi.Output.secret(
            pulumi.Output.all(password.result, database.name).apply(lambda parts: derive.database_url(tenant, environment, parts[0]))
        )
        self.register_outputs(
            {"host": self.host, "port": self.port, "database_name": self.database_name, "role_name": self.role_name, "password": self.password}
        )
