"""The folders of SQL migrations a tenant's job applies: which files, in what order, their digest, and what they may not do.

Pure file reading (fleet.postgres.migrations applies them). A source is the plan's `migrations:` folder (`app`)
or a module, `modules/<name>/` in the repository.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROLE_SWITCH = re.compile(r"\b(reset\s+role|set\s+(local\s+|session\s+)?role|set\s+session\s+authorization|reset\s+session\s+authorization)\b", re.I)
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
MODULES_FOLDER = "modules"
"""Where modules live in the repository: `modules/<name>/*.sql`."""


def migration_files(folder: Path) -> list[Path]:
    """The `.sql` files of a source folder, in the order they are applied (by name)."""
    return sorted(path for path in Path(folder).glob("*.sql") if path.is_file() and not path.name.endswith(".rollback.sql"))


def digest(folder: Path) -> str:
    """sha256 over a source's file names and contents: a new or edited file changes it (and runs the job)."""
    hasher = hashlib.sha256()
    for path in migration_files(folder):
        hasher.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()


def check_source(name: str, folder: Path) -> list[str]:
    """Problems of one source: a bad name, a missing folder, no files, or a file that switches roles."""
    if not SOURCE_NAME.match(name):
        return [f"source name {name!r} must be a lowercase word with _"]
    if not Path(folder).is_dir():
        return [f"{folder} is not a folder"]
    files = migration_files(Path(folder))
    if not files:
        return [f"{folder} holds no .sql migrations"]
    return [
        f"{path.name} switches roles ({match.group(0)!r}): migrations run as the tenant's owner role only"
        for path in files
        if (match := ROLE_SWITCH.search(path.read_text(encoding="utf-8", errors="replace")))
    ]


def check_admin_sql(path: Path) -> list[str]:
    """Problems of a plan's first-admin SQL file: missing, without the %(password)s parameter, or switching roles."""
    if not Path(path).is_file():
        return [f"{path} is not a file"]
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    problems = [] if "%(password)s" in text else ["it never uses %(password)s: the generated password would go nowhere"]
    if (match := ROLE_SWITCH.search(text)) is not None:
        problems.append(f"it switches roles ({match.group(0)!r}): it runs as the tenant's owner role only")
    return problems
