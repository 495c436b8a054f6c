"""Pure derivation from the spec: logical names, PostgreSQL identifiers, hostnames, sizes, env, schedules.

Every name and size is derived here and nowhere else. Logical names are contracts: changing one
replaces the resource, and `tests/unit/test_names.py` pins the URNs of existing tenants.
"""


from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

from fleet.errors import InputError
from fleet.model.migration_sources import MODULES_FOLDER
from fleet.model.spec import Environment, Job, Plan, Retention, Size, TenantSpec

AppRole = Literal["backend", "frontend"]
APP_ROLES: tuple[AppRole, ...] = ("backend", "frontend")
PASSWORD_LENGTH = 40
JWT_SECRET_LENGTH = 64


# ---------------------------------------------------------------- PostgreSQL identifiers


def _sql_stem(tenant: TenantSpec) -> str:
    # Tenant names are DNS labels: '-' is their only non-identifier character, '_' cannot occur, so this is injective.
    return tenant.name.replace("-", "_")


def database_name(tenant: TenantSpec) -> str:
    """Name of the tenant's PostgreSQL database."""
    return f"tenant_{_sql_stem(tenant)}"


def role_name(tenant: TenantSpec) -> str:
    """Name of the tenant's login role, the one its app uses (it does not own the database)."""
    return f"tenant_{_sql_stem(tenant)}_app"


def owner_role_name(tenant: TenantSpec) -> str:
    """Name of the tenant's NOLOGIN owner role (`dbo`: database owner), which owns its database and objects.

    As long as the login role's name, so no tenant name that was valid before the split becomes too long."""
    return f"tenant_{_sql_stem(tenant)}_dbo"


def redis_username(tenant: TenantSpec) -> str:
    """The tenant's ACL user on the shared Redis."""
    return f"tenant_{_sql_stem(tenant)}"


def redis_prefix(tenant: TenantSpec) -> str:
    """The key and channel prefix the tenant's Redis user is limited to (`tenant:<name>:`)."""
    return f"tenant:{tenant.name}:"


DEDICATED_REDIS_ALIAS = "redis"
"""A dedicated Redis's name on its tenant's network."""


def dedicated_redis_url(password: str) -> str:
    """REDIS_URL of a tenant's own Redis container (secret: it carries the password)."""
    return f"redis://default:{password}@{DEDICATED_REDIS_ALIAS}:6379/0"


def redis_url(tenant: TenantSpec, environment: Environment, password: str) -> str:
    """The backend's REDIS_URL (secret: it carries the password); database 0."""
    server = environment.redis
    assert server is not None, "redis_url needs fleet:redis"
    scheme = "rediss" if server.tls else "redis"
    return f"{scheme}://{redis_username(tenant)}:{password}@{server.app_host or server.host}:{server.port}/0"


def jobs_role_name(tenant: TenantSpec) -> str:
    """Name of the login role the tenant's container jobs use: it becomes the owner role at login (`assume_role`),
    so what an ORM's migrations create belongs to the owner. Only the jobs get its password."""
    return f"tenant_{_sql_stem(tenant)}_job"


def postgres_identifiers(tenant: TenantSpec) -> dict[str, str]:
    """Every PostgreSQL identifier derived from a tenant, with what it names (checked against the 63-byte limit)."""
    return {
        database_name(tenant): "database name",
        role_name(tenant): "role name",
        owner_role_name(tenant): "owner role name",
        jobs_role_name(tenant): "jobs role name",
    }


# ---------------------------------------------------------------- hostnames and URLs


def api_hostname(tenant: TenantSpec, environment: Environment) -> str:
    """The backend's hostname."""
    return f"api-{tenant.name}.{environment.base_domain}"


def app_hostname(tenant: TenantSpec, environment: Environment) -> str:
    """The frontend's hostname under the base domain."""
    return f"app-{tenant.name}.{environment.base_domain}"


