"""Logical replication for a live move: one publication, slot and subscription per moving database.

A live move (components/providers/postgres.py) copies a tenant's database while the tenant keeps
writing: the schema by `pg_dump --schema-only`, the rows by a subscription on the target to a
publication of the tenant's tables on the source, with its initial copy. Every object it creates is
named `move_object_name(database)` (`fleet_move_<database>_<hash>`): the publication and the slot on the
source, the subscription on the target, so they are recognisable, owned by the move of that database,
and removed by `teardown` (or by the next move of it, should the process die first).

What logical replication does not carry is found before anything is blocked (`logical_blockers`):
large objects, unlogged tables, tables with neither a key nor columns that can be compared for
`REPLICA IDENTITY FULL`; DDL during the copy is found by comparing schema signatures
(`catalog.schema_signature`). Tables without a primary key get `REPLICA IDENTITY FULL` for the move;
what was changed is recorded in the publication's COMMENT and restored by `teardown`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

import psycopg
from psycopg import sql

from fleet.postgres import catalog
from fleet.postgres.access import PgToolsError, ServerAccess, first_line

MOVE_PREFIX = "fleet_move_"
"""Start of every publication, slot and subscription name a move owns."""
IDENTITY_MARKER = "tenant-fleet move; replica identity changed: "
"""Start of the publication's COMMENT: JSON {"schema.table": previous relreplident} to restore."""
SLOTS_PER_MOVE = 3
"""Replication slots (and WAL senders) a move needs on the source: its own, and one per table-sync worker
(PostgreSQL's default `max_sync_workers_per_subscription` is 2; each holds a temporary slot while it copies)."""

_NAME_SAFE = re.compile(r"[^a-z0-9_]+")


class ReplicationError(PgToolsError):
    """A step of a live move's replication failed; the message says which and where."""


def move_object_name(database: str) -> str:
    """`fleet_move_<database>_<hash>`: the publication, slot and subscription of the move of `database` (≤ 63 bytes)."""
    digest = hashlib.sha256(database.encode()).hexdigest()[:8]
    readable = _NAME_SAFE.sub("_", database.lower()).strip("_")[: 63 - len(MOVE_PREFIX) - 9]
    return f"{MOVE_PREFIX}{readable}_{digest}"


# ---------------------------------------------------------------- connections kept open for a cutover


class _KeptConnection(psycopg.Connection):
    """A connection that `with` does not close (autocommit: nothing is left open between statements)."""

    def __exit__(self, *_exc: object) -> None:
        return None


@dataclass(frozen=True)
class KeptAccess(ServerAccess):
    """A ServerAccess whose `connect` reuses one open connection per database and options: a cutover opens
    no new connections (each costs a SCRAM handshake) while the tenant is refused. Close with `close_all`."""

    kept: dict = field(default_factory=dict, repr=False, compare=False)

    def connect(self, database: str = "postgres", *, autocommit: bool = True, **options: Any):
        """The kept connection to `database` (opened on first use, again if it broke)."""
        key = (database, autocommit, tuple(sorted(options.items())))
        connection = self.kept.get(key)
        if connection is None or connection.closed or connection.broken:
            try:
                connection = _KeptConnection.connect(self.dsn(database, with_password=True, **options), autocommit=autocommit)
            except psycopg.OperationalError as error:
                raise PgToolsError(f"cannot connect to database {database!r} on {self.label} as {self.admin_user}: {first_line(error)}") from None
            self.kept[key] = connection
        return connection

    def close_all(self) -> None:
        """Close every kept connection."""
        for connection in self.kept.values():
            psycopg.Connection.close(connection)
        self.kept.clear()


def kept(access: ServerAccess) -> KeptAccess:
    """The same server's access, keeping its connections open (see KeptAccess)."""
    return KeptAccess(access.host, access.port, access.admin_user, access.admin_password, access.sslmode, access.connect_timeout)


# ---------------------------------------------------------------- can this move be live?


