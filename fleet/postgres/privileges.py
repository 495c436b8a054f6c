"""A tenant database's access, applied with SQL: its owner role owns everything, its app role gets the rest.

The lists come from fleet.model.privileges, which the program also declares with the official resources.
Used by the handover of tenants created before the owner/app split, and by restores (a restored database
gets the same access before the app sees it). See docs/isolation.md.
"""


from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from fleet.model import privileges
from fleet.postgres.access import PgToolsError, ServerAccess, first_line

LOCK_TIMEOUT = "30s"
"""How long the handover waits for a table lock (ALTER ... OWNER locks each table) before giving up, changing nothing."""

_SCHEMAS = """
    select nspname from pg_namespace
    where nspname not in ('pg_catalog', 'information_schema') and nspname not like 'pg\\_%%'
      and not exists (select 1 from pg_depend d where d.classid = 'pg_namespace'::regclass and d.objid = pg_namespace.oid and d.deptype = 'e')
    order by 1
"""


@dataclass
class AccessReport:
    """What applying a tenant's access changed."""

    database: str
    reassigned: int = 0
    """Objects (the database included) the app role owned and the owner role owns now."""
    schemas: list[str] = field(default_factory=list)
    """Schemas the app role was granted USAGE and CREATE on."""


def _privileges(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(name) for name in names)


def _owned_by(connection: psycopg.Connection, role: str) -> int:
    """Objects `role` owns in the connected database, plus the shared ones (the database itself)."""
    row = connection.execute(
        """
        select count(*) from pg_shdepend s join pg_roles r on r.oid = s.refobjid
        where r.rolname = %s and s.deptype = 'o'
          and s.dbid in (0, (select oid from pg_database where datname = current_database()))
        """,
        [role],
    ).fetchone()
    return int(row[0]) if row else 0


def apply_tenant_access(access: ServerAccess, database: str, owner: str, app: str) -> AccessReport:
    """In one transaction on `database`: hand everything `app` owns to `owner`, make `owner` the database's
    owner, revoke PUBLIC's CONNECT and TEMPORARY, and grant `app` what the model lists, on what exists and
    (default privileges) on what `owner` creates later. Idempotent; no row is read or written.

    Both roles must exist. The app's open sessions keep working: its privileges are granted in the same
    transaction that takes its ownership away.
    """
    report = AccessReport(database)
    owner_id, app_id, database_id = sql.Identifier(owner), sql.Identifier(app), sql.Identifier(database)
    try:
        with access.connect(database, autocommit=False) as connection:
            connection.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            report.reassigned = _owned_by(connection, app)
            if report.reassigned:
                connection.execute(sql.SQL("reassign owned by {} to {}").format(app_id, owner_id))
            connection.execute(sql.SQL("alter database {} owner to {}").format(database_id, owner_id))
            connection.execute(sql.SQL("revoke all on database {} from public").format(database_id))
            connection.execute(
                sql.SQL("grant {} on database {} to {}").format(_privileges(privileges.APP_DATABASE_PRIVILEGES), database_id, app_id)
            )
            for (schema,) in connection.execute(_SCHEMAS).fetchall():
                schema_id = sql.Identifier(schema)
                report.schemas.append(schema)
                for statement in (
                    "grant {privileges} on schema {schema} to {app}",
                    "grant {tables} on all tables in schema {schema} to {app}",
                    "grant {sequences} on all sequences in schema {schema} to {app}",
                    "grant {functions} on all routines in schema {schema} to {app}",
                ):
                    connection.execute(
                        sql.SQL(statement).format(
                            privileges=_privileges(privileges.APP_SCHEMA_PRIVILEGES),
                            tables=_privileges(privileges.APP_TABLE_PRIVILEGES),
                            sequences=_privileges(privileges.APP_SEQUENCE_PRIVILEGES),
                            functions=_privileges(privileges.APP_FUNCTION_PRIVILEGES),
                            schema=schema_id,
                            app=app_id,
                        )
                    )
            for object_type, names in privileges.DEFAULT_PRIVILEGES.items():
                connection.execute(
                    sql.SQL("alter default privileges for role {} grant {} on {} to {}").format(
                        owner_id, _privileges(names), sql.SQL({"table": "tables", "sequence": "sequences", "function": "routines"}[object_type]), app_id
                    )
                )
            large_objects = connection.execute(
                "select l.oid from pg_largeobject_metadata l join pg_roles r on r.oid = l.lomowner where r.rolname = %s", [owner]
            ).fetchall()
            for (oid,) in large_objects:
                connection.execute(sql.SQL("grant select, update on large object {} to {}").format(sql.Literal(int(oid)), app_id))
    except psycopg.Error as error:
        raise PgToolsError(f"could not apply the access of {owner}/{app} to database {database!r} on {access.label}: {first_line(error)}") from None
    return report


def lock_shared_databases(access: ServerAccess) -> list[str]:
    """Revoke PUBLIC's CONNECT and TEMPORARY on the server's shared databases (`postgres`, `template1`); returns them.

    What the platform's per-server grants declare; the admin (a superuser) still connects."""
    locked = []
    with access.connect() as connection:
        present = {name for (name,) in connection.execute("select datname from pg_database where datname = any(%s)", [list(privileges.SHARED_DATABASES)])}
        for name in privileges.SHARED_DATABASES:
            if name in present:
                connection.execute(sql.SQL("revoke connect, temporary on database {} from public").format(sql.Identifier(name)))
                locked.append(name)
    return locked


def shared_databases_open_to_public(access: ServerAccess) -> dict[str, list[str]]:
    """Per shared database still granting PUBLIC something: which of CONNECT and TEMPORARY (empty when locked)."""
    with access.connect() as connection:
        rows = connection.execute(
            """
            select datname, has_database_privilege('public', oid, 'CONNECT'), has_database_privilege('public', oid, 'TEMPORARY')
            from pg_database where datname = any(%s) order by 1
            """,
            [list(privileges.SHARED_DATABASES)],
        ).fetchall()
    return {name: [what for what, on in (("CONNECT", can_connect), ("TEMPORARY", can_temp)) if on] for name, can_connect, can_temp in rows if can_connect or can_temp}
