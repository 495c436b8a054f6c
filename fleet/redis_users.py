"""A tenant's ACL user on a shared Redis: its rules (its key and channel prefix only, no server-wide commands),
and setting, reading and removing it as the server's admin. Used by components/providers/redis.py.
"""


from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import redis

from fleet.errors import FleetError

DENIED_COMMANDS: tuple[str, ...] = (
    "-@admin",  # CONFIG, DEBUG, MONITOR, SHUTDOWN, ACL LIST/SETUSER, REPLICAOF, ...
    "-@dangerous",  # FLUSHALL, FLUSHDB, KEYS, INFO, SWAPDB, MIGRATE, CLIENT LIST/KILL, ...
    # Server-wide reads that ignore key patterns, so they would show the neighbours' key and channel names:
    "-scan",
    "-randomkey",
    "-dbsize",
    "-pubsub",
    "-memory|stats",
    "-memory|doctor",
    "-memory|malloc-stats",
    # Server-wide writes: functions and the script cache are shared by every user.
    "-function",
    "-script|flush",
    "-script|kill",
)
"""Taken away from `+@all`; what remains is every command on the tenant's own keys and channels."""


class RedisUserError(FleetError):
    """Talking to the Redis server failed; the message names the server and the user."""


@dataclass(frozen=True)
class RedisAdmin:
    """How to reach the shared Redis as its admin (the password never shows in repr)."""

    host: str
    port: int = 6379
    admin_user: str = "default"
    admin_password: str = field(default="", repr=False)
    tls: bool = False

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "RedisAdmin":
        return cls(
            host=str(data["host"]),
            port=int(data.get("port") or 6379),
            admin_user=str(data.get("admin_user") or "default"),
            admin_password=str(data.get("admin_password") or ""),
            tls=bool(data.get("tls")),
        )

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(
            host=self.host, port=self.port, username=self.admin_user, password=self.admin_password or None, ssl=self.tls,
            socket_timeout=10, socket_connect_timeout=5, decode_responses=True, **options,
        )


def password_hash(password: str) -> str:
    """The SHA-256 Redis keeps for a password (`#<hex>` in ACL rules): the plaintext never reaches the server's ACL."""
    return hashlib.sha256(password.encode()).hexdigest()


def acl_rules(prefix: str, password: str, *, enabled: bool) -> list[str]:
    """ACL SETUSER rules for a tenant: its password, `prefix*` keys and channels, every command but DENIED_COMMANDS."""
    if not prefix or any(char in prefix for char in "*?[]\\ "):
        raise ValueError(f"key prefix {prefix!r} must be non-empty and free of glob characters and spaces")
    return [
        "reset",  # drop whatever rules, passwords and patterns the user had (drift included)
        "on" if enabled else "off",
        f"#{password_hash(password)}",
        f"~{prefix}*",
        f"&{prefix}*",
        "+@all",
        *DENIED_COMMANDS,
    ]


def set_user(admin: RedisAdmin, username: str, prefix: str, password: str, *, enabled: bool) -> bool:
    """Create or reset the user to exactly its rules; returns whether the server persisted it (ACL file or config)."""
    try:
        with admin.client() as client:
            client.execute_command("ACL", "SETUSER", username, *acl_rules(prefix, password, enabled=enabled))
            return _persist(client)
    except redis.RedisError as error:
        raise RedisUserError(f"could not set ACL user {username!r} on {admin.label}: {error}") from None


def delete_user(admin: RedisAdmin, username: str) -> bool:
    """Remove the user (its keys stay); False when it was not there."""
    try:
        with admin.client() as client:
            removed = int(client.execute_command("ACL", "DELUSER", username)) > 0
            _persist(client)
            return removed
    except redis.RedisError as error:
        raise RedisUserError(f"could not delete ACL user {username!r} on {admin.label}: {error}") from None


def get_user(admin: RedisAdmin, username: str) -> Optional[dict[str, Any]]:
    """ACL GETUSER as a dict (`flags`, `passwords`, `keys`, `channels`, `commands`), or None when absent."""
    try:
        with admin.client() as client:
            reply = client.execute_command("ACL", "GETUSER", username)
    except redis.RedisError as error:
        raise RedisUserError(f"could not read ACL user {username!r} on {admin.label}: {error}") from None
    if not reply:
        return None
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def _persist(client: redis.Redis) -> bool:
    """ACL SAVE where the server has an ACL file, else CONFIG REWRITE where it has a config file; False when neither."""
    for command in (("ACL", "SAVE"), ("CONFIG", "REWRITE")):
        try:
            client.execute_command(*command)
            return True
        except redis.ResponseError:
            continue
    return False