def _setting(connection, name: str) -> str:
    return str(connection.execute("select current_setting(%s)", [name]).fetchone()[0])


def server_blockers(source: ServerAccess, target: ServerAccess) -> list[str]:
    """Why the two servers can't do a live move (empty: they can): settings and roles, one line each."""
    reasons: list[str] = []
    with source.connect() as connection:
        if (level := _setting(connection, "wal_level")) != "logical":
            reasons.append(f"wal_level is {level}, not logical, on the source ({source.label})")
        slots = int(_setting(connection, "max_replication_slots")) - int(connection.execute("select count(*) from pg_replication_slots").fetchone()[0])
        if slots < SLOTS_PER_MOVE:
            reasons.append(f"the source ({source.label}) has {max(slots, 0)} free replication slots, a move needs {SLOTS_PER_MOVE}")
        senders = int(_setting(connection, "max_wal_senders")) - int(
            connection.execute("select count(*) from pg_stat_activity where backend_type = 'walsender'").fetchone()[0]
        )
        if senders < SLOTS_PER_MOVE:
            reasons.append(f"the source ({source.label}) has {max(senders, 0)} free WAL senders (max_wal_senders), a move needs {SLOTS_PER_MOVE}")
        superuser, replication = connection.execute("select rolsuper, rolreplication from pg_roles where rolname = current_user").fetchone()
        if not (superuser or replication):
            reasons.append(f"the admin role {source.admin_user!r} on the source ({source.label}) is neither a superuser nor has REPLICATION")
    with target.connect() as connection:
        if not connection.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]:
            reasons.append(f"the admin role {target.admin_user!r} on the target ({target.label}) is not a superuser (CREATE SUBSCRIPTION needs one)")
        workers = int(_setting(connection, "max_logical_replication_workers")) - int(
            connection.execute("select count(*) from pg_stat_subscription where pid is not null").fetchone()[0]
        )
        if workers < 1:
            reasons.append(f"the target ({target.label}) has no free logical replication worker (max_logical_replication_workers)")
        origins = int(_setting(connection, "max_replication_slots")) - int(connection.execute("select count(*) from pg_replication_origin").fetchone()[0])
        if origins < 1:
            reasons.append(f"the target ({target.label}) has max_replication_slots {_setting(connection, 'max_replication_slots')}, all used by replication origins")
    return reasons


def database_blockers(source: ServerAccess, database: str) -> list[str]:
    """What in `database` logical replication would not carry (empty: nothing): large objects, unlogged
    tables, and tables without a key whose columns can't be compared (REPLICA IDENTITY FULL needs `=`)."""
    reasons: list[str] = []
    with source.connect(database) as connection:
        large = int(connection.execute("select count(*) from pg_largeobject_metadata").fetchone()[0])
        if large:
            reasons.append(f"the database holds {large} large objects (logical replication does not carry them)")
        unlogged = [
            f"{schema}.{name}"
            for schema, name in connection.execute(
                "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.relkind in ('r', 'p') and c.relpersistence = 'u' and n.nspname not in ('pg_catalog', 'information_schema') order by 1, 2"
            )
        ]
        if unlogged:
            reasons.append(f"unlogged tables {', '.join(unlogged[:5])} (logical replication does not carry them)")
        for table, column, type_ in _uncomparable_columns(connection, [t for t, _ in tables_without_identity(connection)]):
            reasons.append(f"table {table} has no replica identity and its column {column} ({type_}) has no equality operator")
    return reasons


def tables_without_identity(connection) -> list[tuple[str, str]]:
    """(`schema.table`, relreplident) of user tables a publication could not UPDATE/DELETE through:
    no primary key and replica identity DEFAULT, or identity NOTHING."""
    rows = connection.execute(
        """
        select quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relreplident::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind = 'r' and c.relpersistence = 'p' and n.nspname not in ('pg_catalog', 'information_schema')
          and n.nspname not like 'pg\\_%%'
          and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
          and (c.relreplident = 'n'
               or (c.relreplident = 'd' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)))
        order by 1
        """
    )
    return [(table, identity) for table, identity in rows]


