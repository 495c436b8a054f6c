"""Checks that span tenant files: plan and server references, plan bounds, identifiers, unique hostnames.

Run by `load_fleet` on the whole fleet (also when the offline plan evaluates it in shards).
"""


from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.errors import Problem
from fleet.model import db_limits, derive, env_template, kubernetes
from fleet.model.migration_sources import MODULES_FOLDER, check_admin_sql, check_source
from fleet.model.spec import PG_IDENTIFIER_MAX_BYTES, DockerHost, Environment, Plan, TenantSpec, limit_within


def reference_problems(display: str, tenant: str, plan: Any, server: Any, environment: Environment, plans: dict[str, Plan]) -> list[Problem]:
    """A tenant's plan and server must exist (values that are not strings are the models' to report)."""
    problems = []
    if isinstance(plan, str) and plans and plan not in plans:
        problems.append(Problem(display, tenant, "plan", f"unknown plan {plan!r}; plans: {', '.join(sorted(plans))}"))
    if isinstance(server, str) and server not in environment.servers:
        problems.append(Problem(display, tenant, "database.server", f"unknown server {server!r}; servers: {', '.join(sorted(environment.servers))}"))
    return problems


def check_references(environment: Environment, plans: dict[str, Plan], unparsed: list[tuple[str, str, dict]]) -> list[Problem]:
    """Plan and server references of tenant files that failed validation, so one run lists those problems too."""
    problems = []
    for display, tenant, data in unparsed:
        database = data.get("database")
        server = database.get("server") if isinstance(database, dict) else None
        problems.extend(reference_problems(display, tenant, data.get("plan"), server, environment, plans))
    return problems


def check_migration_sources(plans: dict[str, Plan], tenants: list[TenantSpec], root: Path, file_of) -> list[Problem]:
    """Each plan's migrations folder and each tenant's modules exist, hold .sql files and don't switch roles."""
    problems: list[Problem] = []
    for name, plan in sorted(plans.items()):
        if plan.migrations:
            problems.extend(Problem("tenants/_plans.yaml", None, f"plans.{name}.migrations", text) for text in check_source("app", root / plan.migrations))
        if plan.first_admin:
            problems.extend(Problem("tenants/_plans.yaml", None, f"plans.{name}.first_admin", text) for text in check_admin_sql(root / plan.first_admin))
    for tenant in tenants:
        tenant_plan = plans.get(tenant.plan)
        if tenant_plan is not None and tenant_plan.first_admin and not (tenant.admin.email or tenant.contact.email):
            problems.append(Problem(file_of(tenant), tenant.name, "admin.email", f"plan {tenant.plan} creates a first admin: give admin.email (or contact.email)"))
        for module in tenant.modules:
            problems.extend(Problem(file_of(tenant), tenant.name, "modules", f"{module}: {text}") for text in check_source(module, root / MODULES_FOLDER / module))
    return problems


def check_rollout(environment: Environment, tenants: list[TenantSpec], display: str) -> list[Problem]:
    """The canary tenants exist."""
    known = {tenant.name for tenant in tenants}
    unknown = [name for name in environment.rollout.canary if name not in known]
    if unknown and known:
        return [Problem(display, None, "fleet:rollout.canary", f"no tenant file for {', '.join(unknown)}")]
    return []


def check_environment_plans(environment: Environment, plans: dict[str, Plan], display: str) -> list[Problem]:
    """Plans the stack config names (an app host's `plans`) exist in the catalog."""
    problems = []
    host_lists = [("docker_hosts", key, host.plans) for key, host in sorted(environment.docker_hosts.items())]
    host_lists += [("kubernetes_hosts", key, host.plans) for key, host in sorted(environment.kubernetes_hosts.items())]
    for kind, key, host_plans in host_lists:
        unknown = sorted(set(host_plans or ()) - set(plans)) if plans else []
        if unknown:
            problems.append(Problem(display, None, f"fleet:{kind}.{key}.plans", f"unknown plan(s) {', '.join(unknown)}; plans: {', '.join(sorted(plans))}"))
    default_shape = sorted(name for name, plan in plans.items() if not plan.services)
    if default_shape and environment.manages("app"):
        for part in ("backend", "frontend"):
            if getattr(environment.images, part) is None:
                problems.append(Problem(display, None, f"fleet:images.{part}", f"not set, and plan(s) {', '.join(default_shape)} run a {part}"))
    return problems


