"""The live move: a tenant's database copied by logical replication while the tenant keeps writing.

Called by `move_database` (components/providers/postgres.py) once its preflight has passed and both
servers allow it (`report.method == "logical"`). The steps (docs/moves.md):

1. publication: the move's (empty) publication on the source, first, so everything after is recognisable;
2. schema: `pg_dump --schema-only` restored into the target, owned by the tenant's owner role;
3. tables: tables without a primary key get REPLICA IDENTITY FULL (recorded on the publication), every
   table joins the publication;
4. subscribe: the slot on the source, the subscription on the target, with the initial copy;
5. catch-up: wait until every table is copied and the lag is small; a schema change meanwhile stops here;
6. block: the source refuses the tenant (`sessions.block_connections`, with the BLOCKED comment that lets
   the next move reopen it should this process die), its sessions are ended;
7. drain: wait until the target has confirmed everything up to the source's current WAL position;
8. sequences: every sequence on the target set from the source;
9. verify: schema, sequences, counts and checksums (`catalog.compare_facts`), both sides at once; tables
   verified before the block and not written to since keep that result, the others are counted again (and
   checksummed again up to IN_WINDOW_CHECKSUM_BYTES), so the window does not grow with the database;
10. teardown: subscription, slots and publication removed, replica identities restored;
11. finish: the moved-away COMMENT on the source (which stays blocked), like the dump path.

On any failure: the source is reopened if it was blocked, the replication objects are removed, and the
target is emptied; whatever could not be undone is named in the MoveError.
"""

from __future__ import annotations

import concurrent.futures
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from components.providers.move_records import MoveError, MoveReport, blocked_comment, finish_verification, moved_comment, utc_now
from fleet.postgres import catalog, drops, dumps, privileges, replication, sessions
from fleet.postgres.access import ServerAccess

CATCH_UP_LAG_BYTES = 256 * 1024
"""The source is blocked only once the target is this close behind (the rest drains within the window)."""
IN_WINDOW_CHECKSUM_BYTES = 4 * 1024 * 1024
"""Tables written to during the copy are checksummed again inside the window only up to this size (counted whatever their size)."""
DRAIN_TIMEOUT_SECONDS = 30.0
"""How long the blocked source waits for the target to confirm its last WAL position before giving up (and reopening)."""