def _uncomparable_columns(connection, tables: list[str]) -> list[tuple[str, str, str]]:
    if not tables:
        return []
    rows = connection.execute(
        """
        select n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        from pg_attribute a join pg_type t on t.oid = a.atttypid
          join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        where a.attrelid = any(%s::regclass[]) and a.attnum > 0 and not a.attisdropped
          and not exists (
            select 1 from pg_opclass o join pg_am m on m.oid = o.opcmethod
            where o.opcdefault and m.amname in ('btree', 'hash')
              and (o.opcintype = coalesce(nullif(t.typbasetype, 0), t.oid)
                   or (o.opcintype = 'anyarray'::regtype and t.typcategory = 'A')
                   or (o.opcintype = 'anyenum'::regtype and t.typtype = 'e')
                   or (o.opcintype = 'record'::regtype and t.typtype = 'c')
                   or (o.opcintype = 'anyrange'::regtype and t.typtype = 'r')))
        order by 1, a.attnum
        """,
        [tables],
    )
    return [(table, column, type_) for table, column, type_ in rows]


# ---------------------------------------------------------------- setting up


@dataclass(frozen=True)
class Leftovers:
    """The replication objects of one database's move found on its two servers."""

    publication: bool = False
    slot: bool = False
    subscription: bool = False

    @property
    def any(self) -> bool:
        """Whether anything of a move is there."""
        return self.publication or self.slot or self.subscription


def find_leftovers(source: ServerAccess, target: ServerAccess, database: str) -> Leftovers:
    """Which of the move's publication (source), slot (source) and subscription (target) exist."""
    name = move_object_name(database)
    with source.connect(database) as connection:
        publication = connection.execute("select 1 from pg_publication where pubname = %s", [name]).fetchone() is not None
        slot = connection.execute("select 1 from pg_replication_slots where slot_name = %s", [name]).fetchone() is not None
    with target.connect() as connection:
        subscription = connection.execute("select 1 from pg_subscription where subname = %s", [name]).fetchone() is not None
    return Leftovers(publication, slot, subscription)


RECEIVING_MARKER = "tenant-fleet: receiving a live move from "
"""Start of the COMMENT the target database carries while a live move copies into it: its contents are an
unverified copy that the next move of the same database may empty (even when the target lost its subscription)."""
_RECEIVING = re.compile(r"^tenant-fleet: receiving a live move from (?P<source>\S+) since (?P<at>\S+); [^{]*previous comment: (?P<previous>.*)$", re.S)


def mark_receiving(target: ServerAccess, database: str, source_key: str, at: str) -> None:
    """Set the receiving marker on the target database (committed durably: it must survive the target crashing)."""
    with target.connect() as connection:
        connection.execute("set synchronous_commit to on")
        row = connection.execute("select shobj_description(oid, 'pg_database') from pg_database where datname = %s", [database]).fetchone()
        previous = row[0] if row else None
        if previous and previous.startswith(RECEIVING_MARKER):
            return  # an earlier attempt's: keep the comment from before it
        comment = f"{RECEIVING_MARKER}{source_key} since {at}; unverified until the move finishes; previous comment: {json.dumps(previous)}"
        connection.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(database), sql.Literal(comment)))


def receiving_from(target: ServerAccess, database: str) -> Optional[str]:
    """The source server key of a live move copying into `database` on `target` (or that died doing so), or None."""
    match = _RECEIVING.match(catalog.database_comment(target, database) or "")
    return match.group("source") if match else None


def unmark_receiving(target: ServerAccess, database: str) -> None:
    """Put back the comment the target database had before the receiving marker (nothing when there is no marker)."""
    match = _RECEIVING.match(catalog.database_comment(target, database) or "")
    if match is None:
        return
    try:
        previous = json.loads(match.group("previous"))
    except ValueError:
        previous = None
    catalog.set_database_comment(target, database, previous if isinstance(previous, str) else None)


