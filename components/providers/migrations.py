"""TenantMigrations: the plan's SQL migrations and the tenant's modules, applied to its database as its owner role.

A job of the tenant (fleet.postgres.migrations does the work, with yoyo-migrations): create and update apply what
is pending, in order, and record it in the database, so a file that succeeded never runs again. Its inputs
carry a digest of every source, so a new or edited file is a diff that runs the job; nothing else does. A
failure fails this tenant's resource, naming the source, the file and the server's error, and what depends on
it (the app's containers) stays as it was. Delete does nothing: removing a module never drops its tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.providers import (
    RESOURCE_NAME_KEY,
    FleetDynamicResource,
    failure_context,
    in_place_diff,
    is_unknown,
    resource_label,
)
from components.providers.handover import TenantDatabaseTarget
from fleet.postgres.access import ServerAccess
from fleet.postgres.migrations import apply_migrations

__all__ = ["TenantMigrations", "TenantMigrationsArgs", "TenantMigrationsProvider"]

_TRACKED = ("database", "owner", "role", "server", "sources")


@dataclass(frozen=True)
class TenantMigrationsArgs(TenantDatabaseTarget):
    """Inputs of TenantMigrations: its target (pass the placement's database and server, so the job runs where the
    data is; the owner role runs the migrations, the app role is denied their record) and its sources."""

    sources: Sequence[Mapping[str, str]] = ()
    """In order: {name, folder (absolute), digest}: the plan's migrations (`app`), then each module."""


class TenantMigrationsProvider(ResourceProvider):
    """Applies pending migrations on create and whenever a source, the database, a role or the server changes."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        for source in news.get("sources") or []:
            if is_unknown(source):
                continue
            folder = source.get("folder")
            if not isinstance(folder, str) or not Path(folder).is_absolute():
                failures.append(CheckFailure("sources", f"source {source.get('name')!r}: folder must be absolute (got {folder!r})"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return in_place_diff(olds, news, _TRACKED)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._run(props, "create", {})
        return CreateResult(f"{props['tenant']}:migrations", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._run(news, "update", dict(olds.get("applied") or {})))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)  # the database's own record (_fleet_migrations) is what counts

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # never drops anything: a module removed from the list keeps its tables

    @staticmethod
    def _run(props: Mapping[str, Any], action: str, applied: dict[str, list]) -> dict[str, Any]:
        label = resource_label("TenantMigrations", dict(props))
        with failure_context(label, f"{action} (tenant {props.get('tenant')})"):
            access = ServerAccess.from_mapping(props["servers"][props["server"]])
            sources = {str(source["name"]): Path(str(source["folder"])) for source in props.get("sources") or []}
            report = apply_migrations(access, props["database"], props["owner"], sources, app=props.get("role") or None)
        for name, ids in report.applied.items():
            applied[name] = [*applied.get(name, []), *ids]
        return {
            **{key: props.get(key) for key in (RESOURCE_NAME_KEY, "tenant", *_TRACKED)},
            "applied": applied,
            "last_run": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "last_applied": report.applied,
        }


class TenantMigrations(FleetDynamicResource, module="postgres", name="TenantMigrations"):
    """The tenant's SQL migrations and modules (see the module docstring)."""

    applied: pulumi.Output[dict]
    """Every migration this resource applied, by source."""
    last_applied: pulumi.Output[dict]
    """What the last run applied, by source."""
    last_run: pulumi.Output[str]
    """When it last ran (UTC)."""

    def __init__(self, name: str, args: TenantMigrationsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            **args.target_props(name),
            "sources": [dict(source) for source in args.sources],
            "applied": None,
            "last_run": None,
            "last_applied": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["servers"]))
        super().__init__(TenantMigrationsProvider(), name, props, opts)