def env_problems(where: str, tenant: TenantSpec, plan: Plan, environment: Environment) -> list[Problem]:
    """A tenant's env and secrets, its plan's merged in: facts its plan provides, config secrets that exist, no name twice."""
    problems = []

    def field(kind: str, role: str, name: str) -> str:
        own = getattr(getattr(tenant, kind), role)
        return f"{kind}.{role}.{name}" + ("" if name in own else f" (from plan {tenant.plan})")

    env = plan.env.merged_with(tenant.env)
    secrets = plan.secrets.merged_with(tenant.secrets)
    for role in ("backend", "frontend"):
        for name, template in getattr(env, role).items():
            needs_redis = {fact for fact in env_template.references(template) if fact.startswith("redis.")}
            if needs_redis and plan.redis == "none":
                needs = f"${{{min(needs_redis)}}} needs a plan with redis: shared or dedicated ({tenant.plan} has none)"
                problems.append(Problem(where, tenant.name, field("env", role, name), needs))
    for name, source in secrets.backend.items():
        if name in env.backend:
            problems.append(Problem(where, tenant.name, field("secrets", "backend", name), "also set in env.backend: keep one"))
        if source.config is not None and source.config not in environment.app_secrets:
            known = ", ".join(sorted(environment.app_secrets)) or "none"
            problems.append(Problem(where, tenant.name, field("secrets", "backend", name), f"fleet:app_secrets has no {source.config!r} (it has: {known})"))
    return problems


def override_problems(where: str, tenant: TenantSpec, plan: Plan) -> list[Problem]:
    """A tenant's size overrides name parts of its plan's app shape, each within that part's max."""
    problems = []
    overrides = tenant.overrides
    bounds: dict[str, tuple[Any, Any]] = {}  # field path -> (override, bound)
    if plan.services:
        for part in ("backend", "frontend"):
            if getattr(overrides, part) is not None:
                message = f"plan {tenant.plan} declares services ({', '.join(plan.services)}): override them under overrides.services"
                problems.append(Problem(where, tenant.name, f"overrides.{part}", message))
        for name, override in overrides.services.items():
            if name not in plan.services:
                problems.append(Problem(where, tenant.name, f"overrides.services.{name}", f"plan {tenant.plan} has no service {name!r} (it has {', '.join(plan.services)})"))
                continue
            bounds[f"overrides.services.{name}"] = (override, plan.services[name].bound)
            if override.replicas == 0 and plan.services[name].routes:
                message = f"0 would leave {', '.join(plan.services[name].routes)} unserved; suspend the tenant to stop its app"
                problems.append(Problem(where, tenant.name, f"overrides.services.{name}.replicas", message))
    else:
        if overrides.services:
            problems.append(Problem(where, tenant.name, "overrides.services", f"plan {tenant.plan} has no named services: override backend or frontend"))
        assert plan.max is not None  # the default shape has one, with both parts
        for part in ("backend", "frontend"):
            override, bound = getattr(overrides, part), getattr(plan.max, part)
            if override is not None and bound is not None:
                bounds[f"overrides.{part}"] = (override, bound)
    for path, (size_override, bound) in bounds.items():
        for field in ("cpu", "memory_mb", "replicas"):
            value = getattr(size_override, field)
            if value is not None and value > getattr(bound, field):
                problems.append(Problem(where, tenant.name, f"{path}.{field}", f"{value} exceeds plan {tenant.plan}'s max {getattr(bound, field)}"))
    return problems


def limit_problems(where: str, tenant: TenantSpec, plan: Plan) -> list[Problem]:
    """A tenant's `limits:` name limits of its plan, each within that limit's `max`."""
    problems = []
    for name, value in tenant.limits.items():
        limit = plan.limits.get(name)
        if limit is None:
            known = ", ".join(sorted(plan.limits)) or "none"
            problems.append(Problem(where, tenant.name, f"limits.{name}", f"plan {tenant.plan} has no limit {name!r} (it has: {known})"))
        elif not limit_within(value, limit.bound):
            problems.append(Problem(where, tenant.name, f"limits.{name}", f"{value!r} is beyond plan {tenant.plan}'s max {limit.bound!r}"))
    return problems


