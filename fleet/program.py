"""The Pulumi program: read the stack config and the tenant files, declare the platform and one Tenant per tenant.

`fleet_program` is the one program behind every front door: `pulumi up` (__main__.py), `python -m fleet up`
(the Automation API, inline) and `python -m fleet plan` (mocks). It takes the set of tenants it declares,
so a stack can hold the whole fleet, a shard or one tenant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Collection, Iterable, Optional

import pulumi

from fleet.errors import SpecError
from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.model.spec import Environment, Fleet
from fleet.paths import PROJECT_ROOT, TENANTS_DIR

CONFIG_NAMESPACE = "fleet"
SECRET_CONFIG_KEYS = ("server_passwords",)


class InvalidFleetSpec(pulumi.RunError):
    """The spec is invalid. A RunError is reported by the engine as a plain message, without a Python traceback."""

    def __init__(self, spec_error: SpecError):
        super().__init__(str(spec_error))
        self.spec_error = spec_error


def environment_from_config() -> dict[str, Any]:
    """The `fleet:` stack config as plain values (secrets are read separately, as Outputs)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    raw: dict[str, Any] = {}
    for key in Environment.model_fields:
        if key in SECRET_CONFIG_KEYS:
            continue
        text = config.get(key)
        if text is None:
            continue
        try:
            raw[key] = json.loads(text)  # objects, lists, numbers
        except ValueError:
            raw[key] = text  # a plain string such as base_domain
    return raw


def build_platform(environment: Environment, server_passwords: Optional[pulumi.Output]):
    """Declare the shared providers and the proxy server for the layers this stack manages."""
    from components.tenant import Platform

    postgres: dict[str, pulumi.ProviderResource] = {}
    docker_provider = dns_provider = proxy = None
    if environment.manages("database"):
        import pulumi_postgresql as postgresql

        for key, server in sorted(environment.servers.items()):
            password = server_passwords.apply(lambda passwords, key=key: (passwords or {}).get(key, "")) if server_passwords else None
            postgres[key] = postgresql.Provider(
                derive.postgres_provider_name(key),
                host=server.host,
                port=server.port,
                username=server.admin_user,
                password=password,
                database="postgres",
                sslmode=server.sslmode,
                superuser=server.superuser,
                connect_timeout=15,
            )
    if environment.manages("app"):
        import pulumi_docker as docker

        docker_provider = docker.Provider(derive.DOCKER_PROVIDER_NAME, host=environment.docker_host.url)
    if environment.manages("dns") and environment.dns.mode == "cloudflare":
        from components.dns import cloudflare_provider

        dns_provider = cloudflare_provider(derive.CLOUDFLARE_PROVIDER_NAME)
    if environment.manages("proxy"):
        from components.proxy import proxy_server

        proxy = proxy_server(environment)
    return Platform(
        backup_dir=backup_folder(environment),
        postgres=postgres,
        docker=docker_provider,
        dns=dns_provider,
        proxy=proxy,
        server_passwords=server_passwords,
    )


def backup_folder(environment: Environment) -> str:
    """The backups folder as the program hands it to components: `fleet:backups.dir`, absolute (relative to the project)."""
    return str(environment.backups.folder(PROJECT_ROOT))


def declare_fleet(fleet: Fleet, server_passwords: Optional[pulumi.Output] = None) -> dict[str, Any]:
    """Declare the platform and every tenant of a validated fleet; returns the Tenant components by name."""
    from components.tenant import Tenant, TenantArgs

    environment = fleet.environment
    platform = build_platform(environment, server_passwords)
    return {
        tenant.name: Tenant(tenant.name, TenantArgs(tenant, fleet.plan_of(tenant), environment, platform))
        for tenant in fleet.tenants
    }


def export_outputs(tenants: dict[str, Any]) -> None:
    """Stack outputs: URLs and database coordinates per tenant; passwords only as a secret output of their own."""
    summary = {}
    passwords = {}
    for name, component in tenants.items():
        entry: dict[str, Any] = {"urls": component.urls}
        if component.database is not None:
            entry["database"] = {
                "host": component.database.host,
                "port": component.database.port,
                "name": component.database.database_name,
                "user": component.database.role_name,
            }
            passwords[name] = component.database.password
        summary[name] = entry
    pulumi.export("tenants", summary)
    if passwords:
        pulumi.export("database_passwords", pulumi.Output.secret(passwords))


def load(selection: Optional[Iterable[str]] = None, tenants_dir: Optional[Path] = None, *, shard: Optional[Collection[str]] = None) -> Fleet:
    """Load and validate the fleet this stack declares (raises SpecError with every problem)."""
    raw = environment_from_config()
    tenants_dir = tenants_dir or TENANTS_DIR
    fleet = load_fleet(
        tenants_dir,
        raw,
        root=tenants_dir.parent,  # files are named relative to the checkout: tenants/<name>.yaml
        environment_display=f"Pulumi.{pulumi.get_stack()}.yaml",
        shard=shard,
    )
    # An explicit selection wins; otherwise the stack's `fleet:tenants`; otherwise every tenant file.
    chosen = selection if selection is not None else fleet.environment.tenants
    return fleet.select(set(chosen) if chosen is not None else None)


def fleet_program(selection: Optional[Iterable[str]] = None, tenants_dir: Optional[Path] = None, *, shard: Optional[Collection[str]] = None) -> dict[str, Any]:
    """The program: validate everything first (nothing is declared when anything is wrong), then declare and export.

    `shard` is for the offline plan only (fleet.offline.shards evaluates a large fleet in shards): read just these tenants'
    files, leaving the checks across shards to the caller. A deploy never passes it."""
    try:
        fleet = load(selection, tenants_dir, shard=shard)
    except SpecError as error:
        raise InvalidFleetSpec(error) from None
    server_passwords = pulumi.Config(CONFIG_NAMESPACE).get_secret_object("server_passwords")
    tenants = declare_fleet(fleet, server_passwords)
    if fleet.environment.registry is not None:
        from components.registry import declare_registry

        # Rows take the database address from each placement, so they follow a move only once it succeeded.
        locations = {name: (t.database.host, t.database.port) for name, t in tenants.items() if t.database is not None}
        declare_registry(fleet, server_passwords, locations=locations)
    export_outputs(tenants)
    return tenants