def hostnames(tenant: TenantSpec, environment: Environment) -> list[str]:
    """Every hostname the tenant is served on: api-, app- and its custom domains."""
    return [api_hostname(tenant, environment), app_hostname(tenant, environment), *tenant.custom_domains]


def frontend_hostnames(tenant: TenantSpec, environment: Environment) -> list[str]:
    """Hostnames routed to the frontend."""
    return [app_hostname(tenant, environment), *tenant.domains]


def backend_hostnames(tenant: TenantSpec, environment: Environment) -> list[str]:
    """Hostnames routed to the backend: `api-` and the tenant's `api_domains`."""
    return [api_hostname(tenant, environment), *tenant.api_domains]


def public_url(hostname: str, environment: Environment) -> str:
    """The URL users reach a hostname at."""
    scheme = "https" if environment.proxy.automatic_https else "http"
    return f"{scheme}://{hostname}"


@dataclass(frozen=True)
class DnsRecordSpec:
    """One DNS record to publish for a tenant."""

    hostname: str
    zone_id: str
    type: Literal["A", "CNAME"]
    content: str


def dns_records(tenant: TenantSpec, environment: Environment) -> list[DnsRecordSpec]:
    """Records for every hostname in a zone we manage; custom domains in other zones are the customer's to point at us."""
    dns = environment.dns
    if dns.mode == "none":
        return []
    assert dns.target is not None, "Dns refuses mode cloudflare without a target"
    record_type: Literal["A", "CNAME"] = "A" if _is_ipv4(dns.target) else "CNAME"
    zones = {environment.base_domain: dns.zone_id, **dns.extra_zones}
    records = []
    for hostname in hostnames(tenant, environment):
        zone_id = _zone_for(hostname, zones)
        if zone_id is not None:
            records.append(DnsRecordSpec(hostname, zone_id, record_type, dns.target))
    return records


def unmanaged_domains(tenant: TenantSpec, environment: Environment) -> list[str]:
    """Custom domains whose DNS we don't manage: the customer points them at the proxy."""
    zones = {environment.base_domain: "", **environment.dns.extra_zones}
    return [domain for domain in tenant.custom_domains if _zone_for(domain, zones) is None]


def _zone_for(hostname: str, zones: Mapping[str, Optional[str]]) -> Optional[str]:
    matches = [zone for zone in zones if hostname == zone or hostname.endswith("." + zone)]
    return zones[max(matches, key=len)] if matches else None


def _is_ipv4(value: Optional[str]) -> bool:
    try:
        ipaddress.IPv4Address(value or "")
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- sizes


def container_size(plan: Plan, tenant: TenantSpec, role: str) -> Size:
    """The size of one of the tenant's services (`backend`, `frontend`, or a plan's named service) with its override applied."""
    base: Optional[Size]
    if plan.services:
        base = plan.services[role]
        override = tenant.overrides.services.get(role)
    else:
        base, override = getattr(plan, role), getattr(tenant.overrides, role)
    assert base is not None, f"plan {tenant.plan} has no {role}"
    size = Size(cpu=base.cpu, memory_mb=base.memory_mb, replicas=base.replicas)
    if override is None:
        return size
    changes = {field: value for field, value in override.model_dump().items() if value is not None}
    return size.model_copy(update=changes)


def app_stopped(tenant: TenantSpec) -> bool:
    """Whether the tenant's app is stopped and a maintenance page shown (suspended or offboarded; data kept)."""
    return tenant.status in ("suspended", "offboarded")


def replica_count(plan: Plan, tenant: TenantSpec, role: str) -> int:
    """How many containers run: none while suspended or offboarded."""
    return 0 if app_stopped(tenant) else container_size(plan, tenant, role).replicas


def full_stack(plan: Plan, tenant: TenantSpec) -> bool:
    """Whether a default-shape app is one full-stack backend (its frontend has 0 replicas): every hostname routes to it."""
    return not plan.services and container_size(plan, tenant, "frontend").replicas == 0


# ---------------------------------------------------------------- the app's services and routes


