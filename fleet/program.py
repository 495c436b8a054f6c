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
import pulumi_docker as docker
import pulumi_postgresql as postgresql

from components.proxy import proxy_server
from components.registry import declare_registry, tenant_stack_registry_row
from components.server import ServerLockdown
from components.tenant import Platform, Tenant, TenantArgs
from fleet.errors import EXIT_INVALID, FleetError, SpecError
from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.model.spec import Environment, Fleet
from fleet.paths import PROJECT_ROOT, TENANTS_DIR

CONFIG_NAMESPACE = "fleet"
SECRET_CONFIG_KEYS = ("server_passwords", "redis_password", "app_secrets")
ADMIN_CREDENTIALS_OUTPUT = "admin_credentials"
APP_ENVS_OUTPUT = "app_envs"
"""Secret output: each tenant's app env per service, when backups seal it (`fleet:backups.env_recipient`)."""
"""Secret stack output: each tenant's first admin {email, password} (`fleet admin-credentials` shows one)."""


class InvalidFleetSpec(pulumi.RunError, FleetError):
    """The spec is invalid. A RunError is reported by the engine as a plain message, without a Python traceback."""

    exit_code = EXIT_INVALID

    def __init__(self, spec_error: SpecError):
        super().__init__(str(spec_error))
        self.spec_error = spec_error


def environment_from_config() -> dict[str, Any]:
    """The `fleet:` stack config as plain values (secrets are read separately, as Outputs)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    raw: dict[str, Any] = {}
    app_secrets = pulumi.runtime.get_config(f"{CONFIG_NAMESPACE}:app_secrets")
    if app_secrets:
        # Their names only (values are read as secret Outputs): references to them are checked like the rest.
        raw["app_secrets"] = {name: "[secret]" for name in json.loads(app_secrets)}
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


def build_platform(
    environment: Environment,
    server_passwords: Optional[pulumi.Output],
    *,
    servers: Optional[Collection[str]] = None,
    proxy_server_too: bool = True,
    redis_password: Optional[pulumi.Output] = None,
    app_secrets: Optional[pulumi.Output] = None,
    app_hosts: Optional[Collection[str]] = None,
    project_root: Optional[Path] = None,
) -> Platform:
    """Declare the shared providers (for `servers`, default all) and the proxy server for the layers this stack manages.

    Each server's lockdown belongs to the stack that declares every server (the platform, or a single stack),
    never to a tenant's stack: it is declared once per server."""

    postgres: dict[str, pulumi.ProviderResource] = {}
    dns_provider = proxy = None
    if environment.manages("database"):
        for key, server in sorted(environment.servers.items()):
            if servers is not None and key not in servers:
                continue
            def admin_password(passwords: Optional[dict[str, str]], key: str = key) -> str:
                return (passwords or {}).get(key, "")

            password = server_passwords.apply(admin_password) if server_passwords else None
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
            if servers is None:
                ServerLockdown(key, server, postgres[key])
    docker_providers: dict[str, pulumi.ProviderResource] = {}
    if environment.manages("app"):
        for host_key, host in sorted(environment.app_hosts().items()):
            if app_hosts is not None and host_key not in app_hosts:
                continue
            docker_providers[host_key] = docker.Provider(derive.docker_provider_name(host_key), host=host.url)
    if environment.manages("dns") and environment.dns.mode == "cloudflare":
        from components.dns import cloudflare_provider  # imports pulumi_cloudflare (2 s, 165 MB): only when used

        dns_provider = cloudflare_provider(derive.CLOUDFLARE_PROVIDER_NAME)
    if environment.manages("proxy") and proxy_server_too:
        proxy = proxy_server(environment)
    return Platform(
        backup_dir=backup_folder(environment),
        postgres=postgres,
        docker=docker_providers,
        dns=dns_provider,
        proxy=proxy,
        server_passwords=server_passwords,
        redis_password=redis_password if environment.redis is not None else None,
        app_secrets=app_secrets,
        project_root=str(project_root or PROJECT_ROOT),
    )


def backup_folder(environment: Environment) -> str:
    """The backups folder as the program hands it to components: `fleet:backups.dir`, absolute (relative to the project)."""
    return str(environment.backups.folder(PROJECT_ROOT))


def declare_fleet(
    fleet: Fleet,
    server_passwords: Optional[pulumi.Output] = None,
    redis_password: Optional[pulumi.Output] = None,
    app_secrets: Optional[pulumi.Output] = None,
    project_root: Optional[Path] = None,
) -> dict[str, Any]:
    """Declare the platform and every tenant of a validated fleet; returns the Tenant components by name."""
    platform = build_platform(fleet.environment, server_passwords, redis_password=redis_password, app_secrets=app_secrets, project_root=project_root)
    return declare_tenants(fleet, platform)


def declare_tenants(fleet: Fleet, platform: Platform) -> dict[str, Any]:
    """One Tenant component per tenant of the fleet, on a declared platform."""
    return {tenant.name: Tenant(tenant.name, TenantArgs(tenant, fleet.plan_of(tenant), fleet.environment, platform)) for tenant in fleet.tenants}


