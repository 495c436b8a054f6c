"""How a tenant's database move will copy its data, as the stack config declares it (no server is asked).

The move itself checks the live servers again (components/providers/postgres.py `_choose_method`): a
server declared able that turns out not to be (wal_level, free slots, the admin's rights) still moves by
dump and restore, and the move's report says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.model.spec import Environment


@dataclass(frozen=True)
class PlannedMove:
    """`logical` or `dump`, and why in one line."""

    method: str
    reason: str

    @property
    def words(self) -> str:
        """What a preview says of the copy, e.g. `data copy by logical replication, writes refused under a second`."""
        if self.method == "logical":
            return "data copy by logical replication, writes refused under a second"
        return f"data copy by dump and restore, writes refused throughout: {self.reason}"


def planned_move(environment: Environment, source: str, target: str) -> PlannedMove:
    """The method a move from server `source` to `target` will use, by their `logical_replication` settings."""
    declined = [key for key in (source, target) if key in environment.servers and not environment.servers[key].logical_replication]
    if declined:
        verb = "declares" if len(declined) == 1 else "declare"
        return PlannedMove("dump", " and ".join(f"server {key}" for key in declined) + f" {verb} logical_replication: false")
    return PlannedMove("logical", "both servers declare logical_replication (checked again on the servers when the move runs)")
