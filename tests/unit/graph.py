"""Helpers for unit tests of the declared graph: an editable copy of the fleet, and resource lookups."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from fleet.offline.plan import evaluate, stack_config
from fleet.paths import PROJECT_ROOT

CONTAINER = "docker:index/container:Container"
DATABASE = "postgresql:index/database:Database"
ROLE = "postgresql:index/role:Role"
GRANT = "postgresql:index/grant:Grant"
DEFAULT_PRIVILEGES = "postgresql:index/defaultPrivileges:DefaultPrivileges"
HANDOVER = "pulumi-python:dynamic/postgres:OwnerHandover"
PASSWORD = "random:index/randomPassword:RandomPassword"
ROUTE = "pulumi-python:dynamic/caddy:CaddyRoute"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"


class FleetWorkspace:
    """A copy of the tenants folder and the dev stack config that a test may edit, then evaluate."""

    def __init__(self, root: Path):
        self.tenants_dir = root / "tenants"
        shutil.copytree(PROJECT_ROOT / "tenants", self.tenants_dir)
        self.config = copy.deepcopy(stack_config("dev", PROJECT_ROOT))

    def tenant_file(self, name: str) -> Path:
        return self.tenants_dir / f"{name}.yaml"

    def read(self, name: str) -> dict:
        return yaml.safe_load(self.tenant_file(name).read_text())

    def write(self, name: str, data: dict) -> None:
        self.tenant_file(name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def edit(self, tenant: str, **changes) -> None:
        data = self.read(tenant)
        data.update(changes)
        self.write(tenant, data)

    def evaluate(self, **kwargs):
        return evaluate(self.config, stack="dev", tenants_dir=self.tenants_dir, **kwargs)


def of_type(evaluation, type_: str, tenant: str | None = None):
    """Custom resources of one type (optionally of one tenant)."""
    return [r for r in evaluation.resources if r.type == type_ and (tenant is None or r.tenant == tenant)]


def env_of(container) -> dict[str, str]:
    """A container's environment as a dict (secrets revealed)."""
    return dict(item.split("=", 1) for item in container.raw_inputs["envs"])


def tenant_fingerprint(evaluation, tenant: str) -> list[tuple]:
    """Everything a tenant declares, comparable across runs."""
    return [(r.type, r.name, repr(r.raw_inputs), repr(sorted(r.options.items()))) for r in evaluation.resources if r.tenant == tenant]


def plan_fingerprint(evaluation) -> tuple:
    """Everything an offline plan recorded (resources with inputs and options, outputs, specs), comparable across runs."""
    return (
        [
            (r.type, r.name, r.urn, r.parent, r.custom, r.inputs, r.raw_inputs, r.secret_inputs, r.provider, r.options, r.tenant)
            for r in evaluation.resources
        ],
        evaluation.outputs,
        {name: spec.model_dump() for name, spec in evaluation.specs.items()},
    )


def proxy_only_config(config: dict, caddy, upstreams: dict, port: int, **extra) -> dict:
    """A copy of a stack config that manages only the proxy layer, on a test Caddy, routing to test upstreams."""
    proxy_only = {key: value for key, value in copy.deepcopy(config).items() if key != "server_passwords"}
    proxy_only["layers"] = ["proxy"]
    proxy_only["proxy"] = {
        "admin_url": caddy.admin_url,
        "server": "fleet",
        "listen": [f"127.0.0.1:{port}"],
        "automatic_https": False,
        "external_upstreams": {role: server.address for role, server in upstreams.items()},
    }
    proxy_only.update(extra)
    return proxy_only