@dataclass(frozen=True)
class AppService:
    """One container group of a tenant's app, as the components and checks need it."""

    name: str
    """`backend` and `frontend` for the default shape, else the plan's service name (the `component` label)."""
    image: str
    port: int
    health_path: str
    size: Size
    """With the tenant's override (replicas as declared; `replica_count` is 0 while suspended)."""
    env: AppRole
    """Whose env it gets: the backend's (private) or the frontend's (public)."""
    routes: tuple[str, ...]
    """Route kinds it serves (spec.ROUTE_KINDS)."""


def services(plan: Plan, tenant: TenantSpec, environment: Environment) -> list[AppService]:
    """The tenant's app services: its plan's named `services`, or the default backend and frontend."""
    version = app_version(tenant, plan)
    if plan.services:
        return [
            AppService(name, with_tag(service.image, version), service.port, service.health_path, container_size(plan, tenant, name), service.env, tuple(service.routes))
            for name, service in plan.services.items()
        ]
    images = environment.images
    stack = full_stack(plan, tenant)
    backend_routes = ("api-", "api_domains", "app-", "domains") if stack else ("api-", "api_domains")
    backend_size, frontend_size = container_size(plan, tenant, "backend"), container_size(plan, tenant, "frontend")
    frontend_routes: tuple[str, ...] = () if stack else ("app-", "domains")
    return [
        # The images are set wherever this stack runs the app (validate.check_environment_plans); elsewhere unused.
        AppService("backend", with_tag(images.backend or "", version), images.backend_port, images.health_path, backend_size, "backend", backend_routes),
        AppService("frontend", with_tag(images.frontend or "", version), images.frontend_port, "/", frontend_size, "frontend", frontend_routes),
    ]


def primary_service(plan: Plan, tenant: TenantSpec, environment: Environment) -> AppService:
    """The service that serves `api-`: jobs and workers run with its image and env, backups mount beside it."""
    return next(service for service in services(plan, tenant, environment) if "api-" in service.routes)


def route_hostnames(tenant: TenantSpec, environment: Environment, kinds: tuple[str, ...]) -> list[str]:
    """The hostnames of some route kinds, in a fixed order."""
    by_kind = {
        "api-": [api_hostname(tenant, environment)],
        "api_domains": list(tenant.api_domains),
        "app-": [app_hostname(tenant, environment)],
        "domains": list(tenant.domains),
    }
    return [host for kind in kinds for host in by_kind[kind]]


@dataclass(frozen=True)
class RouteSpec:
    """One proxy route of a tenant: its logical key, Caddy id, hostnames and the service it reaches."""

    key: str
    """`backend`/`frontend` for the default shape (contracts), else the service's name."""
    route_id: str
    hostnames: tuple[str, ...]
    service: str
    health_path: str


def routes(plan: Plan, tenant: TenantSpec, environment: Environment) -> list[RouteSpec]:
    """The tenant's proxy routes. The default shape keeps its two routes (api and app hostnames), even when one
    full-stack backend serves both; named services get one route each over the hostnames they serve."""
    by_name = {service.name: service for service in services(plan, tenant, environment)}
    if not plan.services:
        serving_app = "backend" if full_stack(plan, tenant) else "frontend"
        return [
            RouteSpec("backend", route_id(tenant, "backend"), tuple(backend_hostnames(tenant, environment)), "backend", by_name["backend"].health_path),
            RouteSpec("frontend", route_id(tenant, "frontend"), tuple(frontend_hostnames(tenant, environment)), serving_app, by_name[serving_app].health_path),
        ]
    routed = [(service, tuple(route_hostnames(tenant, environment, service.routes))) for service in by_name.values()]
    # A service that routes only custom domains the tenant has none of gets no route (Caddy needs a hostname).
    return [RouteSpec(service.name, route_id(tenant, service.name), hosts, service.name, service.health_path) for service, hosts in routed if hosts]


