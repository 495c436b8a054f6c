"""OwnerHandover: gives a tenant's database and objects to its NOLOGIN owner role, leaving the app role the rest.

Declared before the tenant's Database, so the official resource then finds the owner it declares already in
place. On a tenant created before the owner/app split this is the migration: one transaction per database,
no row touched, the app's password and open sessions kept. On a new tenant there is no database yet and it
records that; the official Database, Grant and DefaultPrivileges resources create the same access.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.providers import (
    RESOURCE_NAME_KEY,
    FleetDynamicResource,
    check_server_entry,
    failure_context,
    in_place_diff,
    is_unknown,
    resource_label,
)
from fleet.postgres import catalog, privileges
from fleet.postgres.access import ServerAccess

__all__ = ["OwnerHandover", "OwnerHandoverArgs", "OwnerHandoverProvider", "TenantDatabaseTarget"]

_TRACKED = ("database", "owner", "role", "server")


@dataclass(frozen=True)
class TenantDatabaseTarget:
    """A tenant's database and roles on one server, as the project's PostgreSQL jobs take them."""

    tenant: pulumi.Input[str]
    """Tenant name (for messages)."""
    database: pulumi.Input[str]
    """The tenant's database name."""
    owner: pulumi.Input[str]
    """The NOLOGIN owner role (pass `Role.name`, so the job comes after it)."""
    role: pulumi.Input[str]
    """The app's login role (pass `Role.name`)."""
    server: pulumi.Input[str]
    """Key of the server, in `servers`."""
    servers: pulumi.Input[dict[str, Any]]
    """Admin access per server key (secret): {host, port, admin_user, admin_password, sslmode}."""

    def target_props(self, name: str) -> dict[str, Any]:
        """The inputs every job on this target declares (`servers` as a secret; list it in additional_secret_outputs)."""
        return {
            RESOURCE_NAME_KEY: name,
            "tenant": self.tenant,
            "database": self.database,
            "owner": self.owner,
            "role": self.role,
            "server": self.server,
            "servers": pulumi.Output.secret(self.servers),
        }


@dataclass(frozen=True)
class OwnerHandoverArgs(TenantDatabaseTarget):
    """Inputs of OwnerHandover: just its target."""


class OwnerHandoverProvider(ResourceProvider):
    """Runs the handover on create and whenever the database, a role or the server changes; delete does nothing."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        for key in ("tenant", *_TRACKED):
            value = news.get(key)
            if not is_unknown(value) and (not isinstance(value, str) or not value or len(value.encode()) > 63):
                failures.append(CheckFailure(key, f"{key} must be a non-empty name of at most 63 bytes (got {value!r})"))
        if not is_unknown(news.get("owner")) and not is_unknown(news.get("role")) and news.get("owner") == news.get("role"):
            failures.append(CheckFailure("owner", "the owner role must not be the app's login role"))
        check_server_entry(news, failures)
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # The admin password is not compared: rotating it must not look like a change to every tenant.
        return in_place_diff(olds, news, _TRACKED)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._hand_over(props, "create")
        return CreateResult(f"{props['tenant']}:{props['database']}@{props['server']}", outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._hand_over(news, "update"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # A record of the handover; drift in grants is `fleet verify`'s and the official resources' business.
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Nothing to undo: giving the app role ownership back is exactly what this resource exists to prevent.
        return None

    @staticmethod
    def _hand_over(props: Mapping[str, Any], action: str) -> dict[str, Any]:
        with failure_context(resource_label("OwnerHandover", dict(props)), f"{action} on {props.get('server')!r}"):
            access = ServerAccess.from_mapping(props["servers"][props["server"]])
            database = props["database"]
            outs: dict[str, Any] = {key: props.get(key) for key in (RESOURCE_NAME_KEY, "tenant", *_TRACKED)}
            if not catalog.database_exists(access, database):
                # A new tenant: its Database resource creates the database owned by the owner role.
                outs.update(handed_over_at=None, reassigned=0, schemas=[])
                return outs
            report = privileges.apply_tenant_access(access, database, props["owner"], props["role"])
            outs.update(
                handed_over_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                reassigned=report.reassigned,
                schemas=report.schemas,
            )
            return outs


class OwnerHandover(FleetDynamicResource, module="postgres", name="OwnerHandover"):
    """Hands a tenant's database to its owner role (see the module docstring)."""

    handed_over_at: pulumi.Output[Optional[str]]
    """When a database was found and handed over (UTC), or None when it did not exist yet."""
    reassigned: pulumi.Output[int]
    """Objects the app role owned and the owner role got (the database included)."""
    schemas: pulumi.Output[list]
    """Schemas the app role was granted USAGE and CREATE on."""

    def __init__(self, name: str, args: OwnerHandoverArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            **args.target_props(name),
            "handed_over_at": None,
            "reassigned": None,
            "schemas": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["servers"]))
        super().__init__(OwnerHandoverProvider(), name, props, opts)
