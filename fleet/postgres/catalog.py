"""What a database holds: tables, row counts, checksums, schema signature, sequences, facts to compare.

Used to verify a move, a restore or a backup against its source.
"""


from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

import psycopg
from psycopg import sql

from fleet.postgres.access import ServerAccess, first_line
from fleet.postgres.dumps import _STABLE_TEXT_OPTIONS

CHECKSUM_MAX_BYTES = 64 * 1024 * 1024
"""Tables up to this size (pg_table_size) get a content checksum besides their row count."""
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


# ---------------------------------------------------------------- facts about a database

_NOT_SYSTEM = """
    n.nspname not in ('pg_catalog', 'information_schema')
    and n.nspname not like 'pg\\_toast%%' and n.nspname not like 'pg\\_temp%%'
"""
_NOT_EXTENSION_MEMBER = """
    not exists (select 1 from pg_depend d where d.classid = {catalog}::regclass and d.objid = {oid} and d.deptype = 'e')
"""


def user_tables(connection) -> list[tuple[str, str]]:
    """(schema, table) of every ordinary table (partitions included, partitioned parents not) outside extensions."""
    query = f"""
        select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind = 'r' and {_NOT_SYSTEM}
          and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
        order by 1, 2
    """
    return [(schema, table) for schema, table in connection.execute(query)]


def table_counts(access: ServerAccess, database: str) -> dict[str, int]:
    """Exact row count of every user table, by `schema.table`."""

    with access.connect(database) as connection:
        return {
            f"{schema}.{table}": int(connection.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))).fetchone()[0])
            for schema, table in user_tables(connection)
        }


@dataclass(frozen=True)
class SchemaSignature:
    """What a database's schema consists of, comparable across servers (names and types, not OIDs)."""

    relations: dict[str, str]
    """`schema.name` -> relkind (r table, p partitioned, v view, m matview, S sequence, f foreign, i/I index, c type)."""
    columns: dict[str, list[list[Any]]]
    """`schema.relation` -> [[name, type, not null], ...] in column order."""
    constraints: dict[str, list[list[str]]]
    """`schema.table` -> [[name, type], ...] sorted."""
    routines: list[str]
    """Functions and procedures as `schema.name(argument types)`, sorted."""
    schemas: list[str]
    """Non-system schemas, sorted."""

    def differences(self, other: "SchemaSignature", left: str = "source", right: str = "target") -> list[str]:
        """Human-readable differences from `other` (empty when equal)."""
        problems: list[str] = []
        for name in sorted(set(self.schemas) ^ set(other.schemas)):
            problems.append(f"schema {name} only on {left if name in self.schemas else right}")
        for name in sorted(set(self.relations) | set(other.relations)):
            mine, theirs = self.relations.get(name), other.relations.get(name)
            if mine is None or theirs is None:
                problems.append(f"relation {name} only on {left if theirs is None else right}")
            elif mine != theirs:
                problems.append(f"relation {name} is kind {mine} on {left}, {theirs} on {right}")
        for name in sorted(set(self.columns) & set(other.columns)):
            if self.columns[name] != other.columns[name]:
                problems.append(f"columns of {name} differ: {left} {_columns_text(self.columns[name])}, {right} {_columns_text(other.columns[name])}")
        for name in sorted(set(self.constraints) | set(other.constraints)):
            if self.constraints.get(name, []) != other.constraints.get(name, []):
                problems.append(f"constraints of {name} differ: {left} {self.constraints.get(name, [])}, {right} {other.constraints.get(name, [])}")
        for routine in sorted(set(self.routines) ^ set(other.routines)):
            problems.append(f"routine {routine} only on {left if routine in self.routines else right}")
        return problems


def _columns_text(columns: list[list[Any]]) -> str:
    return "(" + ", ".join(f"{name} {type_}{' not null' if not_null else ''}" for name, type_, not_null in columns) + ")"