def stack_layout(environment: Environment, stack: str) -> tuple[str, Optional[str]]:
    """What a stack holds: ("single", None) platform and tenants, ("platform", None), or ("tenant", name).

    Decided by `fleet:stacks` and the stack's name (`<env>` or `<env>.<tenant>`, fleet.model.derive.tenant_stack)."""
    if environment.stacks == "single":
        return "single", None
    _, tenant = derive.split_stack(stack)
    return ("tenant", tenant) if tenant else ("platform", None)


def export_outputs(tenants: dict[str, Any]) -> None:
    """Stack outputs: URLs and database coordinates per tenant; passwords only as a secret output of their own."""
    summary = {}
    passwords = {}
    admins = {}
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
            if component.database.admin is not None:
                admins[name] = component.database.admin
        summary[name] = entry
    pulumi.export("tenants", summary)
    if passwords:
        pulumi.export("database_passwords", pulumi.Output.secret(passwords))
    if admins:
        pulumi.export(ADMIN_CREDENTIALS_OUTPUT, pulumi.Output.secret(admins))
    app_envs = {name: component.app_env for name, component in tenants.items() if component.app_env is not None}
    if app_envs and any(component.environment.backups.env_recipient for component in tenants.values()):
        pulumi.export(APP_ENVS_OUTPUT, pulumi.Output.secret(app_envs))


def load(
    selection: Optional[Iterable[str]] = None, tenants_dir: Optional[Path] = None, *, shard: Optional[Collection[str]] = None, whole: bool = False
) -> Fleet:
    """Load and validate the fleet this stack declares (raises SpecError with every problem).

    `whole`: the whole environment as one program, whatever `fleet:stacks` says (the offline plan's view)."""
    raw = environment_from_config()
    tenants_dir = tenants_dir or TENANTS_DIR
    fleet = load_fleet(
        tenants_dir,
        raw,
        root=tenants_dir.parent,  # files are named relative to the checkout: tenants/<name>.yaml
        environment_display=f"Pulumi.{pulumi.get_stack()}.yaml",
        shard=shard,
    )
    layout, tenant = ("single", None) if whole else stack_layout(fleet.environment, pulumi.get_stack())
    if layout == "tenant":
        return fleet.select({tenant} if tenant else set())
    if layout == "platform":
        return fleet.select(set())
    # An explicit selection wins; otherwise the stack's `fleet:tenants`; otherwise every tenant file.
    chosen = selection if selection is not None else fleet.environment.tenants
    return fleet.select(set(chosen) if chosen is not None else None)


def fleet_program(
    selection: Optional[Iterable[str]] = None, tenants_dir: Optional[Path] = None, *, shard: Optional[Collection[str]] = None, whole: bool = False
) -> dict[str, Any]:
    """The program: validate everything first (nothing is declared when anything is wrong), then declare and export.

    With `fleet:stacks: per-tenant`, stack `<env>` declares the platform and `<env>.<tenant>` that tenant alone.
    `whole` declares the whole environment as one program (the offline plan); `shard` is for the offline plan only
    (fleet.offline.shards): read just these tenants' files, leaving the checks across shards to the caller."""
    try:
        fleet = load(selection, tenants_dir, shard=shard, whole=whole)
    except SpecError as error:
        raise InvalidFleetSpec(error) from None
    server_passwords = pulumi.Config(CONFIG_NAMESPACE).get_secret_object("server_passwords")
    redis_password = pulumi.Config(CONFIG_NAMESPACE).get_secret("redis_password")
    app_secrets = pulumi.Config(CONFIG_NAMESPACE).get_secret_object("app_secrets")
    layout, _ = ("single", None) if whole else stack_layout(fleet.environment, pulumi.get_stack())
    if layout == "tenant":
        (tenant,) = fleet.tenants
        platform = build_platform(
            fleet.environment,
            server_passwords,
            servers={tenant.database.server},
            app_hosts={tenant.app.host},
            proxy_server_too=False,
            project_root=(tenants_dir or TENANTS_DIR).parent,
            redis_password=redis_password,
            app_secrets=app_secrets,
        )
        tenants = declare_tenants(fleet, platform)
        database = tenants[tenant.name].database
        tenant_stack_registry_row(
            tenant, fleet, server_passwords, (database.host, database.port) if database is not None else None,
            database.password if database is not None else None, database.job_results if database is not None else None,
        )
        export_outputs(tenants)
        return tenants
    tenants = declare_fleet(fleet, server_passwords, redis_password, app_secrets, (tenants_dir or TENANTS_DIR).parent)
    if fleet.environment.registry is not None:
        # Rows take the database address from each placement, so they follow a move only once it succeeded.
        locations = {name: (t.database.host, t.database.port) for name, t in tenants.items() if t.database is not None}
        passwords = {name: t.database.password for name, t in tenants.items() if t.database is not None}
        jobs = {name: t.database.job_results for name, t in tenants.items() if t.database is not None and t.database.job_results is not None}
        declare_registry(fleet, server_passwords, locations=locations, passwords=passwords, jobs=jobs)
    export_outputs(tenants)
    return tenants