def create_publication(source: ServerAccess, database: str) -> str:
    """The move's publication, empty for now (`publish_tables` fills it): created first so that anything the
    move does afterwards is recognisable as its own should the process die."""
    name = move_object_name(database)
    with source.connect(database) as connection:
        connection.execute("set synchronous_commit to on")  # the move's mark on the source: durable before anything else
        with connection.transaction():
            connection.execute(sql.SQL("create publication {}").format(sql.Identifier(name)))
            connection.execute(sql.SQL("comment on publication {} is {}").format(sql.Identifier(name), sql.Literal(IDENTITY_MARKER + "{}")))
    return name


def publish_tables(source: ServerAccess, database: str) -> dict[str, str]:
    """Give tables without a key REPLICA IDENTITY FULL (recorded in the publication's COMMENT in the same
    transaction), and add every user table to the publication. Returns {table: previous identity}."""
    name = move_object_name(database)
    with source.connect(database) as connection, connection.transaction():
        changed = dict(tables_without_identity(connection))
        connection.execute(
            sql.SQL("comment on publication {} is {}").format(sql.Identifier(name), sql.Literal(IDENTITY_MARKER + json.dumps(changed, sort_keys=True)))
        )
        for table in changed:
            connection.execute(sql.SQL("alter table {} replica identity full").format(sql.SQL(table)))  # quote_ident'ed above
        tables = [sql.Identifier(schema, table) for schema, table in catalog.user_tables(connection)]
        if tables:
            connection.execute(sql.SQL("alter publication {} add table {}").format(sql.Identifier(name), sql.SQL(", ").join(tables)))
    return changed


def subscribe(source: ServerAccess, target: ServerAccess, database: str, *, source_host: Optional[str] = None) -> None:
    """Create the move's slot on the source and the subscription on the target (with the initial copy).

    The slot is created from the source side first, so that its name is known there even if the target
    never finishes CREATE SUBSCRIPTION. The target connects to the source as the source's admin
    (`source_host`: the address the target reaches it at, default the admin's).
    """
    name = move_object_name(database)
    with source.connect(database) as connection:
        connection.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
    conninfo = source.dsn(database, with_password=True, host=source_host or source.host, application_name=name)
    with target.connect(database) as connection:
        connection.execute(
            # synchronous_commit on: the target reports a transaction as flushed as soon as it is applied, so the
            # blocked source learns at once that the target has everything (off waits for the target's WAL writer).
            sql.SQL(
                "create subscription {} connection {} publication {} "
                "with (create_slot = false, slot_name = {}, copy_data = true, synchronous_commit = 'on')"
            ).format(
                sql.Identifier(name), sql.Literal(conninfo), sql.Identifier(name), sql.Literal(name)
            )
        )


# ---------------------------------------------------------------- waiting


@dataclass
class SyncState:
    """Progress of a subscription's initial copy and of its lag."""

    tables: int
    ready: int
    lag_bytes: Optional[int]
    errors: int

    @property
    def synced(self) -> bool:
        """Every table copied and streaming."""
        return self.tables > 0 and self.ready == self.tables


def sync_state(source: ServerAccess, target: ServerAccess, database: str) -> SyncState:
    """Tables ready (initial copy done), the slot's lag on the source, and the subscription's error count."""
    name = move_object_name(database)
    with target.connect(database) as connection:
        states = [state for (state,) in connection.execute(
            "select r.srsubstate from pg_subscription_rel r join pg_subscription s on s.oid = r.srsubid where s.subname = %s", [name]
        )]
        row = connection.execute(
            "select coalesce(apply_error_count, 0) + coalesce(sync_error_count, 0) from pg_stat_subscription_stats where subname = %s", [name]
        ).fetchone()
    with source.connect(database) as connection:
        lag = connection.execute(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint from pg_replication_slots where slot_name = %s", [name]
        ).fetchone()
    return SyncState(len(states), sum(1 for state in states if state == "r"), None if lag is None or lag[0] is None else int(lag[0]), int(row[0]) if row else 0)


