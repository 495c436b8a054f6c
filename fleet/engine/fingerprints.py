"""What a stack was deployed from, as one hash: changed inputs mean a new fingerprint, so the stack must run.

A tenant stack's fingerprint covers its validated tenant file, its plan, the parts of the environment it
uses (its database server and the registry's, with their encrypted passwords, and everything else but the
other servers) and the program's version (the source of every module the program runs). `fleet up` records
it on the stack after a successful `up` and runs only the stacks whose fingerprint differs.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from fleet.model.spec import Fleet, TenantSpec
from fleet.paths import PROGRAM_SOURCES

FINGERPRINT_VERSION = 1
"""Bumped when the recipe below changes, so that every stack is deployed once under the new one."""


def program_version(root: Path) -> str:
    """A hash of the program's source files (paths and contents)."""
    return _program_version(str(root), tuple(_source_stamps(root)))


def _source_stamps(root: Path) -> Iterable[tuple[str, int, int]]:
    for entry in PROGRAM_SOURCES:
        path = root / entry
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and file.suffix in (".py", ".txt", ".yaml", ".json") and "__pycache__" not in file.parts:
                stat = file.stat()
                yield str(file.relative_to(root)), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=4)
def _program_version(root: str, stamps: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for relative, _size, _mtime in stamps:
        digest.update(relative.encode() + b"\0" + (Path(root) / relative).read_bytes() + b"\0")
    return digest.hexdigest()


def raw_stack_config(stack_file: Path) -> dict[str, Any]:
    """The `fleet:` config of a stack file as written, encrypted values included (a rotated password changes it)."""
    data = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    config = data.get("config") or {}
    return {key.split(":", 1)[1]: value for key, value in config.items() if isinstance(key, str) and key.startswith("fleet:")}


def _servers_used(raw: dict[str, Any], servers: set[str]) -> dict[str, Any]:
    """The environment as one tenant's stack sees it: the other servers (and their passwords) left out."""
    used = {key: value for key, value in raw.items() if key not in ("servers", "server_passwords", "tenants")}
    used["servers"] = {key: value for key, value in (raw.get("servers") or {}).items() if key in servers}
    used["server_passwords"] = {key: value for key, value in (raw.get("server_passwords") or {}).items() if key in servers}
    return used


def tenant_fingerprint(fleet: Fleet, tenant: TenantSpec, raw_config: dict[str, Any], program: str) -> str:
    """The fingerprint of one tenant's stack."""
    servers = {tenant.database.server}
    if fleet.environment.registry is not None:
        servers.add(fleet.environment.registry.server)
    return _digest(
        {
            "kind": "tenant",
            "tenant": tenant.model_dump(mode="json"),
            "plan": fleet.plan_of(tenant).model_dump(mode="json", exclude={"alerts"}),  # thresholds are Prometheus rules, no resource
            "environment": _servers_used(raw_config, servers),
            "program": program,
        }
    )


def platform_fingerprint(raw_config: dict[str, Any], program: str) -> str:
    """The fingerprint of an environment's platform stack."""
    return _digest({"kind": "platform", "environment": {k: v for k, v in raw_config.items() if k != "tenants"}, "program": program})


def _digest(document: dict[str, Any]) -> str:
    text = json.dumps({"version": FINGERPRINT_VERSION, **document}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
