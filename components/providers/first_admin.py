"""TenantFirstAdmin: the plan's first-admin SQL run in the tenant's database as its owner role, with a generated password.

The SQL is the app's (it knows its users table); it gets %(email)s, %(password)s and %(tenant)s and should be an
upsert: create runs it, and so does every change of the email, the password (a rotation) or the SQL file. The
password stays a secret output of the stack (`fleet admin-credentials` shows it). Delete does nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional

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
from fleet.postgres.migrations import run_as_owner

__all__ = ["TenantFirstAdmin", "TenantFirstAdminArgs", "TenantFirstAdminProvider", "sql_digest"]

_TRACKED = ("database", "owner", "server", "sql_file", "digest", "email", "password")


def sql_digest(path: Path) -> str:
    """sha256 of the SQL file: editing it runs it again."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class TenantFirstAdminArgs(TenantDatabaseTarget):
    """Inputs of TenantFirstAdmin: its target, and what it runs with."""

    sql_file: str = ""
    """Absolute path of the plan's first-admin SQL."""
    digest: str = ""
    """sql_digest of it."""
    email: str = ""
    """The admin's login."""
    password: pulumi.Input[str] = ""
    """Its generated one-time password (secret)."""


class TenantFirstAdminProvider(ResourceProvider):
    """Runs the first-admin SQL on create and on every change of its inputs."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        path = news.get("sql_file")
        if not is_unknown(path) and (not isinstance(path, str) or not Path(path).is_absolute()):
            failures.append(CheckFailure("sql_file", f"sql_file must be an absolute path (got {path!r})"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return in_place_diff(olds, news, _TRACKED)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['tenant']}:first-admin", self._run(props, "create"))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._run(news, "update"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # the admin user stays: it is the app's data

    @staticmethod
    def _run(props: Mapping[str, Any], action: str) -> dict[str, Any]:
        with failure_context(resource_label("TenantFirstAdmin", dict(props)), f"{action} (tenant {props.get('tenant')})"):
            access = ServerAccess.from_mapping(props["servers"][props["server"]])
            statement = Path(props["sql_file"]).read_text(encoding="utf-8")
            run_as_owner(access, props["database"], props["owner"], statement, {"email": props["email"], "password": props["password"], "tenant": props["tenant"]})
        return {
            **{key: props.get(key) for key in (RESOURCE_NAME_KEY, "tenant", "role", *_TRACKED)},
            "ran_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class TenantFirstAdmin(FleetDynamicResource, module="postgres", name="TenantFirstAdmin"):
    """The tenant's first admin (see the module docstring)."""

    ran_at: pulumi.Output[str]

    def __init__(self, name: str, args: TenantFirstAdminArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            **args.target_props(name),
            "sql_file": args.sql_file,
            "digest": args.digest,
            "email": args.email,
            "password": pulumi.Output.secret(args.password),
            "ran_at": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["servers", "password"]))
        super().__init__(TenantFirstAdminProvider(), name, props, opts)