def check_fleet(environment: Environment, plans: dict[str, Plan], tenants: list[TenantSpec], file_of) -> list[Problem]:
    """Checks that need more than one tenant file: plan and server exist, bounds, hostnames unique, identifiers fit."""

    problems: list[Problem] = []
    owner_of_host: dict[str, str] = {}
    base = environment.base_domain.lower()
    for tenant in tenants:
        where = file_of(tenant)
        plan = plans.get(tenant.plan)
        problems.extend(reference_problems(where, tenant.name, tenant.plan, tenant.database.server, environment, plans))
        if plan is not None and plan.volumes and environment.volumes is None:
            problems.append(Problem(where, tenant.name, "plan", f"plan {tenant.plan} has volumes ({', '.join(plan.volumes)}), but the stack config sets no fleet:volumes"))
        hosts: dict[str, Any] = {**environment.app_hosts(), **environment.kubernetes_hosts}
        app_host = hosts.get(tenant.app.host)
        if plan is not None and tenant.app.host in environment.kubernetes_hosts:
            problems.extend(kubernetes_problems(where, tenant, plan, environment))
        if app_host is None:
            problems.append(Problem(where, tenant.name, "app.host", f"unknown app host {tenant.app.host!r}; hosts: {', '.join(sorted(hosts))}"))
        elif app_host.plans is not None and tenant.plan not in app_host.plans:
            problems.append(Problem(where, tenant.name, "app.host", f"app host {tenant.app.host} takes plans {', '.join(app_host.plans)}, not {tenant.plan}"))
        if plan is not None and plan.volumes and isinstance(app_host, DockerHost) and not app_host.local:
            problems.append(
                Problem(
                    where, tenant.name, "plan",
                    f"plan {tenant.plan} has volumes, which are folders on this machine: they need a local Docker (app host {tenant.app.host} is {app_host.url})",
                )
            )
        if plan is not None and plan.redis == "shared" and environment.redis is None:
            problems.append(Problem(where, tenant.name, "plan", f"plan {tenant.plan} has redis: shared, but the stack config sets no fleet:redis server"))
        if plan is not None:
            problems.extend(env_problems(where, tenant, plan, environment))
            problems.extend(limit_problems(where, tenant, plan))
        if plan is not None:
            problems.extend(override_problems(where, tenant, plan))
            if tenant.overrides.database is not None:
                limits_bound = db_limits.database_limit_bounds(plan)
                for field, value in tenant.overrides.database.model_dump().items():
                    if value is not None and value > getattr(limits_bound, field):
                        problems.append(
                            Problem(
                                where, tenant.name, f"overrides.database.{field}",
                                f"{value} exceeds plan {tenant.plan}'s max {getattr(limits_bound, field)} (max.database, else its database_limits)",
                            )
                        )
        if plan is not None and environment.manages("proxy") and not environment.manages("app"):
            templates = environment.proxy.external_upstreams or {}
            unrouted = sorted({route.service for route in derive.routes(plan, tenant, environment)} - set(templates))
            if unrouted:
                problems.append(
                    Problem(where, tenant.name, "plan", f"plan {tenant.plan} routes to {', '.join(unrouted)}, which proxy.external_upstreams doesn't say how to reach")
                )
        for identifier, label in derive.postgres_identifiers(tenant).items():
            if len(identifier.encode()) > PG_IDENTIFIER_MAX_BYTES:
                problems.append(Problem(where, tenant.name, "name", f"derived {label} {identifier!r} exceeds {PG_IDENTIFIER_MAX_BYTES} bytes; choose a shorter name"))
        for domain in tenant.custom_domains:
            if domain == base or domain.endswith("." + base):
                problems.append(
                    Problem(
                        where, tenant.name, "domains",
                        f"custom domain {domain} lies under the base domain {base}: names there belong to the platform (its api-/app- hostnames); "
                        "use a domain outside it",
                    )
                )
        for host in derive.hostnames(tenant, environment):
            label = host.split(".")[0]
            if len(label) > 63:
                problems.append(Problem(where, tenant.name, "name", f"hostname label {label!r} exceeds 63 characters"))
            other = owner_of_host.setdefault(host, tenant.name)
            if other != tenant.name:
                problems.append(Problem(where, tenant.name, "domains", f"hostname {host} is already used by tenant {other}"))
    return problems


def kubernetes_problems(where: str, tenant: TenantSpec, plan: Plan, environment: Environment) -> list[Problem]:
    """A tenant on a Kubernetes host: its namespace name fits, and nothing the runtime can't run yet (volumes, which are
    folders on a Docker host, and a dedicated Redis container)."""
    problems = []
    namespace_problem = kubernetes.namespace_problem(tenant, kubernetes.host_of(tenant, environment))
    if namespace_problem:
        problems.append(Problem(where, tenant.name, "name", namespace_problem))
    if plan.volumes:
        volumes = ", ".join(sorted(plan.volumes))
        message = f"plan {tenant.plan} has volumes ({volumes}), which the Kubernetes runtime doesn't mount: use a Docker host"
        problems.append(Problem(where, tenant.name, "app.host", message))
    if plan.redis == "dedicated":
        message = f"plan {tenant.plan} has redis: dedicated, which the Kubernetes runtime doesn't run: use redis: shared or a Docker host"
        problems.append(Problem(where, tenant.name, "app.host", message))
    return problems
