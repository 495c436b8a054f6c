"""The schema of tenant files, the plan catalog and the stack config, as frozen pydantic models.

The models are the documentation of the YAML: their field descriptions feed the README's config
reference and the JSON Schemas (`python -m fleet schema`).
"""


from __future__ import annotations

import base64
import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Callable, Iterable, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fleet.errors import Problem, SpecError
from fleet.model import env_template
from fleet.model.env_template import ENV_NAME
from fleet.model.spec_kubernetes import KubernetesHost

# Labels that belong to the platform itself and can never be a tenant.
RESERVED_NAMES = frozenset(
    {
        "www", "api", "app", "admin", "mail", "smtp", "ftp", "status", "static", "cdn", "assets",
        "docs", "help", "support", "billing", "dashboard", "auth", "login", "sso", "root", "system",
        "postgres", "template0", "template1", "public", "internal", "staging", "dev", "test",
    }
)
DNS_LABEL = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
PG_IDENTIFIER_MAX_BYTES = 63
PLAN_CATALOG_FILE = "_plans.yaml"
SECRET_PLACEHOLDER = "[secret]"


def invalid_app_host_keys(keys: Iterable[str]) -> list[str]:
    """The keys that can't name an app host of fleet:docker_hosts or fleet:kubernetes_hosts: each must be a DNS
    label other than `default` (that is fleet:docker_host)."""
    return [key for key in keys if not DNS_LABEL.match(key) or key == "default"]


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors and loaded models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- plan catalog


class Size(Strict):
    """CPU, memory and replica count of one app container group."""

    cpu: float = Field(gt=0, le=64, description="CPU limit per container, in cores (0.25 = a quarter core).")
    memory_mb: int = Field(ge=32, le=262144, description="Memory limit per container, in MB.")
    replicas: int = Field(ge=0, le=20, description="Number of containers (a frontend may have 0: a full-stack backend then serves its hostnames too).")


class SizeOverride(Strict):
    """A tenant's change to its plan's size; each value must stay within the plan's `max`."""

    cpu: Optional[float] = Field(default=None, gt=0, description="CPU per container, in cores.")
    memory_mb: Optional[int] = Field(default=None, ge=32, description="Memory per container, in MB.")
    replicas: Optional[int] = Field(default=None, ge=0, description="Number of containers (0 only for a frontend).")


class ComponentSizes(Strict):
    """A plan's upper bounds for tenant overrides: the backend and the frontend (the default app shape: both
    required there; a services plan bounds each service by its own `max`), and the database limits."""

    backend: Optional[Size] = Field(default=None, description="The API container group (the default app shape only).")
    frontend: Optional[Size] = Field(default=None, description="The web frontend container group (the default app shape only).")
    database: Optional["DatabaseLimits"] = Field(
        default=None, description="Bounds of a tenant's `overrides.database` (default: the plan's own `database_limits`, so none may be raised)."
    )


class DatabaseLimits(Strict):
    """Noisy-neighbour limits of a tenant's login roles (`ALTER ROLE ... SET`): one tenant's runaway query or
    forgotten transaction can't hold a shared server. Changing them is an in-place change, never a new role."""

    statement_timeout_s: int = Field(default=30, ge=1, le=3600, description="The app role's statement_timeout, in seconds: longer queries are cancelled.")
    idle_in_transaction_timeout_s: int = Field(
        default=60, ge=1, le=3600, description="idle_in_transaction_session_timeout, in seconds: a session idle inside a transaction is ended."
    )
    work_mem_mb: int = Field(default=4, ge=1, le=2048, description="work_mem per sort or hash of one query, in MB (checked against the server's memory_mb).")
    temp_file_limit_mb: int = Field(default=1024, ge=1, le=1048576, description="temp_file_limit: temporary file space one session may use, in MB.")
    jobs_statement_timeout_s: int = Field(
        default=900, ge=1, le=86400, description="statement_timeout of the container jobs' role (migrations build indexes), in seconds."
    )


class DatabaseLimitsOverride(Strict):
    """A tenant's change to its plan's `database_limits`; each value must stay within the plan's `max.database`."""

    statement_timeout_s: Optional[int] = Field(default=None, ge=1, le=3600, description="statement_timeout, in seconds.")
    idle_in_transaction_timeout_s: Optional[int] = Field(default=None, ge=1, le=3600, description="idle_in_transaction_session_timeout, in seconds.")
    work_mem_mb: Optional[int] = Field(default=None, ge=1, le=2048, description="work_mem, in MB.")
    temp_file_limit_mb: Optional[int] = Field(default=None, ge=1, le=1048576, description="temp_file_limit, in MB.")
    jobs_statement_timeout_s: Optional[int] = Field(default=None, ge=1, le=86400, description="The jobs role's statement_timeout, in seconds.")


class DrillSchedule(Strict):
    """How often each tenant's latest backup must be proven by a restore drill (`fleet drill`)."""

    every: str = Field(pattern=r"^[1-9][0-9]{0,3}d$", description="Interval in days, e.g. `7d`: `fleet status` flags a tenant whose last good drill is older.")

    @property
    def days(self) -> int:
        """The interval as a number of days."""
        return int(self.every[:-1])


class Offboarding(Strict):
    """What happens to the data of a tenant that left (`status: offboarded`, or its file removed)."""

    retain_days: int = Field(
        default=30, ge=1, le=3650, description="Days its data is kept; afterwards the PR preview proposes its purge (the fleet never purges by itself)."
    )


RESERVED_ENV = frozenset({"DATABASE_URL", "JWT_SECRET", "JWT_REFRESH_SECRET", "REDIS_URL", "REDIS_KEY_PREFIX", "TENANT", "PORT"})
"""Env vars the fleet sets itself; `env` and `secrets` can't redefine them (reference them as facts instead)."""


def _env_name_problems(names: Iterable[str]) -> list[str]:
    names = list(names)
    problems = []
    bad = [name for name in names if not ENV_NAME.match(name)]
    if bad:
        problems.append(f"not env var names: {', '.join(bad)} (letters, digits and _, not starting with a digit)")
    reserved = sorted(set(names) & RESERVED_ENV)
    if reserved:
        problems.append(f"{', '.join(reserved)} set by the fleet itself; reference facts such as ${{db.url}} under another name instead")
    return problems


