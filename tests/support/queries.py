"""Typed reads of query results, for tests that check a server's state with SQL."""

from __future__ import annotations

from typing import TypeVar

import psycopg

Row = TypeVar("Row")


def one_row(cursor: psycopg.Cursor[Row]) -> Row:
    """The row a query that always returns one (a count, a lookup the test just made true) returned."""
    row = cursor.fetchone()
    assert row is not None, "the query returned no row"
    return row
