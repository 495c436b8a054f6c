"""RoleSettings: `ALTER ROLE ... SET` of the limits the official Role resource can't declare (work_mem, temp_file_limit).

The official `postgresql.Role` carries `statement_timeout` and `idle_in_transaction_session_timeout` itself;
the plan's `work_mem` and `temp_file_limit` (fleet.model.db_limits) come through this resource. A change
is an update in place (new sessions get the new values); refresh reads the live values back so drift shows;
delete leaves the settings on the role, which is retained anyway (a limit left behind never loses data).
"""

from __future__ import annotations

from dataclasses import dataclass
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
from fleet.postgres import role_settings
from fleet.postgres.access import ServerAccess

__all__ = ["RoleSettings", "RoleSettingsArgs", "RoleSettingsProvider"]

_TRACKED = ("role", "server", "settings")


@dataclass(frozen=True)
class RoleSettingsArgs:
    """Inputs of RoleSettings."""

    tenant: pulumi.Input[str]
    """Tenant name (for messages)."""
    role: pulumi.Input[str]
    """The login role (pass `Role.name`, so the settings come after it)."""
    server: pulumi.Input[str]
    """Key of the server, in `servers`."""
    servers: pulumi.Input[dict[str, Any]]
    """Admin access per server key (secret): {host, port, admin_user, admin_password, sslmode}."""
    settings: pulumi.Input[dict[str, str]]
    """Setting name -> value (`{"work_mem": "4096kB"}`), from `RoleLimits.memory_settings()`."""


class RoleSettingsProvider(ResourceProvider):
    """Applies the settings on create and update; reads them back on refresh; delete leaves them."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        for key in ("tenant", "role", "server"):
            value = news.get(key)
            if not is_unknown(value) and (not isinstance(value, str) or not value or len(value.encode()) > 63):
                failures.append(CheckFailure(key, f"{key} must be a non-empty name of at most 63 bytes (got {value!r})"))
        settings = news.get("settings")
        if not is_unknown(settings):
            if not isinstance(settings, Mapping) or not settings:
                failures.append(CheckFailure("settings", f"settings must be a non-empty mapping (got {settings!r})"))
            else:
                unknown = sorted(set(settings) - role_settings.SETTING_NAMES)
                if unknown:
                    failures.append(CheckFailure("settings", f"not settings the fleet manages: {', '.join(unknown)}"))
        check_server_entry(news, failures)
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Never a replacement: ALTER ROLE ... SET changes a role in place. Admin credentials are not compared.
        return in_place_diff(olds, news, _TRACKED)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(props, "create")
        return CreateResult(f"{props['role']}@{props['server']}", outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._apply(news, "update"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with failure_context(resource_label("RoleSettings", props), f"read on {props.get('server')!r}"):
            access = ServerAccess.from_mapping(props["servers"][props["server"]])
            live = role_settings.role_settings(access, [props["role"]])[props["role"]]
        current = dict(props)
        # Only the managed names: a value changed or removed by hand shows as a diff, and the next up puts it back.
        current["settings"] = {
            name: (value if role_settings.normalized(live.get(name)) == role_settings.normalized(value) else live.get(name, ""))
            for name, value in (props.get("settings") or {}).items()
        }
        return ReadResult(id_, current)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Deliberately nothing: the role is retained when a tenant leaves, and a limit on it harms no data.
        return None

    @staticmethod
    def _apply(props: Mapping[str, Any], action: str) -> dict[str, Any]:
        with failure_context(resource_label("RoleSettings", dict(props)), f"{action} on {props.get('server')!r}"):
            access = ServerAccess.from_mapping(props["servers"][props["server"]])
            role_settings.apply_role_settings(access, props["role"], dict(props["settings"]))
        return {key: props.get(key) for key in (RESOURCE_NAME_KEY, "tenant", "servers", *_TRACKED)}


class RoleSettings(FleetDynamicResource, module="role_settings", name="RoleSettings"):
    """A login role's work_mem and temp_file_limit (see the module docstring)."""

    settings: pulumi.Output[dict]

    def __init__(self, name: str, args: RoleSettingsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            RESOURCE_NAME_KEY: name,
            "tenant": args.tenant,
            "role": args.role,
            "server": args.server,
            "servers": pulumi.Output.secret(args.servers),
            "settings": args.settings,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["servers"]))
        super().__init__(RoleSettingsProvider(), name, props, opts)