HEALTHY_WAIT_SECONDS = 180
"""How long creating an app container waits for Docker to call it healthy (its check runs every 30 s after a 20 s
grace): only then do its routes switch to it, and only after that do replaced containers go."""


def cpus_value(cpu: float) -> str:
    """Docker's `cpus` as a stable string (0.25 -> '0.25', 1.0 -> '1')."""
    return f"{cpu:g}"


# ---------------------------------------------------------------- logical names (contracts)


@dataclass(frozen=True)
class Names:
    """Pulumi logical names of one tenant's resources."""

    tenant: str

    @property
    def database_component(self) -> str:
        return f"{self.tenant}-database"

    @property
    def app_component(self) -> str:
        return f"{self.tenant}-app"

    @property
    def dns_component(self) -> str:
        return f"{self.tenant}-dns"

    @property
    def proxy_component(self) -> str:
        return f"{self.tenant}-proxy"

    @property
    def password(self) -> str:
        return f"{self.tenant}-db-password"

    def role(self, server: str) -> str:
        # The server key is part of the name so that a move declares a new role and database on the target.
        return f"{self.tenant}-role-{server}"

    def owner_role(self, server: str) -> str:
        return f"{self.tenant}-owner-role-{server}"

    def jobs_role(self, server: str) -> str:
        return f"{self.tenant}-jobs-role-{server}"

    def role_settings(self, server: str) -> str:
        return f"{self.tenant}-role-{server}-settings"

    def jobs_role_settings(self, server: str) -> str:
        return f"{self.tenant}-jobs-role-{server}-settings"

    @property
    def jobs_password(self) -> str:
        return f"{self.tenant}-jobs-password"

    def handover(self, server: str) -> str:
        return f"{self.tenant}-db-{server}-handover"

    def database(self, server: str) -> str:
        return f"{self.tenant}-db-{server}"

    def app_grant(self, server: str, on: str) -> str:
        """The app role's grant on the database (`on="database"`) or on the `public` schema (`on="schema"`)."""
        return f"{self.tenant}-db-{server}-app-{on}"

    def app_default_privileges(self, server: str, object_type: str) -> str:
        return f"{self.tenant}-db-{server}-app-default-{object_type}"

    def revoke_public(self, server: str) -> str:
        return f"{self.tenant}-db-{server}-revoke-public"

    @property
    def placement(self) -> str:
        # No server key in it: the placement (and its move history) survives moves.
        return f"{self.tenant}-db-placement"

    @property
    def purge(self) -> str:
        return f"{self.tenant}-purge"

    @property
    def migrations(self) -> str:
        return f"{self.tenant}-migrations"

    @property
    def first_admin(self) -> str:
        return f"{self.tenant}-first-admin"

    @property
    def admin_password(self) -> str:
        return f"{self.tenant}-admin-password"

    def volume(self, volume: str) -> str:
        return f"{self.tenant}-volume-{volume}"

    def worker(self, worker: str, index: int) -> str:
        return f"{self.tenant}-worker-{worker}-{index}"

    def job(self, job: str) -> str:
        return f"{self.tenant}-job-{job}"

    def job_outcome(self, job: str) -> str:
        return f"{self.tenant}-job-{job}-outcome"

    @property
    def redis_component(self) -> str:
        return f"{self.tenant}-redis"

    @property
    def redis_user(self) -> str:
        return f"{self.tenant}-redis-user"

    @property
    def redis_password(self) -> str:
        return f"{self.tenant}-redis-password"

    @property
    def redis_container(self) -> str:
        return f"{self.tenant}-redis"

    @property
    def jwt_secret(self) -> str:
        return f"{self.tenant}-jwt-secret"

    @property
    def jwt_refresh_secret(self) -> str:
        return f"{self.tenant}-jwt-refresh-secret"

    @property
    def network(self) -> str:
        return f"{self.tenant}-net"

    def container(self, service: str, index: int) -> str:
        return f"{self.tenant}-{service}-{index}"

    def dns_record(self, hostname: str) -> str:
        return f"{self.tenant}-dns-{hostname}"

    def route(self, key: str) -> str:
        return f"{self.tenant}-route-{key}"

    @property
    def backup_component(self) -> str:
        return f"{self.tenant}-backups"

    @property
    def backup_job(self) -> str:
        return f"{self.tenant}-backup"


