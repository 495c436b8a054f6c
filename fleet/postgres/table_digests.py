"""Order-independent checksums of a table's rows, as COPY text lines: the same figure from a dump and from a database.

A backup's manifest records each table's digest, computed from the dump's own COPY data; a restore drill
computes it again from the restored copy (`COPY ... TO STDOUT` in the session settings pg_dump uses), so
a row lost, added or changed on the way shows as a different digest. Row order doesn't matter: the digest is
the sum of a 64-bit hash per line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from psycopg import sql

from fleet.postgres.access import ServerAccess

_MASK = (1 << 64) - 1
EMPTY_DIGEST = f"{0:016x}"
"""The digest of a table without rows."""
DUMP_SESSION = ("SET extra_float_digits = 3", "SET DateStyle = ISO", "SET IntervalStyle = postgres", "SET client_encoding = 'UTF8'")
"""pg_dump's own output settings, so the restored rows print as the dump holds them."""


class TableDigest:
    """Accumulates the digest of one table's COPY lines (each without its newline)."""

    def __init__(self) -> None:
        self.total = 0
        self.rows = 0

    def add(self, line: bytes) -> None:
        self.total = (self.total + int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "big")) & _MASK
        self.rows += 1

    @property
    def hex(self) -> str:
        return f"{self.total:016x}"


def database_digests(access: ServerAccess, database: str, tables: Iterable[str], *, role: str) -> dict[str, str]:
    """The digest of each `schema.table` of `database`, read as `role` (SET ROLE: the tenant's own owner role, so the
    reading can reach nothing of another tenant). Columns as pg_dump copies them: not dropped, not generated."""
    digests: dict[str, str] = {}
    with access.connect(database) as connection:
        connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        for statement in DUMP_SESSION:
            connection.execute(statement)
        for qualified in tables:
            schema, _, table = qualified.partition(".")
            columns = [
                name
                for (name,) in connection.execute(
                    "select attname from pg_attribute where attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass "
                    "and attnum > 0 and not attisdropped and attgenerated = '' order by attnum",
                    [schema, table],
                ).fetchall()
            ]
            copy = sql.SQL("COPY {} ({}) TO STDOUT").format(sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns)))
            digest, pending = TableDigest(), b""
            with connection.cursor() as cursor, cursor.copy(copy) as stream:
                for block in stream:
                    pending += bytes(block)
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        digest.add(line)
            if pending:
                digest.add(pending)
            digests[qualified] = digest.hex
    return digests