def move_live(
    report: MoveReport,
    source: ServerAccess,
    target: ServerAccess,
    database: str,
    role: str,
    *,
    owner: str,
    tools,
    where: str,
    phase: Callable[[str], None],
    end_phases: Callable[[], None],
    target_extensions: set[str],
    checksum_max_bytes: int,
    terminate_timeout: float,
    work_dir: Optional[str] = None,
    stall_timeout: float = 300.0,
) -> MoveReport:
    """Run steps 1-11 of the module docstring; returns the report, or raises MoveError with everything undone."""
    block: Optional[sessions.BlockState] = None
    blocked_at = 0.0
    original_source, original_target = source, target
    kept: list[replication.KeptAccess] = []
    try:
        phase("publication")
        replication.create_publication(source, database)
        replication.mark_receiving(target, database, report.source, report.started_at)

        phase("schema")
        copy_started = time.monotonic()
        before = catalog.schema_signature(source, database)
        with tempfile.TemporaryDirectory(prefix="tenant-fleet-move-", dir=work_dir) as scratch:
            schema = dumps.dump(source, database, Path(scratch) / f"{database}.schema.dump", pg_bin=tools, schema_only=True)
            dumps.restore(target, database, schema.path, owner, pg_bin=tools)
        if owner != role:
            privileges.apply_tenant_access(target, database, owner, role)

        phase("tables")
        report.replica_identity_full = sorted(replication.publish_tables(source, database))

        phase("subscribe")
        replication.subscribe(source, target, database)

        phase("catch-up")
        try:
            replication.wait_synced(source, target, database, max_lag_bytes=CATCH_UP_LAG_BYTES, stall_timeout=stall_timeout)
        except replication.ReplicationError:
            _refuse_schema_changes(before, source, database, "during the copy")  # a column the target lacks stops its worker: say so
            raise
        _refuse_schema_changes(before, source, database, "during the copy")
        report.copy_seconds = round(time.monotonic() - copy_started, 3)

        phase("pre-verify")
        # The big, quiet tables are verified now, while the tenant writes; the window re-verifies only the
        # tables written to since, so its length does not grow with the database.
        early = _verify_early(source, target, database, checksum_max_bytes)
        replication.wait_synced(source, target, database, max_lag_bytes=CATCH_UP_LAG_BYTES, stall_timeout=stall_timeout)

        # From the block to the end the tenant is refused: open no new connections then (each costs a SCRAM
        # handshake). Those to the source's tenant database are opened after its sessions are ended.
        source, target = replication.kept(source), replication.kept(target)
        kept.extend((source, target))
        source.connect()
        target.connect()
        target.connect(database)

        phase("block")
        blocked_at = time.monotonic()
        block = sessions.block_connections(
            source, database, role, comment=lambda state: blocked_comment(f"move to {report.target}", utc_now(), state)
        )

        phase("terminate")
        report.sessions_ended = sessions.terminate_sessions(source, database, timeout=terminate_timeout)
        pending = sessions.prepared_transactions(source, database)
        if pending:
            raise MoveError(f"prepared transactions appeared on the source ({', '.join(pending)})")

        phase("drain")
        replication.wait_for_lsn(source, database, replication.current_lsn(source), timeout=DRAIN_TIMEOUT_SECONDS)

        phase("sequences")
        report.sequences_set = replication.sync_sequences(source, target, database)

        phase("verify")
        written = early.written_since(replication.table_fingerprints(source, database))
        report.verified_early = len(early.verified - written)
        # Tables written to since are counted again; their content checksummed again only while small, so the
        # window stays short however long the copy took (replication applied their rows by key, and counts agree).
        small = set(replication.checksum_candidates(source, database, IN_WINDOW_CHECKSUM_BYTES))
        checksum_again = {name for name in written if name in small and name in early.checksum_tables}
        report.counted_only = sorted(name for name in written if name in early.checksum_tables and name not in checksum_again)
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="move-facts") as pool:
            source_future = pool.submit(early.facts, "source", source, database, written, checksum_again)
            target_future = pool.submit(early.facts, "target", target, database, written, checksum_again)
            source_facts, target_facts = source_future.result(), target_future.result()
        ddl = before.differences(source_facts.signature, "copy start", "cutover")
        if ddl:
            raise MoveError(f"the schema changed before the cutover ({'; '.join(ddl[:5])}): logical replication does not carry DDL; move again once it is done")
        problems = catalog.compare_facts(source_facts, target_facts, report.source, report.target)
        finish_verification(report, problems, source_facts, source, database, "the cutover")

        phase("teardown")
        left = replication.teardown(source, target, database)
        if left:
            raise MoveError("could not remove the move's replication objects: " + "; ".join(left))

        phase("finish")
        replication.unmark_receiving(target, database)
        catalog.set_database_comment(source, database, moved_comment(report.target, target, utc_now(), block.comment))
    except BaseException as error:  # noqa: BLE001 - whatever happened, put the source back and clean the target
        end_phases()
        for access in kept:
            access.close_all()
        raise _undo_live(error, where, original_source, original_target, database, owner, block, target_extensions) from error
    end_phases()
    for access in kept:
        access.close_all()
    report.blocked_seconds = round(time.monotonic() - blocked_at, 3)
    return report