class AppEnv(Strict):
    """Extra env vars per container role; values may reference facts (`${db.host}`, docs/env.md)."""

    backend: dict[str, str] = Field(default_factory=dict, description="Env vars of the backend: `NAME: value with ${facts}`.")
    frontend: dict[str, str] = Field(default_factory=dict, description="Env vars of the frontend (public: never put a secret fact here).")

    @field_validator("backend", "frontend")
    @classmethod
    def _templates(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        problems = _env_name_problems(value)
        for name, template in value.items():
            try:
                facts = env_template.references(template)
            except env_template.TemplateError as error:
                problems.append(f"{name}: {error}")
                continue
            if info.field_name == "frontend" and facts & env_template.SECRET_FACTS:
                problems.append(f"{name}: the frontend's env reaches every browser; {', '.join(sorted(facts & env_template.SECRET_FACTS))} is a secret")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def merged_with(self, other: "AppEnv") -> "AppEnv":
        """These values with `other`'s on top (a tenant's over its plan's)."""
        return AppEnv(backend={**self.backend, **other.backend}, frontend={**self.frontend, **other.frontend})


class SecretSource(Strict):
    """Where a secret env var's value comes from: generated per tenant, or a stack-config secret."""

    generate: Optional[int] = Field(default=None, ge=16, le=256, description="Generate a random value of this length per tenant (rotated with `rotation:`).")
    config: Optional[str] = Field(default=None, description="Take it from the stack's secret `fleet:app_secrets.<config>`.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretSource":
        if (self.generate is None) == (self.config is None):
            raise ValueError("give exactly one of generate: <length> or config: <name>")
        return self


class AppSecrets(Strict):
    """Secret env vars of the backend (the frontend's env reaches every browser, so it gets none)."""

    backend: dict[str, SecretSource] = Field(default_factory=dict, description="`NAME: {generate: 48}` or `NAME: {config: smtp_password}`.")

    @field_validator("backend")
    @classmethod
    def _names(cls, value: dict[str, SecretSource]) -> dict[str, SecretSource]:
        problems = _env_name_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def merged_with(self, other: "AppSecrets") -> "AppSecrets":
        return AppSecrets(backend={**self.backend, **other.backend})


class Worker(Strict):
    """A background service of the app (queues, schedulers): the backend's image and env, a command, no port or route."""

    command: list[str] = Field(min_length=1, description="What it runs, e.g. `[node, dist/worker.js]`.")
    image: Optional[str] = Field(default=None, description="Its image, pinned (default: the backend's, `fleet:images.backend`).")
    cpu: float = Field(gt=0, le=64, description="CPU limit per container, in cores.")
    memory_mb: int = Field(ge=32, le=262144, description="Memory limit per container, in MB.")
    replicas: int = Field(default=1, ge=0, le=20, description="Number of containers.")


class Job(Strict):
    """A one-shot container of the tenant (migrations an ORM runs, seeding): the backend's image and env, a command."""

    command: list[str] = Field(min_length=1, description="What it runs, e.g. `[npx, prisma, migrate, deploy]`.")
    when: Literal["create", "version", "always"] = Field(
        default="version", description="`create`: once, when the tenant is created; `version`: again on each new app version; `always`: on every `up`."
    )
    image: Optional[str] = Field(default=None, description="Its image, pinned (default: the tenant's backend image, so it follows the app version).")
    cpu: float = Field(default=0.25, gt=0, le=64, description="CPU limit, in cores.")
    memory_mb: int = Field(default=256, ge=32, le=262144, description="Memory limit, in MB.")


def _name_check(pattern: str, rule: str) -> Callable[[str], str]:
    """A validator for the keys of a mapping: names matching `pattern`, else a problem stating `rule`."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{rule}: {value!r}")
        return value

    return check


WorkerName = Annotated[str, AfterValidator(_name_check(r"^[a-z][a-z0-9-]{0,20}$", "worker names are lowercase words with - (at most 21 characters)"))]

RESERVED_SERVICE_NAMES = frozenset({"worker", "job", "redis", "route", "dns", "net", "backup", "backups", "jwt", "db", "plan", "services", "workers", "max"})
"""Words a service can't be named: its containers (`<tenant>-<service>-<n>`) and routes must not meet other resources' names."""


def _service_name(value: str) -> str:
    if not re.match(r"^[a-z][a-z0-9]{0,15}$", value):
        raise ValueError(f"service names are one lowercase word of letters and digits (at most 16 characters): {value!r}")
    if value in RESERVED_SERVICE_NAMES:
        raise ValueError(f"{value!r} is reserved (other resources of a tenant use it); choose another service name")
    return value


ServiceName = Annotated[str, AfterValidator(_service_name)]

ROUTE_KINDS = ("app-", "api-", "domains", "api_domains")
"""What a service may serve: `app-<tenant>.<base>`, `api-<tenant>.<base>`, the tenant's `domains`, its `api_domains`."""
RouteKind = Literal["app-", "api-", "domains", "api_domains"]


class Service(Size):
    """A named container group of the app (`web`, `api`, `admin`): its image, port, size, health check and hostnames."""

    image: str = Field(description="Its image, pinned (`ghcr.io/acme/web:2.4.1`); a plan's or tenant's `app_version` replaces the tag.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port it listens on inside its container.")
    health_path: str = Field(default="/health", description="HTTP path of its health check (Docker's, `fleet verify`'s and a rollout's).")
    routes: list[RouteKind] = Field(
        default_factory=list,
        description="Hostnames routed to it: `app-`, `api-` (the tenant's `app-<name>`/`api-<name>` hosts), `domains`, `api_domains` "
        "(its custom domains); none for an internal service.",
    )
    env: Literal["backend", "frontend"] = Field(
        default="backend",
        description="Which env it gets: `backend` (private: DATABASE_URL, secrets, limits, volumes) or `frontend` (public: branding and URLs, no secret).",
    )
    max: Optional[Size] = Field(default=None, description="Upper bounds a tenant override may not exceed (default: this size, no override above it).")

    @field_validator("health_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"health_path must start with /: {value!r}")
        return value

    @model_validator(mode="after")
    def _routed_services_run(self) -> "Service":
        if self.replicas == 0 and self.routes:
            raise ValueError(f"replicas 0 would leave {', '.join(self.routes)} unserved: route them to a running service")
        if len(set(self.routes)) != len(self.routes):
            raise ValueError("a route is listed twice")
        if self.max is not None:
            for field in ("cpu", "memory_mb", "replicas"):
                if getattr(self, field) > getattr(self.max, field):
                    raise ValueError(f"{field} {getattr(self, field)} exceeds its own max {getattr(self.max, field)}")
        return self

    @property
    def bound(self) -> Size:
        """The largest size a tenant override may ask for."""
        return self.max or Size(cpu=self.cpu, memory_mb=self.memory_mb, replicas=self.replicas)




class VolumeSpec(Strict):
    """A persistent folder per tenant mounted into its backend (uploads): kept on remove, backed up with the database."""

    mount: str = Field(description="Where the backend sees it, an absolute path (`/app/uploads`).")
    uid: Optional[int] = Field(default=None, ge=0, description="Owner (numeric uid) the app runs as in its container; default: left as created.")

    @field_validator("mount")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or value == "/":
            raise ValueError(f"{value!r} must be an absolute path inside the container, not / and without '..'")
        return value


VolumeName = Annotated[str, AfterValidator(_name_check(r"^[a-z][a-z0-9-]{0,30}$", "volume names are lowercase words with - (at most 31 characters)"))]


class Retention(Strict):
    """How many backups are kept: every one of the last `daily` days, the newest of each of the last `weekly`
    weeks and of the last `monthly` months. The newest backup and a purge's final backup are never pruned."""

    daily: int = Field(ge=1, le=3650, description="Days whose every backup is kept.")
    weekly: int = Field(default=0, ge=0, le=520, description="Weeks (ISO) whose newest backup is kept beyond that.")
    monthly: int = Field(default=0, ge=0, le=240, description="Months whose newest backup is kept beyond that.")


class AlertThresholds(Strict):
    """When a tenant's alerts fire (fleet.ops.alert_rules writes them as Prometheus rules); defaults: seed 001's numbers."""

    cpu_percent: int = Field(default=80, ge=1, le=100, description="Containers' CPU use, % of the plan's CPU, held `for_minutes`.")
    memory_percent: int = Field(default=90, ge=1, le=100, description="Containers' memory, % of the plan's memory, held `for_minutes`.")
    down_minutes: int = Field(default=5, ge=0, le=1440, description="Minutes the tenant's database is unreachable before the down alert fires.")
    errors_per_hour: int = Field(default=100, ge=1, description="HTTP 5xx answers on the tenant's hostnames in the last hour.")
    connections_percent: int = Field(default=80, ge=1, le=100, description="Sessions of the tenant's role, % of its connection limit, held `for_minutes`.")
    backup_age_hours: int = Field(default=26, ge=1, le=8760, description="Age of the newest backup (a daily job plus slack); no backup at all fires too.")
    for_minutes: int = Field(default=5, ge=0, le=1440, description="How long the CPU, memory and connection conditions must hold before firing.")


LimitValue = Union[StrictBool, StrictInt, Literal["unlimited"]]
"""A business limit: a count (0 or more), `unlimited`, or a feature flag (true/false)."""
LimitName = Annotated[str, AfterValidator(_name_check(r"^[a-z][a-z0-9_]{0,39}$", "limit names are lowercase words with _ (at most 40 characters)"))]


def _is_flag(value: LimitValue) -> bool:
    return isinstance(value, bool)


def limit_within(value: LimitValue, bound: LimitValue) -> bool:
    """Whether `value` is allowed under `bound` (same kind; a count at most the bound, anything under `unlimited`; a flag on only if the bound is)."""
    if _is_flag(value) != _is_flag(bound):
        return False
    if _is_flag(value):
        return bool(bound) or not value
    if bound == "unlimited":
        return True
    return value != "unlimited" and int(value) <= int(bound)


class Limit(Strict):
    """A business limit of a plan: what the app enforces (users, properties, a feature), passed as an env var and in the registry."""

    value: LimitValue = Field(description="The plan's value: a count, `unlimited`, or true/false for a feature flag.")
    max: Optional[LimitValue] = Field(default=None, description="How far a tenant's `limits:` may go (default: the value; `unlimited` allows any count).")
    env: Optional[str] = Field(default=None, description="The env var the backend gets it as (default `LIMIT_<NAME>`; may be USER_LIMIT or CONNECTIONS_LIMIT).")

    @model_validator(mode="after")
    def _consistent(self) -> "Limit":
        for what in (self.value, self.max):
            if isinstance(what, int) and not isinstance(what, bool) and what < 0:
                raise ValueError(f"a count can't be negative ({what})")
        if self.max is not None and not limit_within(self.value, self.max):
            raise ValueError(f"value {self.value!r} is not within max {self.max!r} (same kind, at most max)")
        if self.env is not None and not ENV_NAME.match(self.env):
            raise ValueError(f"env {self.env!r} is not an env var name")
        if self.env is not None and self.env in RESERVED_ENV:
            raise ValueError(f"env {self.env} is set by the fleet itself")
        return self

    @property
    def bound(self) -> LimitValue:
        return self.value if self.max is None else self.max


CURRENCY = r"^[A-Z]{3}$"
"""An ISO 4217 currency code: BRL, USD, EUR."""


class Price(Strict):
    """A plan's list price: what a tenant on it pays (`fleet cost` sets it against what the tenant costs)."""

    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=4, description="What a tenant pays per period, e.g. `247` or `397.90`.")
    currency: str = Field(pattern=CURRENCY, description="ISO 4217 code, e.g. `BRL`; must be `fleet:prices.currency`.")
    period: Literal["month", "year"] = Field(default="month", description="`month`, or `year` (counted as a twelfth a month).")


class Plan(Strict):
    """A subscription plan: what a tenant on it gets, and how far an override may go."""

    description: str = Field(default="", description="One line for people reading plans and previews.")
    backend: Optional[Size] = Field(default=None, description="Backend size (the default app shape; not with `services`).")
    frontend: Optional[Size] = Field(default=None, description="Frontend size (the default app shape; not with `services`).")
    services: dict[ServiceName, Service] = Field(
        default_factory=dict,
        description="The app as named services instead of a backend and a frontend (`web: {image, port, cpu, memory_mb, replicas, routes: [app-, api-, domains]}`); "
        "together they route `app-`, `api-`, `domains` and `api_domains` once each.",
    )
    user_limit: int = Field(ge=1, description="USER_LIMIT passed to the app: seats the tenant may create.")
    connections_limit: int = Field(ge=1, description="CONNECTIONS_LIMIT passed to the app (e.g. WhatsApp connections).")
    db_connections: int = Field(ge=1, le=1000, description="Connection limit of the tenant's database role.")
    backup_retention_days: int = Field(ge=1, le=3650, description="How long the tenant's backups are kept (the daily tier, unless `backup_retention` says more).")
    backup_retention: Optional[Retention] = Field(default=None, description="Daily, weekly, monthly tiers (`{daily: 30, weekly: 52}`); default: `backup_retention_days` days.")
    max: Optional[ComponentSizes] = Field(
        default=None,
        description="Upper bounds a tenant override may not exceed: `backend` and `frontend` (required with the default app shape), "
        "and `database` (either shape; a services plan's `max` holds only this).",
    )
    alerts: AlertThresholds = Field(default_factory=AlertThresholds, description="Alert thresholds for tenants on this plan (`fleet alerts` writes the rules).")
    app_version: Optional[str] = Field(
        default=None, description="Image tag of the app for tenants on this plan (backend, frontend, workers), instead of `fleet:images`' tags."
    )
    first_admin: Optional[str] = Field(
        default=None,
        description="SQL file (relative to the repository) that creates or updates the tenant's first admin, run as its owner role "
        "with %(email)s, %(password)s and %(tenant)s; the password is generated per tenant.",
    )
    migrations: Optional[str] = Field(
        default=None, description="Folder of SQL migrations (relative to the repository) applied to every tenant's database as its owner role."
    )
    jobs: dict[WorkerName, Job] = Field(
        default_factory=dict, description="One-shot containers per tenant run before its app's containers (`migrate: {command: [...], when: version}`)."
    )
    workers: dict[WorkerName, Worker] = Field(
        default_factory=dict, description="Background services per tenant (`queue: {command: [...], cpu, memory_mb}`), with the backend's env."
    )
    volumes: dict[VolumeName, VolumeSpec] = Field(
        default_factory=dict, description="Persistent backend folders per tenant (`uploads: {mount: /app/uploads}`); needs `fleet:volumes`."
    )
    limits: dict[LimitName, Limit] = Field(default_factory=dict, description="Business limits by name (`users: {value: 10, max: 50}`); env vars and registry.")
    env: AppEnv = Field(default_factory=AppEnv, description="Env vars every tenant on the plan gets (a tenant's own `env` wins).")
    secrets: AppSecrets = Field(default_factory=AppSecrets, description="Secret env vars every tenant on the plan gets, each its own value.")
    redis: Literal["none", "shared", "dedicated"] = Field(
        default="none",
        description=(
            "`shared`: the tenant gets an ACL user on the environment's Redis (`fleet:redis`), limited to keys and channels "
            "`tenant:<name>:*`; `dedicated`: a Redis container of its own on its network. The backend gets REDIS_URL (secret) and REDIS_KEY_PREFIX."
        ),
    )
    redis_memory_mb: int = Field(
        default=64, ge=16, le=65536, description="Redis memory per tenant: a dedicated container's limit, or its share of the shared Redis (capacity policy)."
    )
    database_limits: DatabaseLimits = Field(
        default_factory=DatabaseLimits, description="Per-role timeouts, work_mem and temp_file_limit of its tenants' databases (noisy-neighbour limits)."
    )
    offboarding: Offboarding = Field(default_factory=Offboarding, description="How long an offboarded tenant's data is kept before its purge is proposed.")
    drills: Optional[DrillSchedule] = Field(default=None, description="Restore drills of its tenants' backups (`{every: 7d}`); unset: no schedule is checked.")
    price: Optional[Price] = Field(default=None, description="List price (`{amount: 247, currency: BRL, period: month}`), for `fleet cost` and the PR summary.")
    database_gb: Optional[Decimal] = Field(
        default=None, gt=0, max_digits=10, decimal_places=3, description="Database size the plan allows, in GB: what `fleet cost` prices when no measured size is given."
    )

    @field_validator("limits")
    @classmethod
    def _limit_envs(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        envs = [limit.env or f"LIMIT_{name.upper()}" for name, limit in value.items()]
        twice = sorted({env for env in envs if envs.count(env) > 1})
        if twice:
            raise ValueError(f"two limits set the same env var: {', '.join(twice)}")
        return value

    @field_validator("app_version")
    @classmethod
    def _pinned(cls, value: Optional[str]) -> Optional[str]:
        return _version_tag(value)

    @model_validator(mode="after")
    def _one_app_shape(self) -> "Plan":
        default_shape = [part for part in ("backend", "frontend") if getattr(self, part) is not None]
        if self.max is not None:
            default_shape += [f"max.{part}" for part in ("backend", "frontend") if getattr(self.max, part) is not None]
        if self.services:
            if default_shape:
                raise ValueError(
                    f"services replace backend, frontend and their max (each service has its own max; a services plan's max holds only database): "
                    f"drop {', '.join(default_shape)}"
                )
            routed = [kind for service in self.services.values() for kind in service.routes]
            problems = []
            for kind in ROUTE_KINDS:
                owners = [name for name, service in self.services.items() if kind in service.routes]
                if not owners:
                    problems.append(f"no service routes {kind}")
                elif len(owners) > 1:
                    problems.append(f"{kind} routed to {' and '.join(owners)}: one service each")
            api = [service for service in self.services.values() if "api-" in service.routes]
            if api and api[0].env != "backend":
                problems.append("the service routing api- gets the backend's env (env: backend): jobs and workers run with it")
            if problems or not routed:
                raise ValueError("; ".join(problems))
            return self
        missing = [part for part in ("backend", "frontend", "max") if getattr(self, part) is None]
        if self.max is not None:
            missing += [f"max.{part}" for part in ("backend", "frontend") if getattr(self.max, part) is None]
        if missing:
            raise ValueError(f"a plan declares its app as backend, frontend and max, or as services: {', '.join(missing)} missing")
        assert self.backend is not None
        if self.backend.replicas < 1:
            raise ValueError("backend.replicas must be at least 1 (a full-stack app is a backend with frontend.replicas 0)")
        return self

    @model_validator(mode="after")
    def _bounds_cover_plan(self) -> "Plan":
        if self.max is None:
            return self
        for part in ("backend", "frontend"):
            size, bound = getattr(self, part), getattr(self.max, part)
            if size is None or bound is None:
                continue
            for field in ("cpu", "memory_mb", "replicas"):
                if getattr(size, field) > getattr(bound, field):
                    raise ValueError(f"{part}.{field} {getattr(size, field)} exceeds its own max {getattr(bound, field)}")
        if self.max.database is not None:
            for field, value in self.database_limits.model_dump().items():
                if value > getattr(self.max.database, field):
                    raise ValueError(f"database_limits.{field} {value} exceeds its own max {getattr(self.max.database, field)}")
        return self


class PlanCatalog(Strict):
    """The plan catalog file (`tenants/_plans.yaml`)."""

    plans: dict[str, Plan] = Field(description="Plans by name.")


# ---------------------------------------------------------------- tenant files


class Branding(Strict):
    """White label settings passed to the frontend."""

    color: str = Field(default="#1F6FEB", description="Primary color, hex (`#682EE3`). REACT_APP_COLOR.")
    tab_name: Optional[str] = Field(default=None, max_length=80, description="Browser tab title. REACT_APP_TAB_NAME; default: display_name.")
    logo_url: Optional[str] = Field(default=None, max_length=500, description="URL of the tenant's logo. REACT_APP_LOGO_URL.")
    secondary_color: Optional[str] = Field(default=None, description="Second color, hex. REACT_APP_SECONDARY_COLOR.")
    favicon_url: Optional[str] = Field(default=None, max_length=500, description="URL of the tenant's favicon. REACT_APP_FAVICON_URL.")

    @field_validator("color", "secondary_color")
    @classmethod
    def _hex(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not HEX_COLOR.match(value):
            raise ValueError(f"{value!r} is not a hex color like #682EE3")
        return value

    @field_validator("logo_url", "favicon_url")
    @classmethod
    def _https(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value is not None and not value.startswith("https://"):
            raise ValueError(f"{info.field_name} must be an https:// URL")
        return value


class DatabaseRef(Strict):
    """Where the tenant's database lives."""

    server: str = Field(description="Key of a PostgreSQL server declared in the stack config (`fleet:servers`).")


VERSION_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _version_tag(value: Optional[str]) -> Optional[str]:
    if value is not None and (not VERSION_TAG.match(value) or value == "latest"):
        raise ValueError(f"{value!r} is not a pinned image tag (letters, digits, . _ -; never latest)")
    return value


def checked_email(value: Optional[str]) -> Optional[str]:
    """An email address as given, or a problem saying it isn't one (None passes: the field is optional)."""
    if value is not None and not EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


class Admin(Strict):
    """The tenant's first admin user (plans with `first_admin:`)."""

    email: Optional[str] = Field(default=None, max_length=254, description="Its login (default: `contact.email`).")
    rotation: int = Field(default=0, ge=0, description="Bump it to issue a new one-time password.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: Optional[str]) -> Optional[str]:
        return checked_email(value)


class AppPlacement(Strict):
    """Which app host (a Docker host or a Kubernetes cluster) runs the tenant's app."""

    host: str = Field(
        default="default",
        description="`default` (`fleet:docker_host`), a key of `fleet:docker_hosts` or of `fleet:kubernetes_hosts`; changing it moves the app.",
    )


class Overrides(Strict):
    """Per-tenant size changes within the plan's bounds."""

    backend: Optional[SizeOverride] = Field(default=None, description="Backend override.")
    frontend: Optional[SizeOverride] = Field(default=None, description="Frontend override.")
    services: dict[str, SizeOverride] = Field(default_factory=dict, description="Overrides of a plan's named services, by name, within each one's `max`.")
    database: Optional[DatabaseLimitsOverride] = Field(default=None, description="Database limits override, within the plan's `max.database`.")

    @field_validator("backend")
    @classmethod
    def _a_backend_runs(cls, value: Optional[SizeOverride]) -> Optional[SizeOverride]:
        if value is not None and value.replicas == 0:
            raise ValueError("replicas 0 is for a frontend only: suspend the tenant (status: suspended) to stop its app")
        return value


class Purge(Strict):
    """The explicit, reviewed request to drop a tenant's data after a final backup."""

    confirm: str = Field(description="The tenant's name again, typed out: the purge runs only when it matches.")
    reason: str = Field(default="", max_length=200, description="Why (contract ended, duplicate tenant, ...): kept with the final backup.")


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()-]{6,24}$")


class Contact(Strict):
    """Who to call at the customer (in the registry, for the app's and support's use)."""

    name: Optional[str] = Field(default=None, max_length=120, description="Contact person.")
    email: Optional[str] = Field(default=None, max_length=254, description="Contact email.")
    phone: Optional[str] = Field(default=None, max_length=24, description="Contact phone, digits with optional +, spaces, () and -.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: Optional[str]) -> Optional[str]:
        return checked_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not PHONE.match(value):
            raise ValueError(f"{value!r} is not a phone number")
        return value


class Subscription(Strict):
    """The customer's subscription as the business sees it (the registry carries it; `status:` is what runs)."""

    status: Literal["trial", "active", "past_due", "cancelled"] = Field(default="active", description="Billing state.")
    expires: Optional[date] = Field(default=None, description="When it ends or renews (YYYY-MM-DD).")


class TenantSpec(Strict):
    """One tenant: the whole content of `tenants/<name>.yaml`."""

    name: str = Field(description="Tenant key: a DNS label (lowercase letters, digits, `-`), equal to the file name. Never rename: it names every resource.")
    display_name: str = Field(min_length=1, max_length=120, description="Human name, e.g. `Prefeitura de Santa Rita`.")
    plan: str = Field(description="A plan from `tenants/_plans.yaml`.")
    status: Literal["active", "suspended", "offboarded"] = Field(
        default="active",
        description="`suspended` stops the app, blocks the database login and shows a maintenance page; data is kept. "
        "`offboarded`: the same, and the plan's `offboarding.retain_days` count from `offboarded_on`.",
    )
    offboarded_on: Optional[date] = Field(default=None, description="The day the tenant was offboarded (YYYY-MM-DD); required with `status: offboarded`.")
    database: DatabaseRef = Field(description="Database placement.")
    app: AppPlacement = Field(default_factory=AppPlacement, description="App placement: the Docker host or Kubernetes cluster its app runs on.")
    domains: list[str] = Field(default_factory=list, description="Custom domains served by its frontend (besides `app-<name>.<base_domain>`).")
    api_domains: list[str] = Field(default_factory=list, description="Custom domains served by its backend (besides `api-<name>.<base_domain>`).")
    branding: Branding = Field(default_factory=Branding, description="White label.")
    contact: Contact = Field(default_factory=Contact, description="Customer contact, published in the registry.")
    subscription: Subscription = Field(default_factory=Subscription, description="Subscription status and expiry, published in the registry.")
    region: Optional[str] = Field(default=None, max_length=60, description="Region or state the customer is in (free text, in the registry).")
    overrides: Overrides = Field(default_factory=Overrides, description="Size overrides within the plan's `max`.")
    jobs: dict[WorkerName, Job] = Field(default_factory=dict, description="Container jobs of this tenant, over its plan's (same name: this one).")
    admin: Admin = Field(default_factory=Admin, description="Its first admin (plans with `first_admin:`): email and password rotation.")
    app_version: Optional[str] = Field(default=None, description="Pins this tenant's app image tag, whatever its plan says (a canary, or a customer held back).")
    modules: list[str] = Field(default_factory=list, description="Modules in its database: `modules/<name>/*.sql`, applied as its owner role; removing one drops nothing.")
    limits: dict[str, LimitValue] = Field(default_factory=dict, description="This tenant's business limits, over its plan's, within each limit's `max`.")
    env: AppEnv = Field(default_factory=AppEnv, description="Env vars of this tenant's containers, over its plan's (`${facts}` allowed, docs/env.md).")
    secrets: AppSecrets = Field(default_factory=AppSecrets, description="Secret env vars of this tenant's backend, over its plan's.")
    backup_retention: Optional[Retention] = Field(default=None, description="This tenant's backup tiers, instead of its plan's.")
    rotation: int = Field(default=0, ge=0, description="Secret rotation counter: bump it to issue a new database password, JWT secrets and generated secrets.")
    purge: Optional[Purge] = Field(default=None, description="Drop the tenant's database and role after a final verified backup. The only way data is ever dropped.")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value) or "--" in value:
            raise ValueError(f"{value!r} is not a DNS label: lowercase letters, digits and single '-', starting with a letter")
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved for the platform")
        return value

    @model_validator(mode="after")
    def _offboarding_dated(self) -> "TenantSpec":
        if self.status == "offboarded" and self.offboarded_on is None:
            raise ValueError("status offboarded needs offboarded_on: YYYY-MM-DD (the day its retention period starts)")
        if self.status != "offboarded" and self.offboarded_on is not None:
            raise ValueError(f"offboarded_on is only for status offboarded (status is {self.status})")
        return self

    @model_validator(mode="after")
    def _purge_confirmed(self) -> "TenantSpec":
        if self.purge is not None and self.purge.confirm != self.name:
            raise ValueError(f"purge.confirm must be the tenant's name ({self.name!r}) typed out")
        return self

    @property
    def custom_domains(self) -> list[str]:
        """Every custom domain of the tenant: its frontend's, then its backend's."""
        return [*self.domains, *self.api_domains]

    @field_validator("app_version")
    @classmethod
    def _pinned(cls, value: Optional[str]) -> Optional[str]:
        return _version_tag(value)

    @model_validator(mode="after")
    def _domains_once(self) -> "TenantSpec":
        twice = sorted(set(self.domains) & set(self.api_domains))
        if twice:
            raise ValueError(f"{', '.join(twice)} in both domains and api_domains: a hostname is served by one of them")
        return self

    @field_validator("domains", "api_domains")
    @classmethod
    def _hostnames(cls, value: list[str]) -> list[str]:
        bad = [domain for domain in value if not HOSTNAME.match(domain.lower())]
        if bad:
            raise ValueError(f"not valid hostnames: {', '.join(bad)}")
        return [domain.lower() for domain in value]


# ---------------------------------------------------------------- stack config


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PostgresServer(Strict):
    """A PostgreSQL server tenants' databases can be placed on."""

    host: str = Field(description="Address the fleet's provider connects to as admin.")
    port: int = Field(default=5432, ge=1, le=65535, description="Port.")
    admin_user: str = Field(default="postgres", description="Admin role; its password is the secret `fleet:server_passwords.<key>`.")
    app_host: Optional[str] = Field(default=None, description="Address the app containers use (default: host).")
    max_connections: int = Field(ge=10, description="The server's max_connections; the sum of tenant role limits must fit below it.")
    reserved_connections: int = Field(default=10, ge=0, description="Connections kept free for admins, backups and moves.")
    memory_mb: Optional[int] = Field(
        default=None, ge=256, description="The server's memory: its tenants' work_mem × connection limit must fit in half of it (policy); unset: not checked."
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(default="require", description="libpq sslmode for admin and app connections.")
    superuser: bool = Field(default=True, description="False on managed servers (RDS, Cloud SQL) where the admin is not a superuser.")
    logical_replication: bool = Field(
        default=True,
        description=(
            "Moves to or from this server copy by logical replication (writes refused under a second): it runs with wal_level=logical, "
            "3 free replication slots and WAL senders, and its admin is a superuser or has REPLICATION (docs/moves.md). "
            "False: moves use dump and restore (writes refused for the whole copy)."
        ),
    )
    locale: str = Field(default="C.UTF-8", description="lc_collate and lc_ctype of new tenant databases; set once, changing it replaces databases.")


class RedisServer(Strict):
    """The environment's shared Redis (7 or later: ACL users with key and channel patterns)."""

    host: str = Field(description="Address the fleet connects to as admin.")
    port: int = Field(default=6379, ge=1, le=65535, description="Port.")
    admin_user: str = Field(default="default", description="Admin ACL user; its password is the secret `fleet:redis_password`.")
    app_host: Optional[str] = Field(default=None, description="Address the app containers use (default: host).")
    tls: bool = Field(default=False, description="Connect with TLS (`rediss://` in the apps' REDIS_URL).")
    memory_mb: Optional[int] = Field(
        default=None, ge=64, description="The shared Redis's maxmemory: tenants' `redis_memory_mb` must fit in it (minus headroom); unset: not checked."
    )
    headroom_percent: int = Field(default=15, ge=0, le=90, description="Share of `memory_mb` kept free.")


class DockerHost(Strict):
    """A Docker host that runs tenants' app containers."""

    url: str = Field(default="unix:///var/run/docker.sock", description="Docker daemon address.")
    memory_mb: int = Field(ge=256, description="Memory the host offers to tenant containers, in MB.")
    cpus: float = Field(gt=0, description="CPU cores the host offers to tenant containers.")
    headroom_percent: int = Field(default=15, ge=0, le=90, description="Share of the capacity kept free (policies count against the rest).")
    upstream_host: Optional[str] = Field(default=None, description="Address the proxy reaches this host's published ports at (default: `fleet:proxy.upstream_host`).")
    plans: Optional[list[str]] = Field(default=None, description="Plans this host takes (default: any).")

    @property
    def local(self) -> bool:
        """Whether its Docker runs on the machine running `pulumi up` (volumes are folders there)."""
        return self.url.startswith("unix://")


class Images(Strict):
    """Pinned app images (a version tag or a digest; never `latest`)."""

    backend: Optional[str] = Field(default=None, description="Backend image, e.g. `ghcr.io/acme/backend:1.8.2` (needed by plans with a backend and a frontend).")
    frontend: Optional[str] = Field(default=None, description="Frontend image (needed by plans with a backend and a frontend).")
    backend_port: int = Field(default=8080, description="Port the backend listens on inside its container.")
    frontend_port: int = Field(default=80, description="Port the frontend listens on inside its container.")
    health_path: str = Field(default="/health", description="HTTP path of the backend health check.")
    ops: Optional[str] = Field(
        default=None,
        description="Pinned ops image (this repository + PostgreSQL client tools) running each tenant's daily backup; unset: no scheduled backups.",
    )
    redis: str = Field(default="redis:7.2.5-alpine", description="Pinned Redis image for plans with `redis: dedicated`.")


class Dns(Strict):
    """How tenant hostnames are published."""

    mode: Literal["none", "cloudflare"] = Field(default="none", description="`none` (local, or DNS managed elsewhere) or `cloudflare`.")
    zone_id: Optional[str] = Field(default=None, description="Cloudflare zone id of base_domain (mode cloudflare).")
    target: Optional[str] = Field(default=None, description="Where records point: an IPv4 address (A record) or a hostname (CNAME).")
    extra_zones: dict[str, str] = Field(default_factory=dict, description="Other Cloudflare zones we manage, domain -> zone id; custom domains under them get records too.")

    @model_validator(mode="after")
    def _cloudflare_needs_zone(self) -> "Dns":
        if self.mode == "cloudflare":
            missing = [field for field in ("zone_id", "target") if not getattr(self, field)]
            if missing:
                raise ValueError(f"dns mode cloudflare needs {' and '.join(missing)}")
        return self


class OnDemandTls(Strict):
    """Certificates for tenants' custom domains obtained at their first TLS handshake, once `fleet ask` allows the name."""

    ask: str = Field(description="URL Caddy asks (`?domain=<name>`) before issuing, where `python -m fleet ask` listens, e.g. `http://127.0.0.1:9123/ask`.")
    issuer: Literal["acme", "internal"] = Field(default="acme", description="`acme` (Let's Encrypt) or `internal` (Caddy's own CA: tests and private networks).")

    @field_validator("ask")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class Proxy(Strict):
    """The shared Caddy that routes each tenant hostname to its containers (driven by its admin API)."""

    admin_url: str = Field(default="http://127.0.0.1:2019", description="Caddy admin API, reachable from where `pulumi up` runs.")
    server: str = Field(default="fleet", description="Name of the Caddy HTTP server that holds tenant routes.")
    listen: list[str] = Field(default_factory=lambda: [":443"], description="Addresses the server listens on.")
    automatic_https: bool = Field(default=True, description="Let Caddy obtain certificates; off for local stacks.")
    upstream_host: str = Field(default="127.0.0.1", description="Address where Caddy reaches the containers' published ports.")
    on_demand_tls: Optional[OnDemandTls] = Field(
        default=None, description="Certificates for custom domains at their first handshake, each name checked with `fleet ask` (`{ask: http://127.0.0.1:9123/ask}`)."
    )
    external_upstreams: Optional[dict[str, str]] = Field(
        default=None,
        description=(
            "When the apps run outside this stack (another stack, Kubernetes): dial address per service (`backend`, `frontend`, "
            "or a plan's service name), a template with `{tenant}`, "
            "e.g. `{backend: 'backend.{tenant}.svc:8080', frontend: 'frontend.{tenant}.svc:80'}`."
        ),
    )

    @model_validator(mode="after")
    def _on_demand_needs_tls(self) -> "Proxy":
        if self.on_demand_tls is not None and not self.automatic_https:
            raise ValueError("on_demand_tls needs automatic_https: true (with it off the server speaks plain HTTP)")
        return self

    @field_validator("admin_url")
    @classmethod
    def _admin_endpoint_not_open(cls, value: str) -> str:
        # Whoever reaches Caddy's admin API can reroute every tenant: loopback, or https with credentials.
        parts = urllib.parse.urlsplit(value)
        host = (parts.hostname or "").lower()
        loopback = host == "localhost" or _is_loopback(host)
        if parts.scheme == "http" and loopback:
            return value
        if parts.scheme == "https" and (loopback or (parts.username and parts.password)):
            return value
        raise ValueError(
            f"{value!r} would expose Caddy's admin API: use a loopback address (http://127.0.0.1:2019) "
            "or https with credentials (https://user:password@proxy.internal:2019)"
        )


class Backups(Strict):
    """Where tenant backups (and the final backup before a purge) are written."""

    dir: str = Field(default="backups", description="Folder for `pg_dump -Fc` files, relative to the project root or absolute.")
    pg_bin: Optional[str] = Field(default=None, description="Folder with pg_dump/pg_restore matching the servers' major version (default: found on the machine).")
    schedule: str = Field(default="02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Daily UTC time (HH:MM) of each tenant's scheduled backup.")
    env_recipient: Optional[str] = Field(
        default=None,
        description="Public key (base64 Curve25519, from `python -m fleet backup-key`) to which each backup seals the tenant's generated app env; "
        "unset: backups carry no env.",
    )

    @field_validator("env_recipient")
    @classmethod
    def _curve25519_key(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            raise ValueError("env_recipient is not base64 (make one with `python -m fleet backup-key`)") from None
        if len(raw) != 32:
            raise ValueError(f"env_recipient is {len(raw)} bytes, not the 32 of a Curve25519 public key (make one with `python -m fleet backup-key`)")
        return value.strip()

    def folder(self, root: Path) -> Path:
        """`dir` as an absolute path (`~` expanded; relative to the project root `root`): where the scheduled job,
        a purge's final backup and `fleet backup`/`restore` all write and read."""
        return absolute_folder(self.dir, root)


def absolute_folder(path: str | os.PathLike[str], root: Path) -> Path:
    """A configured folder as an absolute path: `~` expanded, relative ones taken from `root`."""
    folder = Path(path).expanduser()
    return (folder if folder.is_absolute() else root / folder).resolve()


class Volumes(Strict):
    """Where tenants' persistent folders live on the app host (plans' `volumes:`)."""

    root: str = Field(description="Absolute folder on the app host (the machine running `pulumi up` and the local Docker): `<root>/<tenant>/<volume>`.")

    @field_validator("root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not Path(value).expanduser().is_absolute():
            raise ValueError(f"{value!r} must be an absolute path")
        return value

    def folder(self, tenant: str, volume: str) -> Path:
        """A tenant's volume folder."""
        return Path(self.root).expanduser() / tenant / volume


ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TENANT_ROLE_NAME = re.compile(r"^tenant_[a-z0-9_]+_(app|dbo)$")


class Rollout(Strict):
    """How `fleet up` of a per-tenant environment reaches the changed tenants: a canary set, then batches."""

    canary: list[str] = Field(default_factory=list, description="Tenants deployed first, on their own (those of them that changed).")
    batch: str = Field(default="100%", pattern=r"^[1-9][0-9]*%?$", description="Size of each later wave: a count (`5`) or a share of the rest (`25%`).")
    health: bool = Field(default=True, description="After each wave, every tenant of it must answer through the proxy before the next wave starts.")


class Registry(Strict):
    """The tenant registry: a `tenants` table kept in sync by `pulumi up`, read by apps that route by hostname."""

    server: str = Field(description="Key of the server in `fleet:servers` holding the registry; the provider logs in as its admin.")
    database: str = Field(description="Registry database on that server; created when missing.")
    table: str = Field(default="tenants", description="Table name.")
    readers: list[str] = Field(default_factory=list, description="Roles that may read every column but `db_password` (apps routing by hostname); they must exist.")
    credentials_reader: Optional[str] = Field(
        default=None, description="The one role of a shared app serving every tenant: rows then carry each tenant's database password, which only it may read."
    )

    @field_validator("readers")
    @classmethod
    def _reader_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not ROLE_NAME.match(name) or TENANT_ROLE_NAME.match(name)]
        if bad:
            raise ValueError(f"not role names a reader may have (a tenant's own roles can't be readers): {', '.join(bad)}")
        return value

    @field_validator("credentials_reader")
    @classmethod
    def _credentials_reader_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not ROLE_NAME.match(value) or TENANT_ROLE_NAME.match(value)):
            raise ValueError(f"{value!r} is not a role name a credentials reader may have (a tenant's own roles can't read every password)")
        return value


class Prices(Strict):
    """What resources cost a month (`fleet:prices`), for `fleet cost` and the PR summary (docs/cost.md)."""

    currency: str = Field(pattern=CURRENCY, description="ISO 4217 code of every amount here and of every plan's price, e.g. `BRL`.")
    ram_gb: Decimal = Field(default=Decimal(0), ge=0, description="Per GB (1024 MB) of container memory limit, a month.")
    cpu: Decimal = Field(default=Decimal(0), ge=0, description="Per CPU core of container limit, a month.")
    database_gb: Decimal = Field(default=Decimal(0), ge=0, description="Per GB of database (the plan's `database_gb`, or the measured size), a month.")
    backup_gb: Decimal = Field(default=Decimal(0), ge=0, description="Per GB of kept backups (retention's copies x one backup's size), a month.")
    backup_ratio: Decimal = Field(default=Decimal("0.3"), gt=0, le=2, description="One backup's size as a share of its database's (`pg_dump -Fc` compresses).")
    proxy: Decimal = Field(default=Decimal(0), ge=0, description="The shared proxy's cost a month, split equally among the stack's tenants.")
    shared_redis: Decimal = Field(default=Decimal(0), ge=0, description="The shared Redis's cost a month, split among its tenants by their plans' `redis_memory_mb`.")


Layer = Literal["database", "app", "dns", "proxy"]
ALL_LAYERS: tuple[Layer, ...] = ("database", "app", "dns", "proxy")


class Environment(Strict):
    """The stack config under the `fleet:` namespace of `Pulumi.<stack>.yaml`."""

    base_domain: str = Field(description="Tenants get `api-<name>.<base_domain>` and `app-<name>.<base_domain>`.")
    dns: Dns = Field(default_factory=Dns, description="DNS publishing.")
    servers: dict[str, PostgresServer] = Field(min_length=1, description="PostgreSQL servers by key.")
    docker_host: DockerHost = Field(description="The default app host (`app: {host: default}`) and its capacity.")
    docker_hosts: dict[str, DockerHost] = Field(default_factory=dict, description="More app hosts by key (a VPS per customer group); tenants pick one with `app: {host: <key>}`.")
    kubernetes_hosts: dict[str, KubernetesHost] = Field(
        default_factory=dict, description="Kubernetes clusters by key that run tenant apps (docs/runtime-kubernetes.md); tenants pick one with `app: {host: <key>}`."
    )
    images: Images = Field(description="Pinned app images.")
    proxy: Proxy = Field(default_factory=Proxy, description="The shared proxy.")
    backups: Backups = Field(default_factory=Backups, description="Backup storage.")
    registry: Optional[Registry] = Field(default=None, description="Tenant registry (`{server, database}`); unset: none.")
    redis: Optional[RedisServer] = Field(default=None, description="Shared Redis for plans with `redis: shared`; unset: none.")
    rollout: Rollout = Field(default_factory=Rollout, description="Waves of a per-tenant `fleet up` (`{canary: [gurupi], batch: 25%}`); default: every changed tenant at once.")
    volumes: Optional[Volumes] = Field(default=None, description="Where tenants' persistent folders live (for plans with `volumes:`); unset: none.")
    prices: Optional[Prices] = Field(default=None, description="What RAM, CPU, database and backups cost a month (`fleet cost`); unset: no costs.")
    layers: list[Layer] = Field(default_factory=lambda: list(ALL_LAYERS), description="Which layers this stack manages (e.g. only `proxy` on an ingress stack).")
    tenants: Optional[list[str]] = Field(default=None, description="Tenants this stack declares (a shard or one tenant); default: every tenant file.")
    stacks: Literal["single", "per-tenant"] = Field(
        default="single",
        description=(
            "How the environment is split into stacks: `single` (stack `<env>` holds the platform and every tenant) or "
            "`per-tenant` (stack `<env>` holds the platform, stack `<env>.<tenant>` each tenant; `fleet up` deploys only what changed)."
        ),
    )
    server_passwords: dict[str, str] = Field(
        default_factory=dict,
        description="SECRET: admin password per server key (`pulumi config set --secret --path 'fleet:server_passwords.shared-1' ...`).",
    )
    redis_password: str = Field(default="", description="SECRET: the Redis admin's password (`pulumi config set --secret fleet:redis_password ...`).")
    kubeconfigs: dict[str, str] = Field(
        default_factory=dict,
        description="SECRET: kubeconfig per key of fleet:kubernetes_hosts without a `kubeconfig` file "
        "(`pulumi config set --secret --path 'fleet:kubeconfigs.<key>' \"$(cat kubeconfig)\"`).",
    )
    app_secrets: dict[str, str] = Field(
        default_factory=dict,
        description="SECRET: values for `secrets: {NAME: {config: <key>}}` (`pulumi config set --secret --path 'fleet:app_secrets.<key>' ...`).",
    )

    @field_validator("base_domain")
    @classmethod
    def _base_domain(cls, value: str) -> str:
        if not HOSTNAME.match(value.lower()):
            raise ValueError(f"{value!r} is not a domain name")
        return value.lower()

    @field_validator("servers")
    @classmethod
    def _server_keys(cls, value: dict[str, PostgresServer]) -> dict[str, PostgresServer]:
        bad = [key for key in value if not DNS_LABEL.match(key)]
        if bad:
            raise ValueError(f"server keys must be DNS labels: {', '.join(bad)}")
        return value

    @field_validator("docker_hosts")
    @classmethod
    def _host_keys(cls, value: dict[str, DockerHost]) -> dict[str, DockerHost]:
        bad = invalid_app_host_keys(value)
        if bad:
            raise ValueError(f"docker host keys must be DNS labels other than 'default' (that is fleet:docker_host): {', '.join(bad)}")
        return value

    @field_validator("kubernetes_hosts")
    @classmethod
    def _cluster_keys(cls, value: dict[str, KubernetesHost]) -> dict[str, KubernetesHost]:
        bad = invalid_app_host_keys(value)
        if bad:
            raise ValueError(f"kubernetes host keys must be DNS labels other than 'default': {', '.join(bad)}")
        return value

    def app_hosts(self) -> dict[str, DockerHost]:
        """Every app host by key: `default` (fleet:docker_host) and fleet:docker_hosts."""
        return {"default": self.docker_host, **self.docker_hosts}

    @model_validator(mode="after")
    def _layers_consistent(self) -> "Environment":
        if "app" in self.layers and "database" not in self.layers:
            raise ValueError("layers: app needs database in the same stack (the app's database URL comes from it)")
        if self.registry is not None and self.registry.server not in self.servers:
            raise ValueError(f"registry.server {self.registry.server!r} is not one of the servers: {', '.join(sorted(self.servers))}")
        without = sorted(key for key, host in self.kubernetes_hosts.items() if host.kubeconfig is None and key not in self.kubeconfigs)
        if without:
            raise ValueError(
                "; ".join(f"kubernetes_hosts.{key}: no kubeconfig file and no secret fleet:kubeconfigs.{key}" for key in without)
                + f" (set it: pulumi config set --secret --path 'fleet:kubeconfigs.{without[0]}' \"$(cat kubeconfig)\")"
            )
        if set(self.docker_hosts) & set(self.kubernetes_hosts):
            raise ValueError(f"app host keys used twice (docker_hosts and kubernetes_hosts): {', '.join(sorted(set(self.docker_hosts) & set(self.kubernetes_hosts)))}")
        if "proxy" in self.layers and "app" not in self.layers and not self.proxy.external_upstreams:
            raise ValueError("layers: proxy without app needs proxy.external_upstreams (where the apps are)")
        return self

    def manages(self, layer: Layer) -> bool:
        """Whether this stack declares the given layer."""
        return layer in self.layers


# ---------------------------------------------------------------- loaded fleet


@dataclass(frozen=True)
class Fleet:
    """A validated fleet: the environment, the plan catalog and the tenants, sorted by name."""

    environment: Environment
    plans: dict[str, Plan]
    tenants: tuple[TenantSpec, ...]

    def tenant(self, name: str) -> TenantSpec:
        """The tenant with this name."""
        for tenant in self.tenants:
            if tenant.name == name:
                return tenant
        raise KeyError(name)

    def plan_of(self, tenant: TenantSpec) -> Plan:
        """The plan a tenant is on."""
        return self.plans[tenant.plan]

    def select(self, names: Optional[set[str]]) -> "Fleet":
        """The same fleet restricted to some tenants (a shard or one tenant)."""
        if names is None:
            return self
        unknown = names - {tenant.name for tenant in self.tenants}
        if unknown:
            raise SpecError([Problem("<selection>", None, "tenants", f"unknown tenants: {', '.join(sorted(unknown))}")])
        return Fleet(self.environment, self.plans, tuple(t for t in self.tenants if t.name in names))
