"""A role's own settings (`ALTER ROLE ... SET`), applied and read back as the server stores them.

Used by the RoleSettings provider (work_mem, temp_file_limit), by `fleet verify` (drift of every limit
fleet.model.db_limits derives) and by the tests, which apply exactly the derived values.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from fleet.postgres.access import ServerAccess

SETTING_NAMES = frozenset({"statement_timeout", "idle_in_transaction_session_timeout", "work_mem", "temp_file_limit"})
"""The settings the fleet manages on a tenant's roles; any other name is refused (they reach SQL as identifiers)."""


def apply_role_settings(access: ServerAccess, role: str, settings: Mapping[str, str]) -> None:
    """`ALTER ROLE role SET name = value` for each setting, in one transaction (new sessions get them).

    Values are sent as literals and checked by the server (`work_mem = '4096kB'`); names must be in SETTING_NAMES.
    """
    unknown = sorted(set(settings) - SETTING_NAMES)
    if unknown:
        raise ValueError(f"not a setting the fleet manages: {', '.join(unknown)}")
    with access.connect(autocommit=False) as connection, connection.transaction():
        for name, value in sorted(settings.items()):
            connection.execute(
                sql.SQL("ALTER ROLE {} SET {} = {}").format(sql.Identifier(role), sql.Identifier(name), sql.Literal(str(value)))
            )


def role_settings(access: ServerAccess, roles: list[str]) -> dict[str, dict[str, str]]:
    """Each role's server-wide settings (`pg_db_role_setting` for every database), as `{role: {name: value}}`."""
    with access.connect() as connection:
        rows = connection.execute(
            """
            select r.rolname, s.setconfig from pg_roles r
            join pg_db_role_setting s on s.setrole = r.oid and s.setdatabase = 0
            where r.rolname = any(%s)
            """,
            [roles],
        ).fetchall()
    found: dict[str, dict[str, str]] = {role: {} for role in roles}
    for role, config in rows:
        for entry in config or []:
            name, _, value = entry.partition("=")
            found[role][name] = value
    return found


def settings_drift(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """`name value, planned value` for every managed setting that differs (missing shows as `unset`)."""
    return [
        f"{name} {actual.get(name, 'unset')}, planned {value}"
        for name, value in sorted(expected.items())
        if normalized(actual.get(name)) != normalized(value)
    ]


def normalized(value: object) -> str:
    """A setting's text without quotes or case differences in its unit (`'4096kB'` = `4096kb`)."""
    return str(value or "").strip().strip("'").lower()