def schema_signature(access: ServerAccess, database: str) -> SchemaSignature:
    """The schema of `database`: relations, their columns, constraints, routines and schemas (extension members left out)."""
    with access.connect(database) as connection:
        relations = {
            f"{schema}.{name}": kind
            for schema, name, kind in connection.execute(
                f"""
                select n.nspname, c.relname, c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I', 'c') and {_NOT_SYSTEM}
                  and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
                """
            )
        }
        columns: dict[str, list[list[Any]]] = {}
        for schema, name, column, type_, not_null in connection.execute(
            f"""
            select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
            from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped and {_NOT_SYSTEM}
              and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
            order by n.nspname, c.relname, a.attnum
            """
        ):
            columns.setdefault(f"{schema}.{name}", []).append([column, type_, bool(not_null)])
        constraints: dict[str, list[list[str]]] = {}
        for schema, name, constraint, kind in connection.execute(
            f"""
            select n.nspname, c.relname, k.conname, k.contype::text
            from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
            where {_NOT_SYSTEM} order by 1, 2, 3
            """
        ):
            constraints.setdefault(f"{schema}.{name}", []).append([constraint, kind])
        routines = sorted(
            f"{schema}.{name}({arguments})"
            for schema, name, arguments in connection.execute(
                f"""
                select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where {_NOT_SYSTEM} and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_proc'", oid='p.oid')}
                """
            )
        )
        schemas = sorted(
            name
            for (name,) in connection.execute(
                f"""
                select n.nspname from pg_namespace n where {_NOT_SYSTEM}
                  and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_namespace'", oid='n.oid')}
                """
            )
        )
    return SchemaSignature(relations, columns, constraints, routines, schemas)


def _table_sizes(connection) -> dict[str, int]:
    return {
        f"{schema}.{table}": int(size)
        for schema, table, size in connection.execute(
            f"""
            select n.nspname, c.relname, pg_table_size(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind = 'r' and {_NOT_SYSTEM}
              and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
            """
        )
    }


def table_checksums(
    access: ServerAccess,
    database: str,
    tables: Optional[Iterable[str]] = None,
    *,
    max_bytes: int = CHECKSUM_MAX_BYTES,
) -> dict[str, str]:
    """An order-independent content checksum per table: `<rows>:<sum of md5 prefixes of row::text>`.

    One sequential scan per table, no sort. Without `tables`, every table up to `max_bytes` is
    checksummed; pass the source's keys to checksum exactly the same tables on a copy. Session
    settings that change how values print (TimeZone, DateStyle, float digits, bytea) are pinned,
    so equal rows give equal text on both servers.
    """

    with access.connect(database, options=_STABLE_TEXT_OPTIONS) as connection:
        if tables is None:
            chosen = sorted(name for name, size in _table_sizes(connection).items() if size <= max_bytes)
        else:
            chosen = sorted(tables)
        checksums = {}
        for name in chosen:
            schema, _, table = name.partition(".")
            query = sql.SQL(
                "select count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0) from {} as t"
            ).format(sql.Identifier(schema, table))
            try:
                rows, total = connection.execute(query).fetchone()
            except psycopg.Error as error:  # a table missing on a copy is a difference to report, not a crash
                checksums[name] = f"error: {first_line(error)}"
                continue
            checksums[name] = f"{rows}:{total}"
        return checksums


def sequence_values(access: ServerAccess, database: str) -> dict[str, Optional[int]]:
    """Each sequence's last value by `schema.sequence` (None when never used)."""
    with access.connect(database) as connection:
        return {
            f"{schema}.{name}": (None if value is None else int(value))
            for schema, name, value in connection.execute("select schemaname, sequencename, last_value from pg_sequences")
            if schema not in SYSTEM_SCHEMAS
        }


def large_object_count(access: ServerAccess, database: str) -> int:
    """How many large objects the database holds."""
    with access.connect(database) as connection:
        return int(connection.execute("select count(*) from pg_largeobject_metadata").fetchone()[0])


