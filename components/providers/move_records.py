"""What a move leaves on the servers and reports: its markers (COMMENTs), its report, its error.

Shared by the dump-and-restore move (components/providers/postgres.py) and the live move
(components/providers/live_move.py); the COMMENTs are how a later run recognises a move that died.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from fleet.errors import FleetError
from fleet.postgres import catalog, sessions
from fleet.postgres.access import ServerAccess

MOVED_MARKER = "tenant-fleet: moved to "
"""Start of the COMMENT a move leaves on the source database (and what a purge looks for on former servers)."""

_MOVED = re.compile(r"^tenant-fleet: moved to (?P<server>\S+) \((?P<address>[^)]*)\) at (?P<at>[^;\s]+);")

BLOCKED_MARKER = "tenant-fleet: blocked for "
"""Start of the COMMENT set, in the same transaction as the block, while a move or a purge holds a database
blocked; it carries the state to reopen it with, should the process die before it can (`reopen_interrupted`)."""

_BLOCKED = re.compile(r"^tenant-fleet: blocked for (?P<purpose>.+?) since (?P<at>\S+); reopen with: (?P<state>\{.*\})$", re.S)


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")




class MoveError(FleetError):
    """A move failed; `source_reopened` says whether the source serves again, `target_clean` whether the target is empty."""

    def __init__(self, message: str, source_reopened: bool = True, target_clean: bool = True) -> None:
        super().__init__(message)
        self.source_reopened = source_reopened
        self.target_clean = target_clean

    def __reduce__(self):
        return (type(self), (str(self), self.source_reopened, self.target_clean))


@dataclass
class MoveReport:
    """What a move did and how long each phase took (seconds)."""

    database: str
    source: str
    """Server key the data came from."""
    target: str
    """Server key the data is on now."""
    started_at: str
    adopted: bool = False
    """True when an earlier, finished move was recognized and verified instead of copying again."""
    recovered: Optional[str] = None
    """Set when an earlier move had died with the source blocked: what was reopened and cleaned first."""
    sessions_ended: int = 0
    dump_bytes: int = 0
    tables: int = 0
    rows: int = 0
    checksummed_tables: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    """preflight, block, terminate, copy (dump + restore, source facts alongside), verify, finish."""
    blocked_seconds: float = 0.0
    """From blocking the source to the end of the move: how long the tenant's writes were refused by this step."""
    method: str = "dump"
    """`logical` (copied while the tenant kept writing, blocked only for the cutover) or `dump` (blocked throughout)."""
    method_reason: str = ""
    """Why that method, in one line (e.g. `wal_level is replica, not logical, on the source (...)`)."""
    copy_seconds: float = 0.0
    """How long the data took to copy (logical: initial copy and catch-up while the tenant wrote; dump: dump and restore)."""
    replica_identity_full: list[str] = field(default_factory=list)
    """Tables without a primary key that had REPLICA IDENTITY FULL for a live move (restored afterwards)."""
    sequences_set: int = 0
    """Sequences set on the target from the source at cutover (logical)."""
    counted_only: list[str] = field(default_factory=list)
    """Tables written to during a live copy and too big to checksum inside the window: verified by exact count there."""
    verified_early: int = 0
    """Tables verified before the block and not written to since (logical): the window re-verifies only the others."""

    def summary(self) -> dict[str, Any]:
        """JSON-able form, as recorded in the placement's `moves` output."""
        return asdict(self)


def finish_verification(
    report: MoveReport, problems: list[str], source_facts: catalog.DatabaseFacts, source: ServerAccess, database: str, during: str
) -> None:
    """The end of a move's verification: `problems` (catalog.compare_facts), and any session that reached the blocked
    source `during` the copy (a superuser is not held back by the connection limit), fail the move in one MoveError
    naming the first ten; otherwise `report` records what was verified."""
    intruders = sessions.other_sessions(source, database, include_fleet=False)
    if intruders:
        problems = [*problems, f"sessions connected to the source during {during}: {intruders}"]
    if problems:
        raise MoveError("verification failed: " + "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else ""))
    report.tables, report.rows, report.checksummed_tables = len(source_facts.counts), source_facts.rows, len(source_facts.checksums)


def moved_comment(target_key: str, target: ServerAccess, at: datetime, previous: Optional[str] = None) -> str:
    """The COMMENT left on a moved-away source database."""
    text = (
        f"{MOVED_MARKER}{target_key} ({target.label}) at {iso(at)}; blocked here "
        "(connection limit 0, role login off); kept until purged."
    )
    return f"{text} Previous comment: {previous}" if previous else text


def parse_moved_comment(comment: Optional[str]) -> Optional[dict[str, str]]:
    """`{"server", "address", "at"}` from a moved-away marker comment, or None when it is not one."""
    match = _MOVED.match(comment or "")
    return match.groupdict() if match else None


def blocked_comment(purpose: str, at: datetime, state: sessions.BlockState) -> str:
    """The COMMENT a blocked database carries while a move (`purpose` "move to <server>") or a purge runs."""
    return f"{BLOCKED_MARKER}{purpose} since {iso(at)}; reopen with: {json.dumps(state.to_mapping(), sort_keys=True)}"


def parse_blocked_comment(comment: Optional[str]) -> Optional[dict[str, Any]]:
    """`{"purpose", "at", "state": BlockState}` from a blocked-database COMMENT, or None."""
    match = _BLOCKED.match(comment or "")
    if not match:
        return None
    try:
        state = sessions.BlockState.from_mapping(json.loads(match.group("state")))
    except (ValueError, KeyError, TypeError):
        return None
    return {"purpose": match.group("purpose"), "at": match.group("at"), "state": state}
