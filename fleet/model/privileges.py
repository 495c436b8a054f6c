"""What each tenant role may do, as data: the owner/app split and PUBLIC's lockout (docs/isolation.md).

The program declares these with the official postgresql resources; fleet.postgres.privileges applies the
same lists with SQL (the handover of existing tenants, restores). Both read them from here.
"""

from __future__ import annotations

APP_DATABASE_PRIVILEGES: tuple[str, ...] = ("CONNECT", "TEMPORARY")
"""The app role on its tenant's database: no CREATE (no schemas of its own), and never the owner."""

APP_SCHEMA_PRIVILEGES: tuple[str, ...] = ("USAGE", "CREATE")
"""The app role on the schemas of its database (`public`, and any its owner made)."""

APP_TABLE_PRIVILEGES: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES")
"""The app role on the owner's tables, views and sequences' tables. No TRIGGER: a trigger the app adds to an
owner's table would run the app's code with the owner's rights when a migration (run as the owner) writes to it."""

APP_SEQUENCE_PRIVILEGES: tuple[str, ...] = ("USAGE", "SELECT", "UPDATE")
"""The app role on the owner's sequences (serial and identity columns)."""

APP_FUNCTION_PRIVILEGES: tuple[str, ...] = ("EXECUTE",)
"""The app role on the owner's functions (PUBLIC has it too by default; kept explicit for a revoked PUBLIC)."""

DEFAULT_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "table": APP_TABLE_PRIVILEGES,
    "sequence": APP_SEQUENCE_PRIVILEGES,
    "function": APP_FUNCTION_PRIVILEGES,
}
"""What the app role gets on every object its owner role creates later (ALTER DEFAULT PRIVILEGES FOR ROLE owner)."""

SHARED_DATABASES: tuple[str, ...] = ("postgres", "template1")
"""Databases every server has and every role may reach by default: PUBLIC's CONNECT and TEMPORARY are revoked
on them once per server, so a tenant's role reaches its own database only."""