def names(tenant: TenantSpec) -> Names:
    """The logical names of a tenant's resources."""
    return Names(tenant.name)


def postgres_provider_name(server: str) -> str:
    """Logical name of the shared PostgreSQL provider of a server."""
    return f"pg-{server}"


def server_lockdown_name(server: str) -> str:
    """Logical name of a server's ServerLockdown (PUBLIC shut out of `postgres` and `template1`); its grants start with it."""
    return f"pg-{server}-lockdown"


STACK_SEPARATOR = "."
"""Between the environment and the tenant in a tenant stack's name: `dev.gurupi`. Environment names have none."""


def platform_stack(environment: str) -> str:
    """The stack of an environment's platform (with `fleet:stacks: per-tenant`): the environment's own name, `dev`."""
    return environment


def tenant_stack(environment: str, tenant: str) -> str:
    """The stack of one tenant (with `fleet:stacks: per-tenant`): `dev.gurupi`. A contract, like a URN."""
    return f"{environment}{STACK_SEPARATOR}{tenant}"


def split_stack(stack: str) -> tuple[str, Optional[str]]:
    """(`environment`, `tenant`) of a stack name; the tenant is None for a platform (or single) stack."""
    environment, separator, tenant = stack.partition(STACK_SEPARATOR)
    return environment, (tenant if separator else None)


REGISTRY_COMPONENT_NAME = "registry"


def registry_table_name(component: str = REGISTRY_COMPONENT_NAME) -> str:
    """Logical name of the registry table resource."""
    return f"{component}-table"


def registry_row_prefix(component: str = REGISTRY_COMPONENT_NAME) -> str:
    """What every registry row's logical name starts with; the tenant's name follows."""
    return f"{component}-row-"


def registry_row_name(tenant: TenantSpec, component: str = REGISTRY_COMPONENT_NAME) -> str:
    """Logical name of a tenant's registry row."""
    return registry_row_prefix(component) + tenant.name


DOCKER_PROVIDER_NAME = "docker-host"
"""The default app host's provider (a contract: every existing container names it)."""


def docker_provider_name(host: str) -> str:
    """Logical name of an app host's docker provider: the default host keeps DOCKER_PROVIDER_NAME."""
    return DOCKER_PROVIDER_NAME if host == "default" else f"{DOCKER_PROVIDER_NAME}-{host}"
CLOUDFLARE_PROVIDER_NAME = "cloudflare"
PROXY_SERVER_NAME = "proxy"


def external_upstreams(tenant: TenantSpec, environment: Environment, service_names: Optional[list[str]] = None) -> dict[str, list[str]]:
    """Upstreams per service of a tenant whose app runs outside this stack, from `proxy.external_upstreams`."""
    templates = environment.proxy.external_upstreams or {}
    names_ = list(service_names or APP_ROLES)
    if app_stopped(tenant):
        return {name: [] for name in names_}
    return {name: [templates[name].format(tenant=tenant.name)] if name in templates else [] for name in names_}


def route_id(tenant: TenantSpec, key: str) -> str:
    """The Caddy `@id` of a tenant's route: `tenant-<name>-api`/`-app` for the backend's and frontend's, else the service's name."""
    return f"tenant-{tenant.name}-{ {'backend': 'api', 'frontend': 'app'}.get(key, key)}"


# ---------------------------------------------------------------- environment of the app


def labels(tenant: TenantSpec, role: str) -> dict[str, str]:
    """Container labels for monitoring and inventory."""
    return {"tenant": tenant.name, "plan": tenant.plan, "component": role, "managed-by": "tenant-fleet"}


WORKER_ROLE = "worker"
"""`component` label of a worker container (its `worker` label names which)."""


