"""What the state backend holds: the stacks of the project and the fingerprint each was last deployed from.

The fingerprint is a stack tag (`fleet-fingerprint`), set through the engine after a successful `up`.
Reading a thousand tags through the engine would take a process each, so they are read in one pass from
the backend's own storage, where the DIY backend keeps them beside each checkpoint
(`.pulumi/stacks/<project>/<stack>.pulumi-tags`): files for `file://`, rows for `postgres://`.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any, Iterable, Optional

import psycopg
from psycopg import sql

from fleet.errors import FleetError
from fleet.model.type_tokens import PROJECT_NAME

FINGERPRINT_TAG = "fleet-fingerprint"
"""The stack tag holding the fingerprint of the last successful `up` (fleet.engine.fingerprints)."""
STACKS_PREFIX = f".pulumi/stacks/{PROJECT_NAME}/"
CHECKPOINT_SUFFIXES = (".json", ".json.gz")
TAGS_SUFFIX = ".pulumi-tags"
LOCKS_PREFIX = f".pulumi/locks/organization/{PROJECT_NAME}/"


class Ledger:
    """The stacks in a backend (`file://...` or `postgres://...`) and their recorded fingerprints."""

    def __init__(self, backend_url: str) -> None:
        self.backend_url = backend_url
        scheme = urllib.parse.urlsplit(backend_url).scheme
        if scheme not in ("file", "postgres", "postgresql"):
            raise FleetError(f"backend {scheme}:// is not supported by fleet's stack ledger: use file:// or postgres://")
        self.scheme = scheme

    def read(self) -> dict[str, Optional[str]]:
        """Every stack of the project, with its recorded fingerprint (None when it has none)."""
        blobs = self._file_blobs() if self.scheme == "file" else self._postgres_blobs()
        stacks: dict[str, Optional[str]] = {}
        tags: dict[str, bytes] = {}
        for key, data in blobs:
            name = key[key.index(STACKS_PREFIX) + len(STACKS_PREFIX):]
            if "/" in name:
                continue
            for suffix in CHECKPOINT_SUFFIXES:
                if name.endswith(suffix):
                    stacks.setdefault(name.removesuffix(suffix), None)
            if name.endswith(TAGS_SUFFIX) and data is not None:
                tags[name.removesuffix(TAGS_SUFFIX)] = data
        for stack in stacks:
            if stack in tags:
                stacks[stack] = _fingerprint_of(tags[stack])
        return stacks

    def locks(self, stack: str) -> list[tuple[str, dict[str, Any]]]:
        """The engine's locks on a stack: (storage key, holder: pid, username, hostname, timestamp)."""
        prefix = f"{LOCKS_PREFIX}{stack}/"
        found = []
        blobs: list[tuple[str, Optional[bytes]]]
        if self.scheme == "file":
            folder = self._file_root() / prefix
            blobs = [(prefix + path.name, path.read_bytes()) for path in folder.glob("*.json")] if folder.is_dir() else []
        else:
            blobs = self._postgres_query(f"{self._key_base()}{prefix}%", everything=True)
        for key, data in blobs:
            try:
                holder = json.loads(data or b"{}")
            except ValueError:
                holder = {}
            found.append((key, holder if isinstance(holder, dict) else {}))
        return found

    def pending_operations(self, stack: str) -> list[dict[str, Any]]:
        """The operations a crashed update left pending in a stack's checkpoint (read directly: no engine call)."""
        key = f"{STACKS_PREFIX}{stack}.json"
        if self.scheme == "file":
            path = self._file_root() / key
            data: Optional[bytes] = path.read_bytes() if path.exists() else None
        else:
            rows = self._postgres_query(f"{self._key_base()}{key}", everything=True)
            data = rows[0][1] if rows else None
        if not data:
            return []
        try:
            checkpoint = json.loads(data)
        except ValueError:
            return []
        return ((checkpoint.get("checkpoint") or {}).get("latest") or {}).get("pending_operations") or []

    def repair(self, stack: str) -> list[str]:
        """Undo what a write cut off by a kill leaves in a file backend: an empty attributes sidecar (which the
        engine then fails to read: "failed to load checkpoint: EOF") and half-written temporary files. Call it
        only when no live run holds the stack's lock. Returns the files removed."""
        if self.scheme != "file":
            return []
        folder = self._file_root() / STACKS_PREFIX
        removed = []
        for path in sorted(folder.glob(f"{stack}.json*.attrs")):
            try:
                json.loads(path.read_text(encoding="utf-8") or "not json")
            except (ValueError, OSError):
                path.unlink(missing_ok=True)  # the blob store treats a missing sidecar as default attributes
                removed.append(path.name)
        for path in sorted(folder.glob(f"{stack}.json.*.tmp")):
            path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed

    def remove(self, key: str) -> None:
        """Delete one blob (a stale lock) from the backend's storage."""
        if self.scheme == "file":
            (self._file_root() / key).unlink(missing_ok=True)
            return
        with self._connect() as connection:
            connection.execute(sql.SQL("DELETE FROM {} WHERE key = %s").format(sql.Identifier(self._table())), (key,))

    def _file_root(self) -> Path:
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(self.backend_url).path))

    def _key_base(self) -> str:
        base = urllib.parse.urlsplit(self.backend_url).path.strip("/")
        return f"{base}/" if base else ""

    def _table(self) -> str:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.backend_url).query)).get("table", "pulumi_state")

    def _connect(self) -> psycopg.Connection:
        parts = urllib.parse.urlsplit(self.backend_url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query.pop("table", None)
        dsn = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), ""))
        try:
            return psycopg.connect(dsn, connect_timeout=10, autocommit=True)
        except psycopg.Error as error:
            raise FleetError(f"can't reach the state backend ({parts.hostname}:{parts.port}/{parts.path.lstrip('/')}): {error}") from None

    def _postgres_query(self, pattern: str, *, everything: bool = False) -> list[tuple[str, Optional[bytes]]]:
        try:
            with self._connect() as connection:
                rows = connection.execute(
                    sql.SQL("SELECT key, CASE WHEN %s OR key LIKE %s THEN data::text END FROM {} WHERE key LIKE %s").format(sql.Identifier(self._table())),
                    (everything, f"%{TAGS_SUFFIX}", pattern),
                ).fetchall()
        except psycopg.errors.UndefinedTable:
            return []  # the engine creates the table on its first write: nothing there yet
        except psycopg.Error as error:
            raise FleetError(f"can't read the state backend: {error}") from None
        return [(key, base64.b64decode(json.loads(data)["data"]) if data else None) for key, data in rows]

    def _file_blobs(self) -> Iterable[tuple[str, Optional[bytes]]]:
        root = self._file_root()
        folder = root / STACKS_PREFIX
        if not folder.is_dir():
            return []
        found: list[tuple[str, Optional[bytes]]] = []
        for path in folder.iterdir():
            if path.name.endswith(TAGS_SUFFIX):
                found.append((STACKS_PREFIX + path.name, path.read_bytes()))
            elif path.name.endswith(CHECKPOINT_SUFFIXES):
                found.append((STACKS_PREFIX + path.name, None))
        return found

    def _postgres_blobs(self) -> Iterable[tuple[str, Optional[bytes]]]:
        # The backend keys every blob under the URL's path: `<database>/.pulumi/stacks/...`.
        return self._postgres_query(f"{self._key_base()}{STACKS_PREFIX}%")


def _fingerprint_of(tags_file: bytes) -> Optional[str]:
    try:
        return json.loads(tags_file).get("tags", {}).get(FINGERPRINT_TAG)
    except (ValueError, AttributeError):
        return None
