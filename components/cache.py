"""TenantRedis: a tenant's ACL user on the environment's shared Redis, with a generated password that rotates with `rotation:`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_random as random

from components.providers.redis import RedisAclUser, RedisAclUserArgs
from fleet.model import derive, type_tokens
from fleet.model.spec import Environment, TenantSpec


def redis_access(environment: Environment, admin_password: Optional[pulumi.Input[str]]) -> pulumi.Output[dict[str, Any]]:
    """Admin access to the shared Redis as RedisAclUser takes it (secret)."""
    server = environment.redis
    assert server is not None, "redis_access needs fleet:redis"

    def build(password: Optional[str]) -> dict[str, Any]:
        return {"host": server.host, "port": server.port, "admin_user": server.admin_user, "admin_password": str(password or ""), "tls": server.tls}

    return pulumi.Output.secret(pulumi.Output.from_input(admin_password).apply(build))


@dataclass(frozen=True)
class TenantRedisArgs:
    """Inputs of TenantRedis."""

    tenant: TenantSpec
    environment: Environment
    admin_password: Optional[pulumi.Input[str]]
    """The Redis admin's password (secret `fleet:redis_password`)."""


class TenantRedis(pulumi.ComponentResource):
    """The ACL user (keys and channels `tenant:<name>:*` only, no server-wide commands), off while suspended."""

    url: pulumi.Output[str]
    """REDIS_URL for the backend (secret)."""
    prefix: str
    """REDIS_KEY_PREFIX."""

    def __init__(self, name: str, args: TenantRedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("TenantRedis"), name, None, opts)
        tenant, environment = args.tenant, args.environment
        names = derive.names(tenant)
        password = random.RandomPassword(
            names.redis_password,
            length=derive.PASSWORD_LENGTH,
            special=False,  # goes into a URL unescaped
            keepers={"rotation": str(tenant.rotation)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.user = RedisAclUser(
            names.redis_user,
            RedisAclUserArgs(
                tenant=tenant.name,
                username=derive.redis_username(tenant),
                prefix=derive.redis_prefix(tenant),
                password=password.result,
                enabled=tenant.status == "active",
                redis=redis_access(environment, args.admin_password),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.prefix = derive.redis_prefix(tenant)
        # After the user exists: the app must not start with credentials the server doesn't know yet.
        self.url = pulumi.Output.secret(
            pulumi.Output.all(password.result, self.user.id).apply(lambda parts: derive.redis_url(tenant, environment, parts[0]))
        )
        self.register_outputs({"prefix": self.prefix})
