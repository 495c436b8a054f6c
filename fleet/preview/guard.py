"""The deploy guard: the engine's own preview must not replace a database the YAML did not ask to move.
"""


from __future__ import annotations

from typing import Any

from fleet.model.type_tokens import DATABASE

# ---------------------------------------------------------------- guard on the engine's own preview


REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced"})


def unrequested_database_replacements(engine_preview: dict[str, Any]) -> list[str]:
    """URNs of databases that `pulumi preview --json` would replace: no tenant file ever asks for that.

    (A removal or a move deletes a database with retain_on_delete, which keeps the data: allowed. A
    purge drops data through its own resource, never by replacing the Database.)
    """
    found = []
    for step in engine_preview.get("steps") or []:
        urn = step.get("urn", "")
        if step.get("op") in REPLACE_OPS and f"{DATABASE}::" in urn and urn not in found:
            found.append(urn)
    return found
