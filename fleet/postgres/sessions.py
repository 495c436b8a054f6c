"""Sessions of a tenant database: list them, block new ones, end them, and reopen as it was.
"""


from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Optional

from psycopg import sql

from fleet.postgres.access import FLEET_APPLICATION_NAME, PgToolsError, ServerAccess


def prepared_transactions(access: ServerAccess, database: str) -> list[str]:
    """Global ids of prepared (two-phase) transactions pending in the database: their writes are in no dump yet."""
    with access.connect() as connection:
        return [gid for (gid,) in connection.execute("select gid from pg_prepared_xacts where database = %s", [database])]


def other_sessions(access: ServerAccess, database: str, *, include_fleet: bool = True) -> list[dict[str, Any]]:
    """Client sessions connected to `database` other than the caller's: pid, user, application, state (WAL
    senders, such as a live move's, and autovacuum workers are not clients: left out).

    `include_fleet=False` leaves out this tool's own connections (application_name `tenant-fleet`),
    e.g. one that has just been closed and whose server process has not exited yet.
    """
    with access.connect() as connection:
        return [
            {"pid": pid, "user": user, "application": application, "state": state}
            for pid, user, application, state in connection.execute(
                "select pid, usename, application_name, state from pg_stat_activity where datname = %s and pid <> pg_backend_pid()"
                " and backend_type = 'client backend'",
                [database],
            )
            if include_fleet or application != FLEET_APPLICATION_NAME
        ]


# ---------------------------------------------------------------- blocking a database


@dataclass(frozen=True)
class BlockState:
    """What `block_connections` changed, so `reopen` can put it back exactly."""

    database: str
    """The blocked database."""
    connection_limit: int
    """Its CONNECTION LIMIT before (-1: none)."""
    limited: bool
    """Whether CONNECTION LIMIT 0 was applied (only when the admin is a superuser, which the limit exempts)."""
    role: Optional[str] = None
    """The tenant's role, whose LOGIN was switched off (None: no role given, or it does not exist there)."""
    role_could_login: Optional[bool] = None
    """Its LOGIN before."""
    comment: Optional[str] = None
    """The database's COMMENT before."""
    commented: bool = False
    """Whether the block replaced that COMMENT (`block_connections(..., comment=...)`); `reopen` puts it back."""

    def to_mapping(self) -> dict[str, Any]:
        """JSON-able form (e.g. for a provider's outputs, or a COMMENT recording how to reopen)."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "BlockState":
        """Inverse of `to_mapping`."""
        return cls(
            database=data["database"],
            connection_limit=int(data["connection_limit"]),
            limited=bool(data["limited"]),
            role=data.get("role"),
            role_could_login=data.get("role_could_login"),
            comment=data.get("comment"),
            commented=bool(data.get("commented", False)),
        )


def block_connections(
    access: ServerAccess,
    database: str,
    role: Optional[str] = None,
    *,
    comment: Optional[Callable[[BlockState], str]] = None,
) -> BlockState:
    """Refuse new connections to `database`: CONNECTION LIMIT 0 (superusers, like the admin, are exempt)
    and `role` NOLOGIN. Sessions already open stay: end them with `terminate_sessions`.

    With an admin that is not a superuser the limit would lock the admin out too, so only the role's
    LOGIN is switched off then. `comment`, if given, gets the state before the block and returns a
    COMMENT to set on the database in the same transaction: a record, on the server itself, of how to
    reopen it should the caller die before it can (see `reopen`). Returns what was changed.
    """

    with access.connect() as connection:
        row = connection.execute(
            "select datconnlimit, datallowconn, shobj_description(oid, 'pg_database') from pg_database where datname = %s", [database]
        ).fetchone()
        if row is None:
            raise PgToolsError(f"database {database!r} does not exist on {access.label}")
        if not row[1]:
            raise PgToolsError(f"database {database!r} on {access.label} does not allow connections (datallowconn is false)")
        superuser = bool(connection.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0])
        could_login = None
        if role is not None:
            role_row = connection.execute("select rolcanlogin from pg_roles where rolname = %s", [role]).fetchone()
            could_login = None if role_row is None else bool(role_row[0])
        state = BlockState(database, int(row[0]), superuser, role if could_login is not None else None, could_login, row[2], comment is not None)
        with connection.transaction():
            if superuser:
                connection.execute(sql.SQL("alter database {} connection limit 0").format(sql.Identifier(database)))
            if could_login and role is not None:  # could_login is only set when a role was given
                connection.execute(sql.SQL("alter role {} nologin").format(sql.Identifier(role)))
            if comment is not None:
                connection.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(database), sql.Literal(comment(state))))
    return state


def terminate_sessions(access: ServerAccess, database: str, *, timeout: float = 30.0) -> int:
    """End every other session on `database` and wait until they are gone; returns how many were ended.

    Their open transactions roll back; what they committed stays. WAL senders are spared: a live move's
    subscription streams through one until the target has everything. Raises when sessions keep coming
    back after `timeout` (a superuser reconnecting: the connection limit does not stop superusers).
    """
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    with access.connect() as connection:
        while True:
            pids = [
                pid
                for (pid,) in connection.execute(
                    "select pid from pg_stat_activity where datname = %s and pid <> pg_backend_pid() and backend_type <> 'walsender'", [database]
                )
            ]
            if not pids:
                return len(ended)
            for pid in pids:
                if connection.execute("select pg_terminate_backend(%s)", [pid]).fetchone()[0]:
                    ended.add(pid)
            if time.monotonic() > deadline:
                raise PgToolsError(f"sessions on {database!r} on {access.label} did not end within {timeout:.0f}s (pids {pids})")
            time.sleep(0.01)


def reopen(access: ServerAccess, state: BlockState) -> None:
    """Undo `block_connections`: the connection limit, the role's LOGIN and the COMMENT exactly as they were."""

    with access.connect() as connection, connection.transaction():
        if state.limited:
            connection.execute(
                sql.SQL("alter database {} connection limit {}").format(sql.Identifier(state.database), sql.Literal(int(state.connection_limit)))
            )
        if state.role is not None and state.role_could_login:
            connection.execute(sql.SQL("alter role {} login").format(sql.Identifier(state.role)))
        if state.commented:
            connection.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(state.database), sql.Literal(state.comment)))