def wait_synced(
    source: ServerAccess,
    target: ServerAccess,
    database: str,
    *,
    max_lag_bytes: int = 1024 * 1024,
    stall_timeout: float = 300.0,
    on_progress: Optional[Callable[[SyncState], None]] = None,
) -> SyncState:
    """Wait until every table has been copied and the slot's lag is under `max_lag_bytes`.

    Raises ReplicationError when the subscription reports errors (its worker failed: the target's server
    log says why), when nothing progresses for `stall_timeout` seconds, or when, every table copied, the lag
    has not come closer for `stall_timeout` seconds (the target can't keep up with the tenant's writes). A
    server that goes away raises PgToolsError from the connection.
    """
    started = last_progress = time.monotonic()
    last: Optional[tuple[int, Optional[int]]] = None
    closest: Optional[int] = None
    closest_at = started
    while True:
        state = sync_state(source, target, database)
        if on_progress is not None:
            on_progress(state)
        if state.errors:
            raise ReplicationError(
                f"the subscription {move_object_name(database)} on {target.label} reported {state.errors} errors "
                f"after {time.monotonic() - started:.0f}s (the target's server log says why)"
            )
        if state.synced and state.lag_bytes is not None and state.lag_bytes <= max_lag_bytes:
            return state
        now = time.monotonic()
        if (state.ready, state.lag_bytes) != last:
            last, last_progress = (state.ready, state.lag_bytes), now
        elif now - last_progress > stall_timeout:
            raise ReplicationError(f"the copy of {database!r} to {target.label} made no progress for {stall_timeout:.0f}s ({state})")
        if state.synced and state.lag_bytes is not None:
            if closest is None or state.lag_bytes < closest:
                closest, closest_at = state.lag_bytes, now
            elif now - closest_at > stall_timeout:
                raise ReplicationError(
                    f"the target {target.label} has not caught up with {database!r} for {stall_timeout:.0f}s "
                    f"(lag {state.lag_bytes} bytes, at best {closest}): it applies slower than the tenant writes"
                )
        time.sleep(0.05 if state.synced else 0.2)


def current_lsn(source: ServerAccess) -> str:
    """The source's WAL position up to which everything committed so far is flushed.

    A WAL sender only sends flushed WAL, and with synchronous_commit off the last commits could wait for
    the WAL writer (up to 3 × wal_writer_delay). So commit a transaction of our own that writes WAL (a
    transactional logical message, which the subscription ignores) synchronously: that flushes everything
    before it and wakes the WAL senders at once."""
    with source.connect() as connection:
        connection.execute("set synchronous_commit to on")
        connection.execute("select pg_logical_emit_message(true, 'tenant-fleet', 'cutover')")
        return str(connection.execute("select pg_current_wal_flush_lsn()").fetchone()[0])


def wait_for_lsn(source: ServerAccess, database: str, lsn: str, *, timeout: float = 60.0) -> float:
    """Wait until the target has confirmed (applied and flushed) everything up to `lsn` on the source;
    returns the seconds it took. Raises ReplicationError after `timeout`."""
    name = move_object_name(database)
    started = time.monotonic()
    with source.connect(database) as connection:
        while True:
            row = connection.execute(
                "select confirmed_flush_lsn >= %s::pg_lsn, active from pg_replication_slots where slot_name = %s", [lsn, name]
            ).fetchone()
            if row is None:
                raise ReplicationError(f"the replication slot {name} is gone from {source.label}")
            if row[0]:
                return round(time.monotonic() - started, 3)
            if time.monotonic() - started > timeout:
                raise ReplicationError(f"the target did not reach the source's WAL position {lsn} within {timeout:.0f}s (slot active: {row[1]})")
            time.sleep(0.005)