def worker_labels(tenant: TenantSpec, worker: str) -> dict[str, str]:
    """Labels of a worker's containers."""
    return {"tenant": tenant.name, "plan": tenant.plan, "component": WORKER_ROLE, "worker": worker, "managed-by": "tenant-fleet"}


def worker_count(plan: Plan, tenant: TenantSpec, worker: str) -> int:
    """How many containers of a worker run: none while suspended."""
    return 0 if app_stopped(tenant) else plan.workers[worker].replicas


def network_labels(tenant: TenantSpec) -> dict[str, str]:
    """Labels of the tenant's network: only what never changes over its life."""
    return {"tenant": tenant.name, "managed-by": "tenant-fleet"}


def plain_env(tenant: TenantSpec, plan: Plan, environment: Environment, role: AppRole) -> dict[str, str]:
    """The non-secret environment of a container (secrets are added by the component)."""
    backend_url = public_url(api_hostname(tenant, environment), environment)
    frontend_url = public_url(app_hostname(tenant, environment), environment)
    if role == "backend":
        return {
            "TENANT": tenant.name,
            "USER_LIMIT": str(plan.user_limit),
            "CONNECTIONS_LIMIT": str(plan.connections_limit),
            "BACKEND_URL": backend_url,
            "FRONTEND_URL": frontend_url,
            "PORT": str(environment.images.backend_port),
            **({"REDIS_KEY_PREFIX": redis_prefix(tenant)} if plan.redis != "none" else {}),
            **limit_env(tenant, plan),  # may replace USER_LIMIT or CONNECTIONS_LIMIT with a tenant's own value
        }
    return {
        "TENANT": tenant.name,
        "REACT_APP_BACKEND_URL": backend_url,
        "BACKEND_URL": backend_url,
        "FRONTEND_URL": frontend_url,
        "REACT_APP_COLOR": tenant.branding.color,
        "REACT_APP_TAB_NAME": tenant.branding.tab_name or tenant.display_name,
        "STACK_NAME": tenant.name,
        **({"REACT_APP_LOGO_URL": tenant.branding.logo_url} if tenant.branding.logo_url else {}),
        **({"REACT_APP_SECONDARY_COLOR": tenant.branding.secondary_color} if tenant.branding.secondary_color else {}),
        **({"REACT_APP_FAVICON_URL": tenant.branding.favicon_url} if tenant.branding.favicon_url else {}),
    }


def service_env(tenant: TenantSpec, plan: Plan, environment: Environment, service: AppService) -> dict[str, str]:
    """A service's plain env: its kind's (`plain_env`), its own PORT; a backend-kind service that serves `app-` renders
    the pages too, so it gets the frontend's branding and URLs as well (its own values win)."""
    env = plain_env(tenant, plan, environment, service.env)
    if service.env == "backend":
        env["PORT"] = str(service.port)
        if "app-" in service.routes:
            env = {**plain_env(tenant, plan, environment, "frontend"), **env}
    return env


def with_tag(image: str, tag: Optional[str]) -> str:
    """`image` with its tag (or digest) replaced by `tag`; unchanged when `tag` is None."""
    if tag is None:
        return image
    repository = image.split("@", 1)[0]
    name_start = repository.rfind("/") + 1
    if ":" in repository[name_start:]:
        repository = repository[: repository.rfind(":")]
    return f"{repository}:{tag}"


def app_version(tenant: TenantSpec, plan: Plan) -> Optional[str]:
    """The app version (image tag) a tenant runs: its own pin, else its plan's, else None (`fleet:images` as given)."""
    return tenant.app_version or plan.app_version


def container_jobs(tenant: TenantSpec, plan: Plan) -> dict[str, Job]:
    """A tenant's container jobs: its plan's, with its own on top (by name)."""
    return {**plan.jobs, **tenant.jobs}


def admin_email(tenant: TenantSpec) -> Optional[str]:
    """The first admin's login: `admin.email`, else `contact.email`."""
    return tenant.admin.email or tenant.contact.email


