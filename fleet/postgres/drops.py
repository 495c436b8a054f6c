"""Dropping a tenant's objects, database and role: only for an explicit purge after a final backup.
"""


from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from fleet.postgres.access import ServerAccess
from fleet.postgres.catalog import user_objects


def drop_owned_objects(access: ServerAccess, database: str, role: str, *, keep_extensions: Iterable[str] = ()) -> list[str]:
    """Undo a restore made with `restore(..., owner_role=role)`: DROP OWNED BY `role` inside `database`,
    and drop extensions not in `keep_extensions`. The database itself (a shared object) stays.

    Returns the user objects still left (`user_objects`), so the caller can tell whether it is empty again.
    """

    keep = set(keep_extensions)
    with access.connect(database) as connection:
        for (name,) in connection.execute("select extname from pg_extension").fetchall():
            if name not in keep:
                connection.execute(sql.SQL("drop extension if exists {} cascade").format(sql.Identifier(name)))
        connection.execute(sql.SQL("drop owned by {} cascade").format(sql.Identifier(role)))
    return user_objects(access, database)


# ---------------------------------------------------------------- dropping (purge only)


def drop_database(access: ServerAccess, database: str) -> bool:
    """DROP DATABASE ... WITH (FORCE) (ends its sessions); False when it did not exist."""

    with access.connect() as connection:
        if connection.execute("select 1 from pg_database where datname = %s", [database]).fetchone() is None:
            return False
        connection.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(database)))
    return True


def drop_role(access: ServerAccess, role: str) -> bool:
    """DROP ROLE (never REASSIGN/DROP OWNED: a role that still owns something elsewhere makes this fail); False when absent."""

    with access.connect() as connection:
        if connection.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone() is None:
            return False
        connection.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
    return True
