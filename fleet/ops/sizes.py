"""Measured database sizes for `fleet cost`: from a `fleet status --json` file, or from the live servers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleet.errors import FleetError, InputError


def sizes_from_document(document: Any, where: str) -> dict[str, int]:
    """Bytes by tenant from `fleet status --json` (`{"tenants": [{"tenant", "size_bytes"}]}`) or a plain `{tenant: bytes}`.

    Tenants whose size is null (a server that could not be read) are left out: their plan's allowance is used.
    Raises InputError listing every malformed entry.
    """
    if isinstance(document, dict) and isinstance(document.get("tenants"), list):
        pairs = [(row.get("tenant"), row.get("size_bytes")) if isinstance(row, dict) else (None, row) for row in document["tenants"]]
    elif isinstance(document, dict) and "tenants" not in document:
        pairs = list(document.items())
    else:
        raise InputError(f"{where}: expected `fleet status --json` output or an object {{tenant: bytes}}")
    sizes: dict[str, int] = {}
    problems = []
    for tenant, size in pairs:
        if not isinstance(tenant, str):
            problems.append(f"an entry without a tenant name: {tenant!r}")
        elif size is None:
            continue
        elif isinstance(size, bool) or not isinstance(size, int) or size < 0:
            problems.append(f"{tenant}: {size!r} is not a size in bytes")
        else:
            sizes[tenant] = size
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems))
    return sizes


def sizes_from_file(path: Path) -> dict[str, int]:
    """Bytes by tenant from a JSON file (see sizes_from_document)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"--sizes {path}: can't read sizes ({error})") from None
    return sizes_from_document(document, f"--sizes {path}")


def live_sizes(inventory) -> dict[str, int]:
    """Bytes by tenant as the servers report them now (`fleet status`); a server that can't be read is an error."""
    from fleet.ops.status import fleet_status

    rows, servers = fleet_status(inventory, None, containers=lambda: [])
    failed = [f"{server.server}: {server.error}" for server in servers if server.error]
    if failed:
        raise FleetError("--sizes live: can't measure every database (" + "; ".join(failed) + ")")
    return {row.tenant: row.size_bytes for row in rows if row.size_bytes is not None}