@dataclass(frozen=True)
class DatabaseFacts:
    """Everything a copy is verified on: schema, row counts, checksums, sequences, large objects."""

    signature: SchemaSignature
    counts: dict[str, int]
    checksums: dict[str, str]
    sequences: dict[str, Optional[int]]
    large_objects: int
    seconds: float = 0.0
    """How long collecting took."""

    @property
    def rows(self) -> int:
        """Total rows over every table."""
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary (counts per table, totals)."""
        return {"tables": len(self.counts), "rows": self.rows, "checksummed_tables": len(self.checksums), "counts": dict(sorted(self.counts.items()))}


def collect_facts(
    access: ServerAccess,
    database: str,
    *,
    checksum_tables: Optional[Iterable[str]] = None,
    max_checksum_bytes: int = CHECKSUM_MAX_BYTES,
) -> DatabaseFacts:
    """All the facts `compare_facts` compares, from one database (see `table_checksums` for `checksum_tables`)."""
    started = time.monotonic()
    signature = schema_signature(access, database)
    counts = table_counts(access, database)
    checksums = table_checksums(access, database, checksum_tables, max_bytes=max_checksum_bytes)
    sequences = sequence_values(access, database)
    large_objects = large_object_count(access, database)
    return DatabaseFacts(signature, counts, checksums, sequences, large_objects, round(time.monotonic() - started, 3))


def compare_facts(source: DatabaseFacts, target: DatabaseFacts, left: str = "source", right: str = "target") -> list[str]:
    """Every difference between two databases' facts, one line each (empty: the copy is verified)."""
    problems = source.signature.differences(target.signature, left, right)
    for name in sorted(set(source.counts) | set(target.counts)):
        mine, theirs = source.counts.get(name), target.counts.get(name)
        if mine != theirs:
            problems.append(f"table {name}: {_or_missing(mine, 'rows')} on {left}, {_or_missing(theirs, 'rows')} on {right}")
    for name in sorted(set(source.checksums) | set(target.checksums)):
        if source.checksums.get(name) != target.checksums.get(name):
            problems.append(f"table {name}: content checksum differs ({left} {source.checksums.get(name)}, {right} {target.checksums.get(name)})")
    for name in sorted(set(source.sequences) | set(target.sequences)):
        if source.sequences.get(name) != target.sequences.get(name) or (name in source.sequences) != (name in target.sequences):
            problems.append(f"sequence {name}: last value {source.sequences.get(name)} on {left}, {target.sequences.get(name)} on {right}")
    if source.large_objects != target.large_objects:
        problems.append(f"large objects: {source.large_objects} on {left}, {target.large_objects} on {right}")
    return problems


def _or_missing(value: Optional[int], unit: str) -> str:
    return "missing" if value is None else f"{value} {unit}"


# ---------------------------------------------------------------- catalog


def database_exists(access: ServerAccess, database: str) -> bool:
    """Whether `database` exists on the server."""
    with access.connect() as connection:
        return connection.execute("select 1 from pg_database where datname = %s", [database]).fetchone() is not None


def role_exists(access: ServerAccess, role: str) -> bool:
    """Whether `role` exists on the server."""
    with access.connect() as connection:
        return connection.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone() is not None


def database_comment(access: ServerAccess, database: str) -> Optional[str]:
    """The database's COMMENT, or None."""
    with access.connect() as connection:
        row = connection.execute(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = %s", [database]
        ).fetchone()
    return row[0] if row else None


def set_database_comment(access: ServerAccess, database: str, comment: Optional[str]) -> None:
    """COMMENT ON DATABASE (None removes it)."""

    with access.connect() as connection:
        connection.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(database), sql.Literal(comment)))


def extensions(access: ServerAccess, database: str) -> set[str]:
    """Names of the extensions installed in the database."""
    with access.connect(database) as connection:
        return {name for (name,) in connection.execute("select extname from pg_extension")}


def user_objects(access: ServerAccess, database: str, limit: int = 20) -> list[str]:
    """Up to `limit` user objects of the database ("table public.items", "schema app", ...); [] means empty.

    Counts schemas other than public, tables, views, sequences, foreign tables, composite and other
    user types, routines and large objects; members of extensions do not count (an extension installed
    ahead of a restore is fine).
    """
    query = f"""
        select 'schema ' || n.nspname from pg_namespace n
        where {_NOT_SYSTEM} and n.nspname <> 'public' and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_namespace'", oid='n.oid')}
        union all
        select case c.relkind when 'r' then 'table ' when 'p' then 'table ' when 'v' then 'view ' when 'm' then 'materialized view '
                              when 'S' then 'sequence ' when 'f' then 'foreign table ' else 'type ' end || n.nspname || '.' || c.relname
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c') and {_NOT_SYSTEM}
          and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid='c.oid')}
        union all
        select 'routine ' || n.nspname || '.' || p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where {_NOT_SYSTEM} and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_proc'", oid='p.oid')}
        union all
        select 'type ' || n.nspname || '.' || t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where t.typtype in ('e', 'd', 'r', 'b') and t.typrelid = 0 and t.typcategory <> 'A' and {_NOT_SYSTEM}
          and {_NOT_EXTENSION_MEMBER.format(catalog="'pg_type'", oid='t.oid')}
        union all
        select 'large objects (' || count(*) || ')' from pg_largeobject_metadata having count(*) > 0
        limit %s
    """
    with access.connect(database) as connection:
        return [text for (text,) in connection.execute(query, [limit])]
