"""A tenant's roles and database on a test server, as the official postgresql resources of TenantDatabase leave them.

The official provider plugin can't run here, so tests provision with SQL: the owner role (NOLOGIN, limit 0),
the login role, the database owned by the owner, PUBLIC revoked, and the app's grants and default privileges
from fleet.model.privileges (the lists the program declares; tests/unit/test_program.py pins the declaration).
`legacy=True` leaves it as tenants created before the owner/app split are: the login role owns the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

from psycopg import sql

from fleet.postgres.access import ServerAccess
from fleet.postgres.privileges import apply_tenant_access
from fleet.postgres.role_settings import apply_role_settings


def owner_of(role: str) -> str:
    """The owner role's name for a login role named as fleet.model.derive names them (`tenant_x_app` -> `tenant_x_dbo`)."""
    assert role.endswith("_app"), role
    return role.removesuffix("_app") + "_dbo"


def cluster_access(cluster) -> ServerAccess:
    """Admin access to a test PostgresCluster (fleet.bench.servers)."""
    return ServerAccess(cluster.host, cluster.port, cluster.admin_user, cluster.admin_password, "disable")


def provision_tenant_database(
    access: ServerAccess,
    database: str,
    role: str,
    password: str,
    *,
    connection_limit: int = 10,
    login: bool = True,
    locale: str = "C.UTF-8",
    legacy: bool = False,
    settings: Optional[Mapping[str, str]] = None,
    database_connection_limit: int = -1,
) -> None:
    """Create or bring to the spec the tenant's roles and (if missing) its database; idempotent."""
    owner = owner_of(role)
    with access.connect() as admin:
        def ensure_role(name: str, options: sql.Composable) -> None:
            exists = admin.execute("select 1 from pg_roles where rolname = %s", [name]).fetchone()
            admin.execute(sql.SQL("{} role {} {}").format(sql.SQL("alter" if exists else "create"), sql.Identifier(name), options))

        ensure_role(
            role,
            sql.SQL("{} password {} connection limit {}").format(sql.SQL("login" if login else "nologin"), sql.Literal(password), sql.Literal(connection_limit)),
        )
        if not legacy:
            ensure_role(owner, sql.SQL("nologin connection limit 0"))
        if admin.execute("select 1 from pg_database where datname = %s", [database]).fetchone() is None:
            admin.execute(
                sql.SQL("create database {} owner {} template template0 encoding 'UTF8' lc_collate {} lc_ctype {}").format(
                    sql.Identifier(database), sql.Identifier(role if legacy else owner), sql.Literal(locale), sql.Literal(locale)
                )
            )
        admin.execute(sql.SQL("revoke connect, temporary on database {} from public").format(sql.Identifier(database)))
        admin.execute(sql.SQL("alter database {} connection limit {}").format(sql.Identifier(database), sql.Literal(database_connection_limit)))
    if settings:
        apply_role_settings(access, role, settings)  # the Role's timeouts and RoleSettings' work_mem, temp_file_limit
    if not legacy:
        apply_tenant_access(access, database, owner, role)
