"""Tenants' Redis users as `pulumi up`s of the real engine against a real redis-server, tried as an attacker.

The inline program declares each tenant's RedisAclUser as components/cache.py does, with the password
from the stack's secret config (pulumi-random, which generates it in the program, can't run here):

1. `up` creates a user per tenant; a preview then shows no changes; the ACL file holds them;
2. as tenant alpha: its own keys and channels work; beta's keys and channels, FLUSHALL, KEYS, SCAN,
   CONFIG, INFO, ACL and FUNCTION are refused;
3. a user loosened by hand (`~*`) is put back by a refreshing `up`;
4. suspend, then rotation: the user can't authenticate while suspended; after a rotation the old password is refused;
5. beta removed from the program: its user is gone, its keys are still there.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
import redis

from components.providers.redis import RedisAclUser, RedisAclUserArgs
from fleet.bench.servers import RedisServerProcess
from fleet.engine import driver as engine
from tests.support.fixtures import require_engine, running

STACK = "e2e-redis"


def _entry(secrets: pulumi.Output[Any], key: str) -> pulumi.Output[str]:
    """One entry of a secret object, for the key as it is now (not as a loop leaves it when the output resolves)."""
    return secrets.apply(lambda all_: all_[key])


class RedisStack:
    """The inline program and its knobs (which tenants, suspended, passwords)."""

    def __init__(self, server: RedisServerProcess, backend) -> None:
        self.server = server
        self.backend = backend
        self.tenants = ["alpha", "beta"]
        self.suspended: set[str] = set()
        self.passwords = {tenant: f"{tenant}-redis-password-0000000001" for tenant in ("alpha", "beta")}

    def program(self) -> None:
        config = pulumi.Config("fleet")
        passwords = config.require_secret_object("test_redis_passwords")
        access: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(
            config.require_secret("redis_password").apply(
                lambda password: {"host": self.server.host, "port": self.server.port, "admin_user": "default", "admin_password": password, "tls": False}
            )
        )
        for tenant in self.tenants:
            user = RedisAclUser(
                f"{tenant}-redis-user",
                RedisAclUserArgs(
                    tenant=tenant,
                    username=f"tenant_{tenant}",
                    prefix=f"tenant:{tenant}:",
                    password=_entry(passwords, tenant),
                    enabled=tenant not in self.suspended,
                    redis=access,
                ),
            )
            pulumi.export(f"{tenant}_persisted", user.persisted)

    def run(self, op: str, **options) -> dict:
        secrets = {"fleet:redis_password": self.server.admin_password, "fleet:test_redis_passwords": self.passwords}
        return engine.run(op, engine.stack_for(STACK, self.program, backend_dir=self.backend, secrets=secrets), on_output=None, **options)

    def as_tenant(self, tenant: str, password: str | None = None) -> redis.Redis:
        return self.server.client(f"tenant_{tenant}", password or self.passwords[tenant])


def refused(client: redis.Redis, *command) -> str:
    with pytest.raises(redis.RedisError) as raised:
        client.execute_command(*command)
    return str(raised.value)


@pytest.fixture(scope="module")
def fleet_redis(tmp_path_factory):
    require_engine()
    with running(RedisServerProcess("e2e-redis-admin-secret")) as (server,):
        yield RedisStack(server, tmp_path_factory.mktemp("state"))


def test_up_creates_one_user_per_tenant_and_a_preview_then_shows_no_changes(fleet_redis):
    summary = fleet_redis.run("up")
    assert summary["changes"] == {"create": 3}
    assert summary["outputs"]["alpha_persisted"] is True and summary["outputs"]["beta_persisted"] is True
    assert set(fleet_redis.run("preview")["changes"]) == {"same"}
    saved = fleet_redis.server.acl_path.read_text()
    assert "user tenant_alpha on" in saved and "~tenant:alpha:*" in saved
    assert fleet_redis.passwords["alpha"] not in saved  # only the SHA-256 reaches the server


def test_a_tenant_reaches_its_own_keys_and_channels_only(fleet_redis):
    admin = fleet_redis.server.client()
    admin.set("tenant:beta:invoice", "beta's data")
    alpha = fleet_redis.as_tenant("alpha")
    alpha.set("tenant:alpha:session", "mine")
    assert alpha.get("tenant:alpha:session") == "mine"
    alpha.publish("tenant:alpha:events", "hello")
    assert "no permissions to access one of the keys" in refused(alpha, "GET", "tenant:beta:invoice")
    assert "no permissions to access one of the keys" in refused(alpha, "SET", "tenant:beta:invoice", "overwritten")
    assert "no permissions to access one of the keys" in refused(alpha, "DEL", "tenant:beta:invoice")
    assert "no permissions to access one of the channels" in refused(alpha, "PUBLISH", "tenant:beta:events", "x")
    assert "no permissions to access one of the channels" in refused(alpha, "SUBSCRIBE", "tenant:beta:events")
    for command in (("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"), ("SCAN", "0"), ("RANDOMKEY",), ("DBSIZE",), ("CONFIG", "GET", "requirepass"),
                    ("INFO",), ("ACL", "LIST"), ("ACL", "SETUSER", "tenant_alpha", "~*"), ("FUNCTION", "FLUSH"), ("PUBSUB", "CHANNELS"),
                    ("CLIENT", "LIST"), ("SHUTDOWN",)):
        assert "no permissions to run" in refused(alpha, *command), command
    assert "can't access at least one of the keys" in refused(alpha, "EVAL", "return redis.call('get', 'tenant:beta:invoice')", "0")
    assert admin.get("tenant:beta:invoice") == "beta's data"


def test_a_user_loosened_by_hand_is_put_back_by_the_next_up(fleet_redis):
    admin = fleet_redis.server.client()
    admin.execute_command("ACL", "SETUSER", "tenant_alpha", "allkeys", "+@all")
    assert fleet_redis.as_tenant("alpha").get("tenant:beta:invoice") == "beta's data"  # the drift is real
    summary = fleet_redis.run("up", refresh=True)
    assert summary["changes"].get("update") == 1
    assert "no permissions to access one of the keys" in refused(fleet_redis.as_tenant("alpha"), "GET", "tenant:beta:invoice")


def test_suspension_disables_the_user_and_rotation_retires_the_old_password(fleet_redis):
    fleet_redis.suspended = {"alpha"}
    fleet_redis.run("up")
    assert "invalid username-password pair or user is disabled" in refused(fleet_redis.as_tenant("alpha"), "PING")
    fleet_redis.suspended = set()
    old = fleet_redis.passwords["alpha"]
    fleet_redis.passwords["alpha"] = "alpha-redis-password-0000000002"
    assert fleet_redis.run("up")["changes"].get("update") == 1
    assert "invalid username-password pair or user is disabled" in refused(fleet_redis.as_tenant("alpha", old), "PING")
    assert fleet_redis.as_tenant("alpha").get("tenant:alpha:session") == "mine"  # the data stayed


def test_removing_a_tenant_removes_its_user_and_keeps_its_keys(fleet_redis):
    fleet_redis.tenants = ["alpha"]
    assert fleet_redis.run("up")["changes"].get("delete") == 1
    admin = fleet_redis.server.client()
    assert "tenant_beta" not in admin.execute_command("ACL", "USERS")
    assert admin.get("tenant:beta:invoice") == "beta's data"
    assert "invalid username-password pair or user is disabled" in refused(fleet_redis.as_tenant("beta"), "PING")