# ---------------------------------------------------------------- verifying without a size-dependent window

Fingerprint = tuple[int, int, int, int]
"""(relfilenode, n_tup_ins, n_tup_upd, n_tup_del) of a table: unchanged means nothing was written to it."""


def table_fingerprints(access: ServerAccess, database: str) -> Optional[dict[str, Fingerprint]]:
    """Per user table (`schema.table`), what changes whenever it is written to: its inserted, updated and
    deleted tuple counters and its relfilenode (TRUNCATE gives a new one). None when the server does not
    count (track_counts off): then nothing can be shown unchanged."""
    with access.connect(database) as connection:
        if _setting(connection, "track_counts") != "on":
            return None
        return {
            f"{schema}.{table}": (int(node), int(inserted), int(updated), int(deleted))
            for schema, table, node, inserted, updated, deleted in connection.execute(
                """
                select s.schemaname, s.relname, c.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del
                from pg_stat_user_tables s join pg_class c on c.oid = s.relid
                """
            )
        }


def table_facts(
    access: ServerAccess, database: str, tables: Iterable[str], checksum_tables: Iterable[str]
) -> tuple[dict[str, int], dict[str, str]]:
    """Exact row counts of `tables` and content checksums of `checksum_tables` (as `catalog.table_checksums`)."""
    counts: dict[str, int] = {}
    with access.connect(database) as connection:
        for name in sorted(tables):
            schema, _, table = name.partition(".")
            try:
                counts[name] = int(connection.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))).fetchone()[0])
            except psycopg.errors.UndefinedTable:
                continue  # missing on this side: compare_facts reports it
    return counts, catalog.table_checksums(access, database, list(checksum_tables))


def checksum_candidates(access: ServerAccess, database: str, max_bytes: int) -> list[str]:
    """The tables a verification checksums: those up to `max_bytes` (as `catalog.collect_facts` picks them)."""
    with access.connect(database) as connection:
        return sorted(
            f"{schema}.{table}"
            for schema, table in catalog.user_tables(connection)
            if int(connection.execute("select pg_table_size(%s::regclass)", [sql.Identifier(schema, table).as_string(connection)]).fetchone()[0]) <= max_bytes
        )


# ---------------------------------------------------------------- cutover helpers


def sync_sequences(source: ServerAccess, target: ServerAccess, database: str) -> int:
    """Set every sequence on the target to its value on the source (blocked by then: nothing uses it), so the
    next value on the target is beyond every value used on the source. Returns how many were set."""
    values = catalog.sequence_values(source, database)
    count = 0
    with target.connect(database) as connection, connection.transaction():
        for name, value in values.items():
            if value is None:
                continue
            schema, _, sequence = name.partition(".")
            connection.execute("select setval(%s::regclass, %s, true)", [sql.Identifier(schema, sequence).as_string(connection), value])
            count += 1
    return count