@dataclass
class EarlyVerification:
    """Counts and checksums compared before the block, and the source tables' fingerprints when they were taken."""

    fingerprints: Optional[dict[str, replication.Fingerprint]]
    tables: list[str]
    checksum_tables: list[str]
    counts: dict[str, dict[str, int]]
    """"source"/"target" -> counts."""
    checksums: dict[str, dict[str, str]]
    verified: set[str]
    """Tables whose count and checksum agreed."""

    def written_since(self, now: Optional[dict[str, replication.Fingerprint]]) -> set[str]:
        """Tables to verify again: not verified early, or written to since (every table when counters are off)."""
        if self.fingerprints is None or now is None:
            return set(self.tables) | set(now or ())
        return {name for name in set(self.tables) | set(now) if name not in self.verified or now.get(name) != self.fingerprints.get(name)}

    def facts(self, side: str, access: ServerAccess, database: str, again: set[str], checksum_again: set[str]) -> catalog.DatabaseFacts:
        """The side's facts: the early counts and checksums of tables untouched since; fresh counts of `again`,
        fresh checksums of `checksum_again` (the other tables of `again` are compared by count only)."""
        started = time.monotonic()
        signature = catalog.schema_signature(access, database)
        counts, checksums = replication.table_facts(access, database, again, checksum_again)
        counts = {**{name: value for name, value in self.counts[side].items() if name not in again}, **counts}
        checksums = {**{name: value for name, value in self.checksums[side].items() if name not in again}, **checksums}
        return catalog.DatabaseFacts(
            signature, counts, checksums, catalog.sequence_values(access, database), catalog.large_object_count(access, database),
            round(time.monotonic() - started, 3),
        )


def _verify_early(source: ServerAccess, target: ServerAccess, database: str, checksum_max_bytes: int) -> EarlyVerification:
    """Count and checksum every table on the source, then on the target once it has caught up with that read.

    A table not written to from before the source was read (its fingerprint unchanged at the cutover) was
    the same then as at the cutover, and the target, having applied everything after that read, must match it.
    """
    fingerprints = replication.table_fingerprints(source, database)
    with source.connect(database) as connection:
        tables = [f"{schema}.{table}" for schema, table in catalog.user_tables(connection)]
    checksum_tables = replication.checksum_candidates(source, database, checksum_max_bytes)
    source_counts, source_checksums = replication.table_facts(source, database, tables, checksum_tables)
    replication.wait_for_lsn(source, database, replication.current_lsn(source), timeout=DRAIN_TIMEOUT_SECONDS * 10)
    target_counts, target_checksums = replication.table_facts(target, database, tables, checksum_tables)
    verified = {
        name for name in tables
        if source_counts.get(name) == target_counts.get(name) and source_checksums.get(name) == target_checksums.get(name)
    }
    return EarlyVerification(
        fingerprints, tables, checksum_tables, {"source": source_counts, "target": target_counts},
        {"source": source_checksums, "target": target_checksums}, verified,
    )


def _refuse_schema_changes(before: catalog.SchemaSignature, source: ServerAccess, database: str, when: str) -> None:
    changes = replication.schema_changes(before, source, database)
    if changes:
        raise MoveError(
            f"the schema changed {when} ({'; '.join(changes[:5])}): logical replication does not carry DDL; move again once it is done"
        )


def _undo_live(
    error: BaseException,
    where: str,
    source: ServerAccess,
    target: ServerAccess,
    database: str,
    owner: str,
    block: Optional[sessions.BlockState],
    target_extensions: set[str],
) -> MoveError:
    """Reopen the source (first: the tenant is refused meanwhile), remove the replication objects, empty the target."""
    reopened, clean, notes = True, True, []
    if block is not None:
        try:
            sessions.reopen(source, block)
        except Exception as reopen_error:  # noqa: BLE001
            reopened = False
            notes.append(f"COULD NOT REOPEN THE SOURCE ({reopen_error}); it is still blocked: run the move again or reopen it by hand")
    left = replication.teardown(source, target, database)
    if left:
        clean = False
        notes.append("left behind: " + "; ".join(left))
    try:
        objects = drops.drop_owned_objects(target, database, owner, keep_extensions=target_extensions)
        if objects:
            clean = False
            notes.append(f"the target still holds {', '.join(objects[:5])}")
        elif clean:
            replication.unmark_receiving(target, database)  # empty again: no longer a copy in progress
    except Exception as clean_error:  # noqa: BLE001
        clean = False
        notes.append(f"could not empty the target ({clean_error}); the next move of this database empties it")
    cause = str(error) or type(error).__name__
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        cause = f"interrupted ({type(error).__name__})"
    outcome = ("source reopened" if reopened else "source NOT reopened") if block is not None else "source never blocked"
    outcome += ", replication removed and target emptied" if clean else ", target NOT clean"
    message = f"live move of {where} failed: {cause}; {outcome}; the app keeps using the source"
    if notes:
        message += "; " + "; ".join(notes)
    return MoveError(message, reopened, clean)
