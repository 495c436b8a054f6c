"""A tenant's Redis user under mocks: declared for plans with `redis: shared`, wired into the backend's env as a secret."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.providers.redis import RedisAclUserProvider
from fleet.errors import SpecError
from fleet.redis_users import DENIED_COMMANDS, acl_rules, password_hash
from tests.unit.graph import CONTAINER, PASSWORD, env_of, of_type

REDIS_USER = "pulumi-python:dynamic/redis:RedisAclUser"


@pytest.fixture
def with_redis(workspace):
    """The dev fleet with a shared Redis, and plan `pro` (gurupi, santarita) giving its tenants a Redis user."""
    workspace.config["redis"] = {"host": "10.0.0.9", "port": 6380, "app_host": "redis.internal"}
    plans_file = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(plans_file.read_text())
    plans["plans"]["pro"]["redis"] = "shared"
    plans_file.write_text(yaml.safe_dump(plans, sort_keys=False))
    return workspace


def test_only_tenants_whose_plan_says_shared_get_a_redis_user(with_redis):
    evaluation = with_redis.evaluate()
    users = {user.tenant: user for user in of_type(evaluation, REDIS_USER)}
    assert set(users) == {"gurupi", "santarita"}
    gurupi = users["gurupi"]
    assert {key: value for key, value in gurupi.raw_inputs.items() if key not in ("password", "redis")} == {
        "resource_name": "gurupi-redis-user", "tenant": "gurupi", "username": "tenant_gurupi", "prefix": "tenant:gurupi:", "enabled": True,
    }
    assert {"password", "redis"} <= gurupi.secret_inputs
    assert gurupi.raw_inputs["redis"] == {"host": "10.0.0.9", "port": 6380, "admin_user": "default", "admin_password": "", "tls": False}
    assert any(p.name == "gurupi-redis-password" and p.raw_inputs["keepers"] == {"rotation": "0"} for p in of_type(evaluation, PASSWORD, "gurupi"))


def test_the_backend_gets_redis_url_as_a_secret_and_its_key_prefix(with_redis):
    evaluation = with_redis.evaluate()
    backend = next(c for c in of_type(evaluation, CONTAINER, "gurupi") if c.name == "gurupi-backend-0")
    env = env_of(backend)
    assert env["REDIS_KEY_PREFIX"] == "tenant:gurupi:"
    assert env["REDIS_URL"].startswith("redis://tenant_gurupi:") and env["REDIS_URL"].endswith("@redis.internal:6380/0")
    assert "envs" in backend.secret_inputs
    other = next(c for c in of_type(evaluation, CONTAINER, "novaroma") if c.name == "novaroma-backend-0")
    assert "REDIS_URL" not in env_of(other) and "REDIS_KEY_PREFIX" not in env_of(other)


def test_a_suspended_tenants_user_is_disabled_and_rotation_makes_a_new_password(with_redis):
    with_redis.edit("gurupi", status="suspended")
    with_redis.edit("santarita", rotation=2)
    evaluation = with_redis.evaluate()
    users = {user.tenant: user for user in of_type(evaluation, REDIS_USER)}
    assert users["gurupi"].raw_inputs["enabled"] is False
    assert next(p for p in of_type(evaluation, PASSWORD, "santarita") if p.name == "santarita-redis-password").raw_inputs["keepers"] == {"rotation": "2"}


def test_a_plan_with_shared_redis_needs_a_redis_server_in_the_stack_config(with_redis):
    del with_redis.config["redis"]
    with pytest.raises(SpecError) as raised:
        with_redis.evaluate()
    text = str(raised.value)
    for tenant in ("gurupi", "santarita"):
        assert f"tenants/{tenant}.yaml" in text or f"{tenant}.yaml" in text
    assert "plan pro has redis: shared, but the stack config sets no fleet:redis server" in text


def test_the_rules_confine_the_user_to_its_prefix_and_keep_server_wide_commands_out():
    rules = acl_rules("tenant:a:", "p" * 40, enabled=True)
    assert rules[:6] == ["reset", "on", f"#{password_hash('p' * 40)}", "~tenant:a:*", "&tenant:a:*", "+@all"]
    assert rules[6:] == list(DENIED_COMMANDS) and {"-@admin", "-@dangerous", "-scan", "-pubsub", "-function"} <= set(DENIED_COMMANDS)
    assert acl_rules("tenant:a:", "p" * 40, enabled=False)[1] == "off"
    for bad in ("", "tenant:*:", "a b"):
        with pytest.raises(ValueError):
            acl_rules(bad, "p" * 40, enabled=True)


def test_the_provider_replaces_on_a_new_username_and_updates_in_place_otherwise():
    provider = RedisAclUserProvider()
    olds: dict[str, Any] = {"tenant": "a", "username": "tenant_a", "prefix": "tenant:a:", "password": "x" * 40, "enabled": True,
            "redis": {"host": "h", "port": 1, "admin_user": "default", "admin_password": "one", "tls": False},
            "admin": {"host": "h", "port": 1, "admin_user": "default", "tls": False}}
    same = {key: value for key, value in olds.items() if key != "admin"}
    assert not provider.diff("id", olds, same).changes
    assert not provider.diff("id", olds, {**same, "redis": {**same["redis"], "admin_password": "two"}}).changes  # admin password rotated
    assert provider.diff("id", olds, {**same, "enabled": False}).changes and not provider.diff("id", olds, {**same, "enabled": False}).replaces
    assert provider.diff("id", olds, {**same, "username": "tenant_b"}).replaces == ["username"]
    assert provider.check({}, {**same, "password": "short"}).failures


def test_a_dedicated_redis_is_a_container_of_the_tenant_with_its_password_kept_off_the_command_line(workspace):
    from tests.unit.graph import PASSWORD

    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["enterprise"].update(redis="dedicated", redis_memory_mb=256)
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    evaluation = workspace.evaluate()
    redis = next(c for c in of_type(evaluation, CONTAINER, "pirapora") if c.name == "pirapora-redis")
    inputs = redis.raw_inputs
    assert inputs["image"] == "redis:7.2.5-alpine" and inputs["memory"] == 256
    assert "--maxmemory 230mb --maxmemory-policy noeviction" in inputs["command"][2] and "$REDIS_PASSWORD" in inputs["command"][2]
    assert "envs" in redis.secret_inputs and inputs["networksAdvanced"][0]["aliases"] == ["redis"]
    assert any(p.name == "pirapora-redis-password" for p in of_type(evaluation, PASSWORD, "pirapora"))
    env = env_of(next(c for c in of_type(evaluation, CONTAINER, "pirapora") if c.name == "pirapora-backend-0"))
    password = next(line for line in inputs["envs"] if line.startswith("REDIS_PASSWORD=")).split("=", 1)[1]
    assert env["REDIS_URL"] == f"redis://default:{password}@redis:6379/0" and env["REDIS_KEY_PREFIX"] == "tenant:pirapora:"
    assert not of_type(evaluation, REDIS_USER, "pirapora")  # no user on a shared Redis