def migration_sources(tenant: TenantSpec, plan: Plan, root: Path) -> dict[str, Path]:
    """The tenant's migration sources in the order they run: the plan's (`app`), then its modules (`modules/<name>`)."""
    sources = {"app": root / plan.migrations} if plan.migrations else {}
    sources.update({name: root / MODULES_FOLDER / name for name in tenant.modules})
    return sources


def volume_folders(tenant: TenantSpec, plan: Plan, environment: Environment) -> dict[str, str]:
    """The tenant's volume folders on the app host by volume name (`fleet:volumes.root`/<tenant>/<volume>)."""
    if not plan.volumes or environment.volumes is None:
        return {}
    return {name: str(environment.volumes.folder(tenant.name, name)) for name in sorted(plan.volumes)}


def retention(tenant: TenantSpec, plan: Plan) -> Retention:
    """A tenant's backup tiers: its own, else its plan's, else the plan's `backup_retention_days` as the daily tier."""
    return tenant.backup_retention or plan.backup_retention or Retention(daily=plan.backup_retention_days)


def effective_limits(tenant: TenantSpec, plan: Plan) -> dict[str, Any]:
    """The tenant's business limits: its plan's values with its own `limits:` on top (validated within each max)."""
    return {name: tenant.limits.get(name, limit.value) for name, limit in sorted(plan.limits.items())}


def limit_env(tenant: TenantSpec, plan: Plan) -> dict[str, str]:
    """The limits as the backend's env vars: `LIMIT_<NAME>` (or the limit's `env`), counts as digits, `unlimited`, `true`/`false`."""
    values = effective_limits(tenant, plan)

    def text(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return {(limit.env or f"LIMIT_{name.upper()}"): text(values[name]) for name, limit in sorted(plan.limits.items())}


def static_env_facts(tenant: TenantSpec, plan: Plan, environment: Environment) -> dict[str, str]:
    """The facts env templates may reference that are known before any resource exists (fleet.model.env_template.FACTS);
    the program adds the database's address and secrets, which come from resources."""
    server = environment.servers[tenant.database.server]
    facts = {
        "tenant.name": tenant.name,
        "tenant.display_name": tenant.display_name,
        "hostnames.api": api_hostname(tenant, environment),
        "hostnames.app": app_hostname(tenant, environment),
        "urls.api": public_url(api_hostname(tenant, environment), environment),
        "urls.app": public_url(app_hostname(tenant, environment), environment),
        "db.name": database_name(tenant),
        "db.user": role_name(tenant),
        "db.sslmode": server.sslmode,
    }
    if plan.redis != "none":
        facts["redis.prefix"] = redis_prefix(tenant)
    return facts


def generated_secret_name(tenant: TenantSpec, env_name: str) -> str:
    """Logical name of the RandomPassword behind a `secrets: {NAME: {generate: n}}` entry."""
    return f"{tenant.name}-secret-{env_name}"


def database_url(
    tenant: TenantSpec, environment: Environment, password: str, host: Optional[str] = None, port: Optional[int] = None, user: Optional[str] = None
) -> str:
    """The app's connection string (contains the password: wrap it as a secret); `user` another role's (the jobs').

    `host`/`port` override the server's app address: the placement reports where the data is, and
    that changes only once a move has succeeded.
    """
    server = environment.servers[tenant.database.server]
    host = host or server.app_host or server.host
    port = int(port) if port is not None else server.port
    return f"postgresql://{user or role_name(tenant)}:{password}@{host}:{port}/{database_name(tenant)}?sslmode={server.sslmode}"


# ---------------------------------------------------------------- the scheduled job


def next_run(now: datetime, daily_at: str) -> datetime:
    """The next time of day `HH:MM` (UTC) strictly after `now`."""
    try:
        hour, minute = (int(part) for part in daily_at.split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise InputError(f"schedule {daily_at!r} is not a time of day HH:MM (UTC)") from None
    now = now.astimezone(timezone.utc)
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)