def stop_subscription(target: ServerAccess, database: str) -> bool:
    """Disable and drop the move's subscription on the target without touching the source (slot_name NONE:
    the slot is dropped from the source side). False when there was none."""
    name = move_object_name(database)
    with target.connect() as connection:
        row = connection.execute("select d.datname from pg_subscription s join pg_database d on d.oid = s.subdbid where s.subname = %s", [name]).fetchone()
    if row is None:
        return False
    with target.connect(row[0]) as connection:
        connection.execute(sql.SQL("alter subscription {} disable").format(sql.Identifier(name)))
        connection.execute(sql.SQL("alter subscription {} set (slot_name = none)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("drop subscription {}").format(sql.Identifier(name)))
    return True


def drop_slots(source: ServerAccess, database: str, *, timeout: float = 30.0) -> list[str]:
    """Drop the move's slot and any table-sync slots its subscription left on the source, ending the WAL
    senders that still hold them. Returns the names dropped."""
    name = move_object_name(database)
    dropped: list[str] = []
    deadline = time.monotonic() + timeout
    with source.connect() as connection:
        while True:
            rows = connection.execute(
                "select slot_name, active_pid from pg_replication_slots where slot_name = %s or slot_name like %s",
                [name, "pg\\_%\\_sync\\_%"],
            ).fetchall()
            rows = [(slot, pid) for slot, pid in rows if slot == name or _is_sync_slot_of(connection, slot, name)]
            if not rows:
                return dropped
            for slot, pid in rows:
                if pid is not None:
                    connection.execute("select pg_terminate_backend(%s)", [pid])
                    continue
                try:
                    connection.execute("select pg_drop_replication_slot(%s)", [slot])
                    dropped.append(slot)
                except psycopg.errors.ObjectInUse:
                    pass  # a WAL sender took it again: ended on the next pass
                except psycopg.errors.UndefinedObject:
                    pass  # a table-sync worker finished and dropped its own slot meanwhile
            if time.monotonic() > deadline:
                raise ReplicationError(f"could not drop replication slots {[slot for slot, _ in rows]} on {source.label} within {timeout:.0f}s")
            time.sleep(0.01)


def _is_sync_slot_of(connection, slot: str, name: str) -> bool:
    # Table-sync slots are named pg_<subscription oid>_sync_<relid>_<system id> and belong to the
    # target's subscription; on the source only their database tells them apart: ours are in the moving one.
    row = connection.execute(
        "select d.datname from pg_replication_slots s join pg_database d on d.datname = s.database where s.slot_name = %s", [slot]
    ).fetchone()
    return row is not None and move_object_name(row[0]) == name


def drop_publication(source: ServerAccess, database: str) -> dict[str, str]:
    """Restore the replica identities the move changed (from the publication's COMMENT), then drop the
    publication, in one transaction. Returns what was restored ({} also when there was no publication)."""
    name = move_object_name(database)
    with source.connect(database) as connection, connection.transaction():
        row = connection.execute(
            "select obj_description(oid, 'pg_publication') from pg_publication where pubname = %s", [name]
        ).fetchone()
        if row is None:
            return {}
        restored = parse_identity_comment(row[0])
        for table, identity in restored.items():
            clause = {"d": "default", "n": "nothing"}.get(identity, "default")
            try:
                with connection.transaction():
                    connection.execute(sql.SQL("alter table {} replica identity {}").format(sql.SQL(table), sql.SQL(clause)))
            except psycopg.errors.UndefinedTable:
                continue  # dropped meanwhile: nothing to restore
        connection.execute(sql.SQL("drop publication {}").format(sql.Identifier(name)))
    return restored


def parse_identity_comment(comment: Optional[str]) -> dict[str, str]:
    """{table: previous relreplident} from a move publication's COMMENT ({} when it is not one)."""
    if not comment or not comment.startswith(IDENTITY_MARKER):
        return {}
    try:
        data = json.loads(comment[len(IDENTITY_MARKER):])
    except ValueError:
        return {}
    return {str(table): str(identity) for table, identity in data.items()} if isinstance(data, dict) else {}


def teardown(source: ServerAccess, target: ServerAccess, database: str) -> list[str]:
    """Remove the move's subscription (target), slots and publication (source), restoring replica
    identities; each step runs even if another fails. Returns what could NOT be removed, one line each
    (empty: nothing of the move is left)."""
    name = move_object_name(database)
    problems: list[str] = []

    def target_side() -> None:
        try:
            stop_subscription(target, database)
        except Exception as error:  # noqa: BLE001 - the source side must still be cleaned
            problems.append(
                f"subscription {name} on the target {target.label} ({first_line(error)}): drop it there with "
                f"ALTER SUBSCRIPTION {name} DISABLE; ALTER SUBSCRIPTION {name} SET (slot_name = NONE); DROP SUBSCRIPTION {name}"
            )

    # Both sides at once (a cutover waits for this): the slot's WAL sender is ended from the source side
    # anyway, so the subscription need not be gone first.
    helper = threading.Thread(target=target_side, name="teardown-target")
    helper.start()
    slots = f"replication slot {name} on the source {source.label}"
    for step, what in ((drop_slots, slots), (drop_publication, f"publication {name} on the source {source.label}")):
        try:
            step(source, database)
        except Exception as error:  # noqa: BLE001
            problems.append(f"{what} ({first_line(error)})")
    helper.join()
    if not problems:
        # Until DROP SUBSCRIPTION returned (it waits for the workers), a table-sync worker could still create
        # its slot on the source after the pass above: one more pass, a single query when nothing is there.
        try:
            drop_slots(source, database)
        except Exception as error:  # noqa: BLE001
            problems.append(f"{slots} ({first_line(error)})")
    return problems


# ---------------------------------------------------------------- what is on a server (fleet verify)


@dataclass(frozen=True)
class ReplicationObject:
    """A replication slot, publication or subscription found on a server."""

    kind: str
    """`slot`, `publication` or `subscription`."""
    name: str
    database: Optional[str]
    detail: str = ""

    @property
    def move_of(self) -> Optional[str]:
        """The database whose move owns it (by name), or None when no move does."""
        if self.database and (self.name == move_object_name(self.database) or (self.kind == "slot" and self.name.startswith("pg_") and "_sync_" in self.name)):
            return self.database
        return None


def replication_objects(access: ServerAccess, databases: Optional[Iterable[str]] = None) -> list[ReplicationObject]:
    """Every replication slot and subscription on the server, and the publications of `databases` (default:
    every database that allows connections)."""
    found: list[ReplicationObject] = []
    with access.connect() as connection:
        for name, kind, database, active, retained in connection.execute(
            "select slot_name, slot_type, database, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint from pg_replication_slots order by 1"
        ):
            found.append(ReplicationObject("slot", name, database, f"{kind}, {'active' if active else 'INACTIVE'}, holds {int(retained or 0) // 1024} kB of WAL"))
        for name, database, enabled in connection.execute(
            "select s.subname, d.datname, s.subenabled from pg_subscription s join pg_database d on d.oid = s.subdbid order by 1"
        ):
            found.append(ReplicationObject("subscription", name, database, "enabled" if enabled else "disabled"))
        names = list(databases) if databases is not None else [
            name for (name,) in connection.execute("select datname from pg_database where datallowconn and not datistemplate order by 1")
        ]
    for database in names:
        try:
            with access.connect(database) as connection:
                for (name,) in connection.execute("select pubname from pg_publication order by 1"):
                    found.append(ReplicationObject("publication", name, database))
        except PgToolsError:
            continue  # a database that can't be entered (blocked, gone) has no publication we could report
    return found


def describe(found: Iterable[ReplicationObject]) -> list[str]:
    """One line per object: `slot fleet_move_x (in tenant_x, logical, INACTIVE, ...)`, with who owns it."""
    lines = []
    for item in found:
        owner = f"left by a move of {item.move_of}" if item.move_of else "no move owns it"
        where = f"in {item.database}" if item.database else "physical"
        lines.append(f"{item.kind} {item.name} ({where}{', ' + item.detail if item.detail else ''}): {owner}")
    return lines


def schema_changes(before: catalog.SchemaSignature, access: ServerAccess, database: str) -> list[str]:
    """Differences of the database's schema now from `before` (DDL that logical replication would not carry)."""
    return before.differences(catalog.schema_signature(access, database), "copy start", "now")


def describe_error(error: BaseException) -> str:
    """A one-line cause for messages."""
    return first_line(error) if isinstance(error, Exception) else type(error).__name__


def as_mapping(state: SyncState) -> dict[str, Any]:
    """JSON-able form of a SyncState, for reports."""
    return {"tables": state.tables, "ready": state.ready, "lag_bytes": state.lag_bytes, "errors": state.errors}
