"""RedisAclUser: a tenant's ACL user on the shared Redis, limited to its key and channel prefix (fleet/redis_users.py).

Create and update set the user to exactly its rules (`ACL SETUSER <user> reset ...`), so drift made by hand is
undone by the next `up`; refresh notices a user that is gone or differs. Delete removes the user and keeps its
keys: removing a tenant file never drops data (a purge is what deletes keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.providers import RESOURCE_NAME_KEY, FleetDynamicResource, failure_context, is_unknown, resource_label
from fleet.redis_users import RedisAdmin, delete_user, get_user, password_hash, set_user

__all__ = ["RedisAclUser", "RedisAclUserArgs", "RedisAclUserProvider"]

_REPLACE = ("username",)
_UPDATE = ("prefix", "password", "enabled", "admin")


@dataclass(frozen=True)
class RedisAclUserArgs:
    """Inputs of RedisAclUser."""

    tenant: pulumi.Input[str]
    """Tenant name (for messages)."""
    username: pulumi.Input[str]
    """The ACL user's name (fleet.model.derive.redis_username); a new name is a new user."""
    prefix: pulumi.Input[str]
    """Key and channel prefix the user is limited to (`tenant:<name>:`)."""
    password: pulumi.Input[str]
    """The user's password (secret); only its SHA-256 reaches the server."""
    enabled: pulumi.Input[bool]
    """False while the tenant is suspended: the user exists but can't authenticate."""
    redis: pulumi.Input[dict[str, Any]]
    """Admin access (secret): {host, port, admin_user, admin_password, tls}."""


def _admin(props: Mapping[str, Any]) -> RedisAdmin:
    return RedisAdmin.from_mapping(props["redis"])


def _coordinates(props: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    redis = props.get("redis")
    if not isinstance(redis, Mapping) or is_unknown(redis):
        return None
    return {key: redis.get(key) for key in ("host", "port", "admin_user", "tls")}


class RedisAclUserProvider(ResourceProvider):
    """Sets, checks and removes one tenant's ACL user on the shared Redis."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        for key in ("tenant", "username", "prefix"):
            value = news.get(key)
            if not is_unknown(value) and (not isinstance(value, str) or not value or " " in value):
                failures.append(CheckFailure(key, f"{key} must be a non-empty string without spaces (got {value!r})"))
        prefix = news.get("prefix")
        if isinstance(prefix, str) and not is_unknown(prefix) and any(char in prefix for char in "*?[]\\"):
            failures.append(CheckFailure("prefix", f"prefix {prefix!r} must not contain glob characters"))
        password = news.get("password")
        if not is_unknown(password) and (not isinstance(password, str) or len(password) < 16):
            failures.append(CheckFailure("password", "password must be a string of at least 16 characters"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in _REPLACE if is_unknown(news.get(key)) or olds.get(key) != news.get(key)]
        changed = [key for key in _UPDATE if key != "admin" and (is_unknown(news.get(key)) or olds.get(key) != news.get(key))]
        if _coordinates(news) != olds.get("admin"):
            changed.append("admin")  # the admin password alone is not compared: rotating it changes no user
        return DiffResult(changes=bool(replaces or changed), replaces=replaces, stables=[], delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._set(props, "create")
        return CreateResult(f"{props['username']}@{_admin(props).label}", outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._set(news, "update"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with failure_context(resource_label("RedisAclUser", props), "read"):
            found = get_user(_admin(props), props["username"])
        if found is None:
            return ReadResult("", {})  # gone: the next up creates it again
        flags = found.get("flags") or []
        current = dict(props)
        current["enabled"] = "on" in flags
        if password_hash(props.get("password") or "") not in (found.get("passwords") or []):
            current["password"] = ""  # changed by hand: the next up sets it back
        if found.get("keys") != f"~{props['prefix']}*":
            current["prefix"] = str(found.get("keys") or "")
        return ReadResult(id_, current)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        with failure_context(resource_label("RedisAclUser", props), "delete"):
            delete_user(_admin(props), props["username"])

    @staticmethod
    def _set(props: Mapping[str, Any], action: str) -> dict[str, Any]:
        with failure_context(resource_label("RedisAclUser", dict(props)), f"{action} on {_admin(props).label}"):
            persisted = set_user(_admin(props), props["username"], props["prefix"], props["password"], enabled=bool(props["enabled"]))
        return {
            RESOURCE_NAME_KEY: props.get(RESOURCE_NAME_KEY),
            "tenant": props["tenant"],
            "username": props["username"],
            "prefix": props["prefix"],
            "password": props["password"],
            "enabled": bool(props["enabled"]),
            "redis": props["redis"],
            "admin": _coordinates(props),
            "persisted": persisted,
        }


class RedisAclUser(FleetDynamicResource, module="redis", name="RedisAclUser"):
    """A tenant's ACL user on the shared Redis (see the module docstring)."""

    persisted: pulumi.Output[bool]
    """Whether the server saved it (ACL file or config rewrite); False: a restart of Redis loses it until the next up."""

    def __init__(self, name: str, args: RedisAclUserArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            RESOURCE_NAME_KEY: name,
            "tenant": args.tenant,
            "username": args.username,
            "prefix": args.prefix,
            "password": pulumi.Output.secret(args.password),
            "enabled": args.enabled,
            "redis": pulumi.Output.secret(args.redis),
            "admin": None,
            "persisted": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["password", "redis"]))
        super().__init__(RedisAclUserProvider(), name, props, opts)
