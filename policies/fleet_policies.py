"""tenant-fleet's CrossGuard policies: one function per rule, the same code for the engine and the offline plan.

Resource rules are `ResourceValidationPolicy`, fleet-wide rules `StackValidationPolicy`; facts that are not
resource properties come from the policy config (`python -m fleet policy-config`). Props are camelCase,
unknown values are skipped. This module imports only `pulumi_policy` and the standard library.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

# ---------------------------------------------------------------- resource types the rules look at

CONTAINER = "docker:index/container:Container"
ROLE = "postgresql:index/role:Role"
DATABASE = "postgresql:index/database:Database"
GRANT = "postgresql:index/grant:Grant"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
DNS_RECORD_TYPES = ("cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/record:Record")
CADDY_ROUTE = "pulumi-python:dynamic/caddy:CaddyRoute"
ROLE_SETTINGS = "pulumi-python:dynamic/role_settings:RoleSettings"
TENANT_TYPE = "tenant-fleet:index:Tenant"
# A tenant's child components are named "<tenant><suffix>" (fleet.model.derive.Names); their children inherit the tenant.
COMPONENT_SUFFIXES = {
    "tenant-fleet:index:TenantDatabase": "-database",
    "tenant-fleet:index:TenantApp": "-app",
    "tenant-fleet:index:TenantDns": "-dns",
    "tenant-fleet:index:TenantRoutes": "-proxy",
    "tenant-fleet:index:KubernetesApp": "-kubernetes",
}
# Kubernetes objects the rules look at (the official provider's tokens), and where each keeps its pod spec.
KUBE_NAMESPACE = "kubernetes:core/v1:Namespace"
KUBE_QUOTA = "kubernetes:core/v1:ResourceQuota"
KUBE_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
APP_ROLES = ("backend", "frontend")
SECRET_ENV_KEYS = ("DATABASE_URL", "JWT_SECRET", "JWT_REFRESH_SECRET")
JWT_ENV_KEYS = ("JWT_SECRET", "JWT_REFRESH_SECRET")

MIN_SECRET_LENGTH = 32
DEFAULT_NEAR_PERCENT = 80
DEFAULT_WARN_PERCENT = 80

# ---------------------------------------------------------------- policy names (the config file's keys)

CONTAINER_LIMITS_SET = "container-limits-set"
CONTAINER_LIMITS_MATCH_PLAN = "container-limits-match-plan"
IMAGES_PINNED = "images-pinned"
DATABASE_PROTECTED = "database-protected-from-deletion"
DATABASE_PUBLIC_REVOKED = "database-public-connect-revoked"
ROLE_CONNECTION_LIMIT = "role-connection-limit"
DATABASE_OWNER_NOLOGIN = "database-owned-by-nologin-role"
REDIS_MEMORY_CAPACITY = "redis-memory-capacity"
REDIS_USER = "pulumi-python:dynamic/redis:RedisAclUser"
GENERATED_SECRETS_STRONG = "generated-secrets-strong"
CREDENTIALS_FROM_GENERATED_SECRETS = "credentials-from-generated-secrets"
HOSTNAMES_ALLOWED = "hostnames-allowed"
HOSTNAMES_UNIQUE = "hostnames-unique"
DNS_RECORDS_PROXIED = "dns-records-proxied"
DOCKER_HOST_CAPACITY = "docker-host-capacity"
POSTGRES_CONNECTION_CAPACITY = "postgres-connection-capacity"
PLAN_OVERRIDES_NEAR_MAX = "plan-overrides-near-max"
ROLE_TIMEOUTS_BOUNDED = "role-timeouts-bounded"
POSTGRES_MEMORY_CAPACITY = "postgres-memory-capacity"
CAPACITY_UTILIZATION_HIGH = "capacity-utilization-high"
KUBERNETES_PODS_RESTRICTED = "kubernetes-pods-restricted"
KUBERNETES_QUOTA_CAPACITY = "kubernetes-quota-capacity"

REGENERATE_CONFIG = "regenerate it with `python -m fleet policy-config --stack <stack> --out <file>`"


# ---------------------------------------------------------------- reading props safely

class _Unknown:
    """A value the engine can't know yet (preview of a new resource)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()


def _get(props: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """props[key]; `default` when absent; UNKNOWN when the engine can't know it during a preview."""
    try:
        return props[key]
    except KeyError:
        return default
    except UnknownValueError:
        return UNKNOWN


def _keys(props: Mapping[str, Any]) -> set[str]:
    """The keys present, without reading (possibly unknown) values."""
    return set(iter(props))


def _number(value: Any) -> Optional[float]:
    """A number from a prop (docker's `cpus` is a string); None when missing, unknown or not a number."""
    if value is None or value is UNKNOWN or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value: Any) -> str:
    """Numbers as people write them: 768 not 768.0, 0.5 stays 0.5."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _labels(props: Mapping[str, Any]) -> dict[str, str]:
    """Docker labels (`[{label, value}]`) as a dict; empty when absent or unknown."""
    raw = _get(props, "labels")
    if raw is None or raw is UNKNOWN:
        return {}
    labels: dict[str, str] = {}
    try:
        for item in raw:
            labels[str(item["label"])] = str(item["value"])
    except (UnknownValueError, KeyError, TypeError):
        pass
    return labels


def _env(props: Mapping[str, Any]) -> Optional[dict[str, str]]:
    """A container's `envs` (["KEY=value"]) as a dict; None when unknown or absent."""
    raw = _get(props, "envs")
    if raw is None or raw is UNKNOWN:
        return None
    env: dict[str, str] = {}
    try:
        for item in raw:
            key, _, value = str(item).partition("=")
            env[key] = value
    except UnknownValueError:
        return None
    return env


def _string_list(value: Any) -> list[str]:
    if value is None or value is UNKNOWN:
        return []
    try:
        return [str(item) for item in value]
    except UnknownValueError:
        return []


# ---------------------------------------------------------------- whose resource is it

def urn_type_and_name(urn: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """The (last) type and the logical name in a URN `urn:pulumi:<stack>::<project>::<A$B$type>::<name>`."""
    if not urn:
        return None, None
    parts = urn.split("::", 3)
    if len(parts) < 4:
        return None, None
    return parts[2].split("$")[-1], parts[3]


def tenant_of_component(resource_type: Optional[str], name: Optional[str]) -> Optional[str]:
    """The tenant a Tenant component or one of its child components stands for."""
    if resource_type == TENANT_TYPE:
        return name
    suffix = COMPONENT_SUFFIXES.get(resource_type or "")
    if suffix and name and name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def tenant_of(resource: Any) -> Optional[str]:
    """The tenant owning a resource (ResourceValidationArgs or PolicyResource): its `tenant` label, else its parents."""
    labels = _labels(resource.props)
    if labels.get("tenant"):
        return labels["tenant"]
    own = tenant_of_component(resource.resource_type, resource.name)
    if own:
        return own
    parent = getattr(resource, "parent", None)  # PolicyResource: the parent object, walked up
    while parent is not None:
        tenant = tenant_of_component(parent.resource_type, parent.name)
        if tenant:
            return tenant
        parent = parent.parent
    return tenant_of_component(*urn_type_and_name(resource.opts.parent if resource.opts else None))


def _who(resource: Any) -> str:
    """`tenant <name>: ` for messages, or nothing for shared resources."""
    tenant = tenant_of(resource)
    return f"tenant {tenant}: " if tenant else ""


def _provider_name(resource: Any) -> str:
    """Logical name of a resource's provider (`docker-host`, `pg-shared-1`), `default` for a default provider."""
    provider = resource.provider
    if provider is None:
        return "default"
    return provider.name or urn_type_and_name(provider.urn)[1] or "default"


# ---------------------------------------------------------------- container limits

def container_limits_set(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Every container has a memory limit and a CPU limit (`memory` MB > 0, `cpus` > 0; a pod's containers `resources.limits`)."""
    if args.resource_type in POD_SPEC_PATHS:
        _pod_limits_set(args, report)
        return
    if args.resource_type != CONTAINER:
        return
    memory, cpus = _get(args.props, "memory"), _get(args.props, "cpus")
    problems = []
    if memory is not UNKNOWN and not (_number(memory) or 0) > 0:
        problems.append(f"no memory limit (memory={memory!r})")
    if cpus is not UNKNOWN and not (_number(cpus) or 0) > 0:
        problems.append(f"no CPU limit (cpus={cpus!r})")
    if problems:
        report(f"{_who(args)}container {args.name} has {' and '.join(problems)}; set `memory` (MB) and `cpus`.", None)


BACKUP_ROLE = "backup"
"""`component` label of the per-tenant scheduled backup container."""
REDIS_ROLE = "redis"
JOB_ROLE = "job"
"""`component` label of a plan's one-shot job containers."""
"""`component` label of a tenant's dedicated Redis container (its limit is the plan's redis_memory_mb)."""


def container_limits_match_plan(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """An app container's memory and CPU equal its tenant's plan size with the tenant's overrides, never above the plan's max
    (a Docker container, or the containers of a tenant's Deployment on a cluster)."""
    if args.resource_type == KUBE_DEPLOYMENT:
        _deployment_limits_match_plan(args, report)
        return
    if args.resource_type != CONTAINER:
        return
    config = args.get_config()
    tenant = tenant_of(args)
    labels = _labels(args.props)
    role = labels.get("component")
    if role in (BACKUP_ROLE, REDIS_ROLE, JOB_ROLE):
        return  # the backup job, a dedicated Redis and the plan's jobs are sized by their own settings, not the app's
    if tenant is not None and role == WORKER_ROLE:
        _worker_limits_match_plan(args, report, tenant, labels, config)
        return
    expected_tenant = (config.get("tenants") or {}).get(tenant) if tenant is not None else None
    if tenant is not None and expected_tenant is None and role in APP_ROLES:
        report(f"tenant {tenant}: container {args.name}: the tenant is not in this policy's config; {REGENERATE_CONFIG}.", None)
        return
    if tenant is None or expected_tenant is None or role not in plan_services(expected_tenant):
        report(f"container {args.name} belongs to no tenant app (labels tenant/component: {labels.get('tenant')!r}/{role!r}): its limits can't be checked against a plan.", None)
        return
    plan = expected_tenant.get("plan")
    if labels.get("plan") and labels["plan"] != plan:
        report(f"tenant {tenant}: container {args.name} is labelled plan {labels['plan']!r}, but the tenant is on plan {plan!r}.", None)
    expected = plan_services(expected_tenant)[role]
    bound = ((config.get("plans") or {}).get(plan) or {}).get("max", {}).get(role) or {}
    memory, cpus = _number(_get(args.props, "memory")), _number(_get(args.props, "cpus"))
    for label, declared, wanted, ceiling, unit in (
        ("memory", memory, _number(expected.get("memoryMb")), _number(bound.get("memoryMb")), " MB"),
        ("cpus", cpus, _number(expected.get("cpu")), _number(bound.get("cpu")), ""),
    ):
        if declared is None:
            continue  # missing limits are container-limits-set's finding; unknown ones can't be judged yet
        if wanted is not None and abs(declared - wanted) > 1e-9:
            report(
                f"tenant {tenant}: {role} container {args.name} has {label} {_fmt(declared)}{unit}, "
                f"but plan {plan} with the tenant's overrides gives {_fmt(wanted)}{unit}.",
                None,
            )
        if ceiling is not None and declared > ceiling + 1e-9:
            report(f"tenant {tenant}: {role} container {args.name} has {label} {_fmt(declared)}{unit}, above plan {plan}'s max {_fmt(ceiling)}{unit}.", None)


WORKER_ROLE = "worker"
"""`component` label of a plan's worker containers (their `worker` label names which)."""


def _deployment_limits_match_plan(args: ResourceValidationArgs, report: ReportViolation) -> None:
    labels = _path(args.props, ("metadata", "labels"))
    if labels is None or labels is UNKNOWN:
        return
    tenant, role = labels.get("tenant"), labels.get("component")
    config = args.get_config()
    expected_tenant = (config.get("tenants") or {}).get(tenant) if tenant else None
    if expected_tenant is None:
        return  # not a tenant's Deployment, or a tenant this config doesn't know (container-limits-match-plan names those for containers)
    if role == WORKER_ROLE:
        expected = (expected_tenant.get("workers") or {}).get(labels.get("worker"))
    else:
        expected = plan_services(expected_tenant).get(role)
    if expected is None:
        report(f"tenant {tenant}: Deployment {args.name} runs {role!r}, which plan {expected_tenant.get('plan')!r} doesn't declare.", None)
        return
    for container in pod_containers(pod_spec(args.resource_type, args.props)):
        limits = _path(container, ("resources", "limits"))
        if limits is None or limits is UNKNOWN:
            continue  # container-limits-set's finding
        for label, declared, wanted, unit in (
            ("memory", memory_mb(_path(limits, ("memory",))), _number(expected.get("memoryMb")), " MB"),
            ("cpu", cpu_cores(_path(limits, ("cpu",))), _number(expected.get("cpu")), ""),
        ):
            if declared is not None and wanted is not None and abs(declared - wanted) > 1e-9:
                report(
                    f"tenant {tenant}: {role} Deployment {args.name} has {label} {_fmt(declared)}{unit} per container, "
                    f"but plan {expected_tenant.get('plan')} with the tenant's overrides gives {_fmt(wanted)}{unit}.",
                    None,
                )


def _worker_limits_match_plan(args: ResourceValidationArgs, report: ReportViolation, tenant: str, labels: Mapping[str, str], config: Mapping[str, Any]) -> None:
    worker = labels.get("worker")
    expected_tenant = (config.get("tenants") or {}).get(tenant) or {}
    expected = (expected_tenant.get("workers") or {}).get(worker)
    if expected is None:
        report(f"tenant {tenant}: worker container {args.name} runs worker {worker!r}, which plan {expected_tenant.get('plan')!r} doesn't declare.", None)
        return
    for label, declared, wanted, unit in (
        ("memory", _number(_get(args.props, "memory")), _number(expected.get("memoryMb")), " MB"),
        ("cpus", _number(_get(args.props, "cpus")), _number(expected.get("cpu")), ""),
    ):
        if declared is not None and wanted is not None and abs(declared - wanted) > 1e-9:
            report(f"tenant {tenant}: worker container {args.name} has {label} {_fmt(declared)}{unit}, but its plan gives {_fmt(wanted)}{unit}.", None)


# ---------------------------------------------------------------- images

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_VERSION_TAG = re.compile(r"^v?\d+(\.\d+)*([-+_.][0-9A-Za-z][0-9A-Za-z.+_-]*)?$")
_COMMIT_TAG = re.compile(r"^(sha-)?[0-9a-f]{7,40}$")


def image_pin_problem(image: str) -> Optional[str]:
    """Why an image reference is not pinned to a version tag or a digest; None when it is."""
    if _DIGEST.search(image):
        return None
    if "@" in image:
        return "has a malformed digest (expected @sha256:<64 hex>)"
    last = image.rsplit("/", 1)[-1]  # a registry port (`host:5000/app`) is not a tag
    if ":" not in last:
        return "has no tag, which means `latest`"
    tag = last.split(":", 1)[1]
    if tag.lower() == "latest":
        return "uses the floating tag `latest`"
    if not (_VERSION_TAG.match(tag) or _COMMIT_TAG.match(tag)):
        return f"uses tag {tag!r}, which is not a version (e.g. 1.8.2) or a commit"
    return None


def images_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Container images are pinned: a version tag or a digest, never `latest` or untagged (Docker containers and pods' containers)."""
    if args.resource_type in POD_SPEC_PATHS:
        for container in pod_containers(pod_spec(args.resource_type, args.props)):
            image = _get(container, "image")
            if image is UNKNOWN:
                continue
            problem = image_pin_problem(str(image)) if image else "is missing"
            if problem:
                report(f"{_who(args)}{_kind(args.resource_type)} {args.name} container {_get(container, 'name')!r} image {image!r} {problem}; pin a version tag or a digest.", None)
        return
    if args.resource_type != CONTAINER:
        return
    image = _get(args.props, "image")
    if image is UNKNOWN:
        return
    if not image:
        report(f"{_who(args)}container {args.name} has no image.", None)
        return
    problem = image_pin_problem(str(image))
    if problem:
        report(f"{_who(args)}container {args.name} image {image!r} {problem}; pin a version tag or a digest.", None)


# ---------------------------------------------------------------- data safety

_retained_seen: list[tuple[Any, frozenset[str]]] = []


def _retained(attested: Any) -> frozenset[str]:
    """The `retainedOnDelete` list as a set, made once per config object (it lists every database and role, and
    this policy reads it for each one: built per call, 1,000 tenants cost a quadratic 0.2 s)."""
    if _retained_seen and _retained_seen[0][0] is attested:
        return _retained_seen[0][1]
    names = frozenset(_string_list(attested))
    _retained_seen[:] = [(attested, names)]  # holds the object, so an equal id can't be a new object
    return names


def database_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A tenant database (and its role) can't be dropped by a deploy: `protect`, or `retain_on_delete` as attested in config.

    CrossGuard can't see `retain_on_delete` (PolicyResourceOptions has no such field), so the config's
    `retainedOnDelete` lists the `<type>::<name>` of every resource the program declares with it; the
    offline plan records it and `fleet.offline.policies.policy_config` copies it there. A role also passes
    with `skipDropRole` and `skipReassignOwned` (its delete then drops nothing).
    """
    if args.resource_type not in (DATABASE, ROLE):
        return
    if args.opts is not None and args.opts.protect:
        return
    if f"{args.resource_type}::{args.name}" in _retained(args.get_config().get("retainedOnDelete")):
        return
    if args.resource_type == ROLE:
        if _get(args.props, "skipDropRole") is True and _get(args.props, "skipReassignOwned") is True:
            return
        report(
            f"{_who(args)}role {args.name} ({_get(args.props, 'name')!r}) would run DROP ROLE/REASSIGN OWNED when deleted: "
            "set retain_on_delete (attested in this policy's config) or skip_drop_role and skip_reassign_owned.",
            None,
        )
        return
    report(
        f"{_who(args)}database {args.name} ({_get(args.props, 'name')!r}) is neither protected nor retained on delete, "
        f"so a deploy could DROP it: set retain_on_delete=True (with the engine, the policy config attests it; {REGENERATE_CONFIG}) or protect=True.",
        None,
    )


def _revokes_public(grant: PolicyResource) -> Optional[bool]:
    """True for a grant to PUBLIC of no privileges on a database, False for one granting PUBLIC something, None otherwise."""
    props = grant.props
    if str(_get(grant.props, "role", "")).lower() != "public" or _get(props, "objectType") != "database":
        return None
    privileges = _get(props, "privileges")
    if privileges is UNKNOWN:
        return None
    return len(_string_list(privileges)) == 0


def _grants_by_database(resources: Iterable[PolicyResource]) -> dict[Any, list[PolicyResource]]:
    """Grants indexed by what they target: (provider URN, database name), and the database resource they are wired to."""
    index: dict[Any, list[PolicyResource]] = defaultdict(list)
    for grant in resources:
        if grant.resource_type != GRANT:
            continue
        target = _get(grant.props, "database")
        if target not in (None, UNKNOWN):
            index[(_provider_urn(grant), target)].append(grant)
        for database in grant.property_dependencies.get("database") or []:  # the engine's per-property wiring
            index[id(database)].append(grant)
    return index


def database_public_connect_revoked(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every tenant database has PUBLIC's CONNECT/TEMPORARY revoked (a Grant to `public` of no privileges), and none grants PUBLIC anything."""
    grants = _grants_by_database(args.resources)
    for database in (r for r in args.resources if r.resource_type == DATABASE):
        name = _get(database.props, "name")
        on_it = list({id(grant): grant for grant in [*grants.get(id(database), []), *grants.get((_provider_urn(database), name), [])]}.values())
        verdicts = [_revokes_public(grant) for grant in on_it]
        if any(verdict is False for verdict in verdicts):
            offenders = [grant.name for grant, verdict in zip(on_it, verdicts) if verdict is False]
            report(f"{_who(database)}database {database.name} ({name!r}) grants PUBLIC privileges through {', '.join(offenders)}; PUBLIC must get none.", database.urn)
        elif not any(verdict is True for verdict in verdicts):
            report(
                f"{_who(database)}database {database.name} ({name!r}) has no Grant revoking PUBLIC's CONNECT "
                "(postgresql.Grant(role='public', object_type='database', privileges=[])): any role on the server could connect.",
                database.urn,
            )


def database_owned_by_nologin_role(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every database is owned by a NOLOGIN role of the stack: a login role owning it could DROP it, lift its
    connection limit or grant it to a neighbour (the app's role gets its privileges by grants instead)."""
    roles = {(_provider_urn(r), _get(r.props, "name")): r for r in args.resources if r.resource_type == ROLE}
    for database in (r for r in args.resources if r.resource_type == DATABASE):
        owner_name = _get(database.props, "owner")
        if owner_name is UNKNOWN:  # a preview of a new role: the engine's wiring says which
            wired = [r for r in (database.property_dependencies.get("owner") or []) if r.resource_type == ROLE]
            owner = wired[0] if wired else None
            if owner is None:
                continue
        else:
            owner = roles.get((_provider_urn(database), owner_name))
        name = _get(database.props, "name")
        if owner is None:
            report(
                f"{_who(database)}database {database.name} ({name!r}) is owned by {_fmt(owner_name) if owner_name else 'the provider admin'}, "
                "not by a NOLOGIN owner role of this stack.",
                database.urn,
            )
        elif _get(owner.props, "login") is not False:
            report(
                f"{_who(database)}database {database.name} ({name!r}) is owned by login role {owner.name}: "
                "the app could DROP it or grant it to a neighbour; give it a NOLOGIN owner role and grant the app its privileges.",
                database.urn,
            )


def role_connection_limit(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Every role has a connection limit (`connectionLimit` >= 0; the default -1 means unlimited)."""
    if args.resource_type != ROLE:
        return
    limit = _get(args.props, "connectionLimit")
    if limit is UNKNOWN:
        return
    number = _number(limit)
    if number is None or number < 0:
        shown = "unset (unlimited)" if limit is None else _fmt(limit)
        report(f"{_who(args)}role {args.name} ({_get(args.props, 'name')!r}) has connection limit {shown}; set connection_limit from the plan's db_connections.", None)


# Upper bounds of a tenant login role's timeouts, in ms, unless the policy config says otherwise.
DEFAULT_TIMEOUT_BOUNDS_MS = {"statementTimeout": 3_600_000, "idleInTransactionSessionTimeout": 3_600_000, "jobsStatementTimeout": 86_400_000}
# Tenant login roles by name (fleet.model.derive): the app's and the container jobs'.
_APP_ROLE_NAME = re.compile(r"^tenant_[a-z0-9_]+_app$")
_JOBS_ROLE_NAME = re.compile(r"^tenant_[a-z0-9_]+_job$")


def role_timeouts_bounded(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A tenant's login role has a statement timeout and an idle-in-transaction timeout, each above 0 and within the bounds."""
    if args.resource_type != ROLE:
        return
    name = _get(args.props, "name")
    if name is UNKNOWN or not isinstance(name, str) or not (_APP_ROLE_NAME.match(name) or _JOBS_ROLE_NAME.match(name)):
        return
    bounds = {**DEFAULT_TIMEOUT_BOUNDS_MS, **(args.get_config() or {})}
    jobs = bool(_JOBS_ROLE_NAME.match(name))
    for prop, bound_key in (("statementTimeout", "jobsStatementTimeout" if jobs else "statementTimeout"), ("idleInTransactionSessionTimeout", "idleInTransactionSessionTimeout")):
        value = _get(args.props, prop)
        if value is UNKNOWN:
            continue
        number, bound = _number(value), _number(bounds.get(bound_key))
        if number is None or number <= 0:
            report(
                f"{_who(args)}role {args.name} ({name!r}) has no {prop}: one session could hold the shared server; "
                "set it from the plan's database_limits (fleet.model.db_limits).",
                None,
            )
        elif bound is not None and number > bound:
            report(f"{_who(args)}role {args.name} ({name!r}) has {prop} {int(number)} ms, above the bound {int(bound)} ms.", None)


def _kilobytes(value: Any) -> Optional[float]:
    """A memory setting as PostgreSQL takes it (`4096kB`, `4MB`, `1GB`, a bare number of kB) in kB."""
    if not isinstance(value, str):
        return _number(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(kB|MB|GB|TB)?\s*", value, flags=re.IGNORECASE)
    if not match:
        return None
    factor = {"kb": 1, "mb": 1024, "gb": 1024**2, "tb": 1024**3}[(match.group(2) or "kB").lower()]
    return float(match.group(1)) * factor


def postgres_memory_capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    """On each PostgreSQL server with a declared memory_mb, work_mem × connection limit summed over its tenants' login
    roles fits in the share of its memory given to queries (`workMemPercent`; the rest is shared_buffers and the OS)."""
    config = args.get_config()
    servers = config.get("servers") or {}
    share = _number(config.get("workMemPercent")) or 50.0
    limits: dict[tuple[str, str], float] = {}
    for role in args.resources:
        if role.resource_type == ROLE:
            name, limit = _get(role.props, "name"), _number(_get(role.props, "connectionLimit"))
            if isinstance(name, str) and limit is not None and limit > 0:
                server = (servers.get(_provider_name(role)) or {}).get("server")
                if server:
                    limits[(str(server), name)] = limit
    loads: dict[str, _Load] = defaultdict(_Load)
    for settings in args.resources:
        if settings.resource_type != ROLE_SETTINGS:
            continue
        server, role_name = _get(settings.props, "server"), _get(settings.props, "role")
        values = _get(settings.props, "settings")
        if not isinstance(server, str) or not isinstance(role_name, str) or not isinstance(values, Mapping):
            continue
        load = loads[server]
        load.urn = load.urn or settings.urn
        work_mem = _kilobytes(values.get("work_mem"))
        connections = limits.get((server, role_name))
        if work_mem is None or connections is None:
            load.unmeasured.append(settings.name)
            continue
        load.add(tenant_of(settings) or _get(settings.props, "tenant"), "work_mem", work_mem * connections / 1024.0)
    declared = {str(entry.get("server")): _number(entry.get("memoryMb")) for entry in servers.values()}
    for server, load in sorted(loads.items()):
        memory = declared.get(server)
        if memory is None:
            continue  # the server declares no memory_mb: nothing to check against
        usable = memory * share / 100.0
        used = load.totals["work_mem"]
        if used > usable + 1e-9:
            report(
                f"postgres server {server}: work_mem × connection limit of its tenants' roles adds up to {_fmt(round(used, 1))} MB, above "
                f"{_fmt(round(usable, 1))} MB ({_fmt(share)}% of its memory_mb {_fmt(memory)}){_unmeasured_note(load)}; largest tenants: "
                f"{load.largest('work_mem')}. Lower the plans' database_limits.work_mem_mb or db_connections, or place tenants on another server.",
                load.urn,
            )


# ---------------------------------------------------------------- secrets

def _secret_strength_problems(props: Mapping[str, Any], additional_secret_outputs: Iterable[str]) -> list[str]:
    problems = []
    length = _get(props, "length")
    if length is not UNKNOWN and (_number(length) or 0) < MIN_SECRET_LENGTH:
        problems.append(f"length {_fmt(length) if length is not None else 'unset'} is below {MIN_SECRET_LENGTH}")
    if "result" not in set(additional_secret_outputs or ()):
        problems.append("its `result` is not a secret output")
    return problems


def generated_secrets_strong(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Generated secrets (RandomPassword) are at least 32 characters and their `result` is a secret output."""
    if args.resource_type != RANDOM_PASSWORD:
        return
    problems = _secret_strength_problems(args.props, args.opts.additional_secret_outputs if args.opts else ())
    if problems:
        report(f"{_who(args)}generated secret {args.name}: {'; '.join(problems)}.", None)


def _generators(resource: PolicyResource, prop: str) -> list[PolicyResource]:
    """RandomPasswords a property comes from (the engine gives per-property dependencies; offline, all dependencies)."""
    sources = resource.property_dependencies.get(prop) or resource.dependencies
    return [source for source in sources if source.resource_type == RANDOM_PASSWORD]


def credentials_from_generated_secrets(args: StackValidationArgs, report: ReportViolation) -> None:
    """Database passwords and the app's JWT secrets come from RandomPasswords (>= 32 chars, secret), and the role's password is a secret output."""
    for resource in args.resources:
        if resource.resource_type == ROLE and "password" in _keys(resource.props):
            who = _who(resource)
            generators = _generators(resource, "password")
            if not generators:
                report(
                    f"{who}role {resource.name}'s password is not generated (it depends on no RandomPassword): "
                    f"use random.RandomPassword(length>={MIN_SECRET_LENGTH}).",
                    resource.urn,
                )
            for generator in generators:
                for problem in _secret_strength_problems(generator.props, generator.opts.additional_secret_outputs):
                    report(f"{who}role {resource.name}'s password comes from {generator.name}, whose {problem}.", resource.urn)
            if "password" not in set(resource.opts.additional_secret_outputs or ()):
                report(f"{who}role {resource.name}'s password is not a secret output.", resource.urn)
        elif resource.resource_type == CONTAINER:
            env = _env(resource.props)
            if env is not None:
                carried = [key for key in SECRET_ENV_KEYS if key in env]
            elif _labels(resource.props).get("component") == "backend":
                carried = list(SECRET_ENV_KEYS)  # not known yet during a preview: a backend carries all three
            else:
                carried = []
            if not carried:
                continue
            who = _who(resource)
            generators = _generators(resource, "envs")
            if len(generators) < len(carried):
                report(
                    f"{who}container {resource.name} carries {', '.join(carried)} but depends on {len(generators)} generated secret(s): "
                    "each must come from its own RandomPassword, never a literal.",
                    resource.urn,
                )
            for generator in generators:
                for problem in _secret_strength_problems(generator.props, generator.opts.additional_secret_outputs):
                    report(f"{who}container {resource.name} uses {generator.name}, whose {problem}.", resource.urn)
            for key in JWT_ENV_KEYS:
                if env is not None and key in env and len(env[key]) < MIN_SECRET_LENGTH:
                    report(f"{who}container {resource.name}: {key} is {len(env[key])} characters, below {MIN_SECRET_LENGTH}.", resource.urn)


# ---------------------------------------------------------------- hostnames and DNS

def _hostnames(resource: Any) -> list[str]:
    """Hostnames a route serves or a DNS record publishes (lower-case)."""
    if resource.resource_type == CADDY_ROUTE:
        return [host.lower() for host in _string_list(_get(resource.props, "hosts"))]
    if resource.resource_type in DNS_RECORD_TYPES:
        name = _get(resource.props, "name")
        return [str(name).lower()] if name not in (None, UNKNOWN) else []
    return []


def hostnames_allowed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Routed and published hostnames are under the base domain or one of the tenant's declared domains."""
    if args.resource_type != CADDY_ROUTE and args.resource_type not in DNS_RECORD_TYPES:
        return
    config = args.get_config()
    base = str(config.get("baseDomain") or "").lower()
    tenant = tenant_of(args)
    declared = {domain.lower() for domain in _string_list((config.get("tenantDomains") or {}).get(tenant))} if tenant else set()
    own = {host.lower() for host in _string_list((config.get("tenantHostnames") or {}).get(tenant))} if tenant else set()
    for host in _hostnames(args):
        if base and (host == base or host.endswith("." + base)):
            # Names under the base domain belong to the platform: a tenant serves only its own api-/app- hostnames there.
            if tenant and "tenantHostnames" in config and host not in own:
                report(f"{_who(args)}{args.name} serves {host!r}, under the base domain {base!r}, which is not one of its own hostnames ({', '.join(sorted(own))}).", None)
            continue
        if host in declared:
            continue
        where = f"the domains of tenant {tenant} ({', '.join(sorted(declared)) or 'none'})" if tenant else "any tenant's domains"
        report(f"{_who(args)}{args.name} serves {host!r}, which is neither under the base domain {base!r} nor one of {where}.", None)


def hostnames_unique(args: StackValidationArgs, report: ReportViolation) -> None:
    """A hostname belongs to one tenant across the fleet: no two tenants' routes or records share one, no route serves one twice."""
    claimed = {host.lower(): owner for host, owner in ((args.get_config().get("claimedHostnames") or {}).items())}
    tenants_of_host: dict[str, dict[str, list[PolicyResource]]] = defaultdict(lambda: defaultdict(list))
    routes_of_host: dict[str, list[PolicyResource]] = defaultdict(list)
    for resource in args.resources:
        for host in _hostnames(resource):
            tenants_of_host[host][tenant_of(resource) or "<shared>"].append(resource)
            if resource.resource_type == CADDY_ROUTE:
                routes_of_host[host].append(resource)
    for host in sorted(tenants_of_host):
        by_tenant = tenants_of_host[host]
        if len(by_tenant) > 1:
            for tenant, resources in sorted(by_tenant.items()):
                others = ", ".join(sorted(t for t in by_tenant if t != tenant))
                for resource in resources:
                    report(f"tenant {tenant}: {resource.name} serves {host!r}, which tenant(s) {others} also serve.", resource.urn)
        routes = routes_of_host.get(host, [])
        if len(routes) > 1 and len(by_tenant) == 1:
            report(f"{_who(routes[0])}{host!r} is in {len(routes)} routes ({', '.join(r.name for r in routes)}): only the first would ever match.", routes[1].urn)
        owner = claimed.get(host)
        if owner is not None:
            for tenant, resources in sorted(by_tenant.items()):
                if tenant != owner:
                    for resource in resources:
                        report(f"tenant {tenant}: {resource.name} serves {host!r}, which belongs to tenant {owner}.", resource.urn)


def dns_records_proxied(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Tenant DNS records in Cloudflare (A, AAAA, CNAME) are proxied, so the origin's address stays hidden."""
    if args.resource_type not in DNS_RECORD_TYPES:
        return
    record_type = _get(args.props, "type")
    if record_type not in ("A", "AAAA", "CNAME") or tenant_of(args) is None:
        return
    proxied = _get(args.props, "proxied")
    if proxied is UNKNOWN or proxied is True:
        return
    report(f"{_who(args)}DNS record {args.name} ({_get(args.props, 'name')!r}, {record_type}) has proxied={proxied!r}; tenant records must be proxied.", None)


# ---------------------------------------------------------------- capacity

@dataclass
class _Load:
    """What one host or server carries."""

    urn: Optional[str] = None
    totals: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    by_tenant: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    unmeasured: list[str] = field(default_factory=list)

    def add(self, tenant: Optional[str], what: str, amount: float) -> None:
        self.totals[what] += amount
        self.by_tenant[tenant or "<shared>"][what] += amount

    def largest(self, what: str, count: int = 3) -> str:
        ranked = sorted(self.by_tenant.items(), key=lambda item: (-item[1][what], item[0]))[:count]
        return ", ".join(f"{tenant} {_fmt(float(amounts[what]))}" for tenant, amounts in ranked)


def _provider_urn(resource: PolicyResource) -> Optional[str]:
    return resource.provider.urn if resource.provider else None


def docker_loads(resources: Iterable[PolicyResource]) -> dict[str, _Load]:
    """Memory (MB) and CPUs of every container, summed per Docker host (its provider's logical name)."""
    return _memory_and_cpu_loads(resources, CONTAINER, lambda props: (_number(_get(props, "memory")), _number(_get(props, "cpus"))))


def _memory_and_cpu_loads(
    resources: Iterable[PolicyResource], resource_type: str, read: Callable[[Any], tuple[Optional[float], Optional[float]]]
) -> dict[str, _Load]:
    """`read(props)` -> (memory MB, CPUs) of each resource of `resource_type`, summed per provider (its logical
    name) and tenant; a resource without both is listed as unmeasured and counts as 0."""
    loads: dict[str, _Load] = defaultdict(_Load)
    for resource in resources:
        if resource.resource_type != resource_type:
            continue
        load = loads[_provider_name(resource)]
        load.urn = load.urn or _provider_urn(resource)
        memory, cpus = read(resource.props)
        if memory is None or cpus is None:
            load.unmeasured.append(resource.name)
        tenant = tenant_of(resource)
        load.add(tenant, "memory", memory or 0.0)
        load.add(tenant, "cpus", cpus or 0.0)
    return loads


def postgres_loads(resources: Iterable[PolicyResource]) -> dict[str, _Load]:
    """Role connection limits summed per PostgreSQL server (its provider's logical name)."""
    loads: dict[str, _Load] = defaultdict(_Load)
    for resource in resources:
        if resource.resource_type != ROLE:
            continue
        load = loads[_provider_name(resource)]
        load.urn = load.urn or _provider_urn(resource)
        limit = _number(_get(resource.props, "connectionLimit"))
        if limit is None or limit < 0:
            load.unmeasured.append(resource.name)
            continue
        load.add(tenant_of(resource), "connections", limit)
    return loads


def _unmeasured_note(load: _Load) -> str:
    return f" ({len(load.unmeasured)} not counted, without a known limit: {', '.join(load.unmeasured[:5])})" if load.unmeasured else ""


def docker_host_capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    """On each Docker host, the containers' memory and CPUs fit in the host's declared capacity minus its headroom."""
    hosts = args.get_config().get("hosts") or {}
    for host, load in sorted(docker_loads(args.resources).items()):
        capacity = hosts.get(host)
        if capacity is None:
            report(f"docker host {host}: runs containers but declares no capacity in this policy's config ({', '.join(sorted(hosts)) or 'none'}); {REGENERATE_CONFIG}.", load.urn)
            continue
        for what, used, usable, declared, headroom, unit in _over_capacity(capacity, load.totals):
            need = f"{_fmt(round(used, 3))} MB of memory" if what == "memory" else f"{_fmt(round(used, 3))} CPUs"
            report(
                f"docker host {host}: containers need {need}, above the {_fmt(round(usable, 3))}{unit} usable "
                f"({_fmt(declared)}{unit} declared minus {_fmt(headroom)}% headroom){_unmeasured_note(load)}; largest tenants: {load.largest(what)}. "
                "Add capacity (fleet:docker_host, fleet:docker_hosts) or move tenants to another host (app: {host: ...}).",
                load.urn,
            )


def _over_capacity(capacity: Mapping[str, Any], totals: Mapping[str, float]) -> list[tuple[str, float, float, float, float, str]]:
    """(what, used, usable, declared, headroom %, unit) for memory and CPUs where `totals` exceed a host's or cluster's
    declared capacity minus its headroom."""
    headroom = _number(capacity.get("headroomPercent")) or 0.0
    over = []
    for what, declared, unit in (("memory", _number(capacity.get("memoryMb")), " MB"), ("cpus", _number(capacity.get("cpus")), " CPUs")):
        if declared is None:
            continue
        usable = declared * (100.0 - headroom) / 100.0
        if totals[what] > usable + 1e-9:
            over.append((what, totals[what], usable, declared, headroom, unit))
    return over


def redis_memory_capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    """The shared Redis's memory covers the `redis_memory_mb` of every tenant with a user on it, minus its headroom."""
    config = args.get_config()
    declared = _number(config.get("memoryMb"))
    if declared is None:
        return  # fleet:redis.memory_mb not set: nothing to check against
    budgets = config.get("tenants") or {}
    users = [r for r in args.resources if r.resource_type == REDIS_USER]
    tenants = sorted({str(_get(user.props, "tenant")) for user in users})
    used = sum(_number(budgets.get(tenant)) or 0.0 for tenant in tenants)
    headroom = _number(config.get("headroomPercent")) or 0.0
    usable = declared * (100.0 - headroom) / 100.0
    if used > usable + 1e-9:
        largest = ", ".join(f"{tenant} {_fmt(_number(budgets.get(tenant)) or 0)}" for tenant in sorted(tenants, key=lambda t: -(_number(budgets.get(t)) or 0))[:3])
        report(
            f"shared redis: {len(tenants)} tenants' redis_memory_mb add up to {_fmt(used)} MB, above the {_fmt(round(usable, 3))} MB usable "
            f"({_fmt(declared)} MB declared minus {_fmt(headroom)}% headroom); largest: {largest}. Raise fleet:redis.memory_mb or give a plan redis: dedicated.",
            users[0].urn if users else None,
        )


def postgres_connection_capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    """On each PostgreSQL server, the roles' connection limits add up to at most max_connections minus the reserved connections."""
    servers = args.get_config().get("servers") or {}
    for provider, load in sorted(postgres_loads(args.resources).items()):
        server = servers.get(provider)
        if server is None:
            report(f"postgresql provider {provider}: holds roles but its server declares no max_connections in this policy's config; {REGENERATE_CONFIG}.", load.urn)
            continue
        name = server.get("server") or provider
        max_connections = _number(server.get("maxConnections")) or 0.0
        reserved = _number(server.get("reservedConnections")) or 0.0
        budget = max_connections - reserved
        used = load.totals["connections"]
        if used > budget:
            report(
                f"postgres server {name}: role connection limits add up to {_fmt(used)}, above {_fmt(budget)} "
                f"(max_connections {_fmt(max_connections)} minus {_fmt(reserved)} reserved){_unmeasured_note(load)}; largest tenants: {load.largest('connections')}. "
                "Raise max_connections or place tenants on another server.",
                load.urn,
            )


def capacity_utilization_high(args: StackValidationArgs, report: ReportViolation) -> None:
    """Advisory: a Docker host or PostgreSQL server above 80 % (`warnPercent`) of its declared capacity."""
    config = args.get_config()
    warn = _number(config.get("warnPercent")) or DEFAULT_WARN_PERCENT
    hosts, servers = config.get("hosts") or {}, config.get("servers") or {}
    for host, load in sorted(docker_loads(args.resources).items()):
        capacity = hosts.get(host) or {}
        for what, declared, unit in (("memory", _number(capacity.get("memoryMb")), " MB"), ("cpus", _number(capacity.get("cpus")), " CPUs")):
            if declared and load.totals[what] > declared * warn / 100.0:
                share = 100.0 * load.totals[what] / declared
                report(
                    f"docker host {host}: {'memory' if what == 'memory' else 'CPUs'} at {share:.0f}% of its capacity "
                    f"({_fmt(round(load.totals[what], 3))} of {_fmt(declared)}{unit}); plan more capacity.",
                    load.urn,
                )
    for provider, load in sorted(postgres_loads(args.resources).items()):
        server = servers.get(provider) or {}
        declared = _number(server.get("maxConnections"))
        if declared and load.totals["connections"] > declared * warn / 100.0:
            share = 100.0 * load.totals["connections"] / declared
            report(
                f"postgres server {server.get('server') or provider}: role connection limits at {share:.0f}% of max_connections "
                f"({_fmt(load.totals['connections'])} of {_fmt(declared)}); plan another server.",
                load.urn,
            )


# ---------------------------------------------------------------- plans

def _replicas(size: Mapping[str, Any]) -> float:
    """A size's replica count; 1 when not given, 0 when it says 0 (a full-stack app's frontend)."""
    replicas = _number(size.get("replicas"))
    return 1.0 if replicas is None else replicas


def plan_services(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The sizes by service of a plan or tenant entry of the config: its `services`, else its `backend` and `frontend`."""
    if entry.get("services"):
        return dict(entry["services"])
    return {role: entry[role] for role in APP_ROLES if isinstance(entry.get(role), Mapping)}


def _plan_footprint(plan: Mapping[str, Any]) -> tuple[float, float]:
    sizes = plan_services(plan).values()
    memory = sum((_number(size.get("memoryMb")) or 0) * _replicas(size) for size in sizes)
    cpus = sum((_number(size.get("cpu")) or 0) * _replicas(size) for size in sizes)
    return memory, cpus


def _covers(size: Mapping[str, Any], effective: Mapping[str, float]) -> bool:
    return all((_number(size.get(key)) or 0) + 1e-9 >= value for key, value in effective.items())


def suggest_plan(plans: list[Mapping[str, Any]], current: str, effective: Mapping[str, Mapping[str, float]]) -> Optional[str]:
    """The smallest other plan whose base sizes cover what the tenant runs; else the next larger plan; None if there is none."""
    ordered = sorted(plans, key=_plan_footprint)
    covering = [
        plan
        for plan in ordered
        if plan["name"] != current and all(role in plan_services(plan) and _covers(plan_services(plan)[role], sizes) for role, sizes in effective.items())
    ]
    if covering:
        return covering[0]["name"]
    mine = next((plan for plan in ordered if plan["name"] == current), None)
    larger = [plan for plan in ordered if mine is not None and _plan_footprint(plan) > _plan_footprint(mine)]
    return larger[0]["name"] if larger else None


_SIZE_WORDS = {"memoryMb": ("memory", " MB"), "cpu": ("CPU", ""), "replicas": ("replicas", "")}


def plan_overrides_near_max(args: StackValidationArgs, report: ReportViolation) -> None:
    """Advisory: a tenant whose overrides reach 80 % (`nearPercent`) of its plan's max: suggest the next plan."""
    config = args.get_config()
    near = _number(config.get("nearPercent")) or DEFAULT_NEAR_PERCENT
    plans = list(config.get("plans") or [])
    by_name = {plan["name"]: plan for plan in plans}
    containers: dict[str, dict[str, list[PolicyResource]]] = defaultdict(lambda: defaultdict(list))
    tenant_urns: dict[str, str] = {}
    plan_of: dict[str, str] = {}
    for resource in args.resources:
        if resource.resource_type == TENANT_TYPE:
            tenant_urns[resource.name] = resource.urn
        if resource.resource_type != CONTAINER:
            continue
        tenant, labels = tenant_of(resource), _labels(resource.props)
        if tenant and labels.get("component") not in (None, BACKUP_ROLE, REDIS_ROLE, JOB_ROLE, WORKER_ROLE):
            containers[tenant][labels["component"]].append(resource)
            plan_of.setdefault(tenant, labels.get("plan", ""))
    for tenant in sorted(containers):
        plan = by_name.get(plan_of[tenant])
        if plan is None:
            continue
        effective: dict[str, dict[str, float]] = {}
        findings = []
        services, bounds = plan_services(plan), plan.get("max") or {}
        for role, group in containers[tenant].items():
            if role not in services or role not in bounds:
                continue
            sizes = {
                "memoryMb": max(_number(_get(c.props, "memory")) or 0 for c in group),
                "cpu": max(_number(_get(c.props, "cpus")) or 0 for c in group),
                "replicas": float(len(group)),
            }
            effective[role] = sizes
            for key, value in sizes.items():
                base, ceiling = _number(services[role].get(key)) or 0, _number(bounds[role].get(key)) or 0
                if value > base + 1e-9 and ceiling and value >= ceiling * near / 100.0:
                    label, unit = _SIZE_WORDS[key]
                    findings.append(f"{role} {label} {_fmt(value)}{unit} is {100.0 * value / ceiling:.0f}% of the max {_fmt(ceiling)}{unit}")
        if findings:
            suggestion = suggest_plan(plans, plan["name"], effective)
            advice = f"consider plan {suggestion}" if suggestion else "no larger plan exists: consider a new one"
            urn = tenant_urns.get(tenant) or next(iter(containers[tenant].values()))[0].urn
            report(f"tenant {tenant}: overrides nearly reach plan {plan['name']}'s limits ({'; '.join(findings)}); {advice}.", urn)


# ---------------------------------------------------------------- Kubernetes: pods and quotas


def _kind(resource_type: str) -> str:
    """`Deployment` from `kubernetes:apps/v1:Deployment`."""
    return resource_type.rsplit(":", 1)[-1]


def _path(props: Any, path: Iterable[str]) -> Any:
    """A nested prop (None when absent, UNKNOWN when not known yet)."""
    value = props
    for key in path:
        if value is None or value is UNKNOWN:
            return value
        try:
            value = value.get(key) if hasattr(value, "get") else None
        except UnknownValueError:
            return UNKNOWN
    return value


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Any:
    """The pod spec of a workload (a Pod's spec, a Deployment's or Job's template spec...), None for other types."""
    path = POD_SPEC_PATHS.get(resource_type)
    return _path(props, path) if path else None


def pod_containers(spec: Any) -> list[Any]:
    """A pod spec's containers and init containers (known ones)."""
    containers: list[Any] = []
    for key in ("initContainers", "containers"):
        listed = _path(spec, (key,))
        if listed is None or listed is UNKNOWN:
            continue
        try:
            containers.extend(item for item in listed if item is not None)
        except UnknownValueError:
            continue
    return containers


def _pod_limits_set(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for container in pod_containers(pod_spec(args.resource_type, args.props)):
        limits = _path(container, ("resources", "limits"))
        if limits is UNKNOWN:
            continue
        missing = [what for what in ("memory", "cpu") if limits is None or _path(limits, (what,)) in (None, "", "0")]
        if missing:
            report(
                f"{_who(args)}{_kind(args.resource_type)} {args.name} container {_get(container, 'name')!r} has no {' and no '.join(missing)} limit; "
                "set resources.limits.cpu and resources.limits.memory.",
                None,
            )


def kubernetes_pods_restricted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Tenant pods are not privileged: no host network, PID or IPC namespace, no hostPath volume, no privileged container,
    and every container sets `allowPrivilegeEscalation: false`."""
    spec = pod_spec(args.resource_type, args.props)
    if spec is None or spec is UNKNOWN:
        return
    where = f"{_who(args)}{_kind(args.resource_type)} {args.name}"
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if _path(spec, (flag,)) is True:
            report(f"{where} sets {flag}: true; tenant pods stay in their own network, PID and IPC namespaces.", None)
    volumes = _path(spec, ("volumes",))
    if volumes is not None and volumes is not UNKNOWN:
        for volume in volumes:
            if _path(volume, ("hostPath",)) not in (None, UNKNOWN):
                report(f"{where} mounts the node's {_path(volume, ('hostPath', 'path'))!r} (hostPath volume {_path(volume, ('name',))!r}); tenant pods get no host paths.", None)
    for container in pod_containers(spec):
        name = _get(container, "name")
        context = _path(container, ("securityContext",))
        if context is UNKNOWN:
            continue
        if _path(context, ("privileged",)) is True:
            report(f"{where} container {name!r} is privileged; tenant containers never are.", None)
        escalation = _path(context, ("allowPrivilegeEscalation",))
        if escalation is not UNKNOWN and escalation is not False:
            report(f"{where} container {name!r} doesn't set allowPrivilegeEscalation: false.", None)


_CPU_QUANTITY = re.compile(r"^([0-9.]+)(m?)$")
_MEMORY_UNITS = {"": 1 / 2**20, "Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0, "Ti": 1024.0**2, "k": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "T": 1e12 / 2**20}
_MEMORY_QUANTITY = re.compile(r"^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def cpu_cores(quantity: Any) -> Optional[float]:
    """A Kubernetes CPU quantity in cores (`250m` -> 0.25, `2` -> 2.0); None when not one."""
    match = _CPU_QUANTITY.match(str(quantity)) if quantity not in (None, UNKNOWN) else None
    if not match:
        return None
    return float(match.group(1)) / (1000.0 if match.group(2) else 1.0)


def memory_mb(quantity: Any) -> Optional[float]:
    """A Kubernetes memory quantity in MB (MiB: `512Mi` -> 512, `1Gi` -> 1024); None when not one."""
    match = _MEMORY_QUANTITY.match(str(quantity)) if quantity not in (None, UNKNOWN) else None
    if not match:
        return None
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2) or ""]


def cluster_loads(resources: Iterable[PolicyResource]) -> dict[str, _Load]:
    """The tenant namespaces' ResourceQuota limits (CPU cores, memory MB), summed per cluster (its provider's logical name)."""
    return _memory_and_cpu_loads(resources, KUBE_QUOTA, _quota_memory_and_cpus)


def _quota_memory_and_cpus(props: Any) -> tuple[Optional[float], Optional[float]]:
    hard = _path(props, ("spec", "hard"))
    memory = memory_mb(_path(hard, ("limits.memory",)) or _path(hard, ("requests.memory",)))
    return memory, cpu_cores(_path(hard, ("limits.cpu",)) or _path(hard, ("requests.cpu",)))


def kubernetes_quota_capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every tenant namespace has a ResourceQuota, and on each cluster the quotas fit its declared capacity minus headroom."""
    quotas = defaultdict(set)
    for resource in args.resources:
        if resource.resource_type == KUBE_QUOTA:
            quotas[_provider_name(resource)].add(_path(resource.props, ("metadata", "namespace")))
    for resource in args.resources:
        if resource.resource_type == KUBE_NAMESPACE and tenant_of(resource):
            name = _path(resource.props, ("metadata", "name"))
            if name is not UNKNOWN and name not in quotas[_provider_name(resource)]:
                report(f"tenant {tenant_of(resource)}: namespace {name!r} has no ResourceQuota: nothing bounds what its pods take from the cluster.", resource.urn)
    clusters = args.get_config().get("clusters") or {}
    for cluster, load in sorted(cluster_loads(args.resources).items()):
        capacity = clusters.get(cluster)
        if capacity is None:
            known = ", ".join(sorted(clusters)) or "none"
            report(f"cluster {cluster}: holds tenant quotas but declares no capacity in this policy's config ({known}); {REGENERATE_CONFIG}.", load.urn)
            continue
        for what, used, usable, declared, headroom, unit in _over_capacity(capacity, load.totals):
            report(
                f"cluster {cluster}: tenant quotas add up to {_fmt(round(used, 3))}{unit}, above the {_fmt(round(usable, 3))}{unit} usable "
                f"({_fmt(declared)}{unit} declared minus {_fmt(headroom)}% headroom){_unmeasured_note(load)}; largest tenants: {load.largest(what)}. "
                "Add capacity (fleet:kubernetes_hosts) or move tenants to another host (app: {host: ...}).",
                load.urn,
            )


# ---------------------------------------------------------------- config schemas and the pack's policies

_NUMBER = {"type": "number"}
_SIZE = {"type": "object", "properties": {"cpu": _NUMBER, "memoryMb": _NUMBER, "replicas": _NUMBER}}
_HOSTS = {
    "type": "object",
    "description": "Docker hosts by provider logical name: declared memory (MB), CPUs and headroom (%).",
    "additionalProperties": {"type": "object", "properties": {"memoryMb": _NUMBER, "cpus": _NUMBER, "headroomPercent": _NUMBER}, "required": ["memoryMb", "cpus"]},
}
_SERVERS = {
    "type": "object",
    "description": "PostgreSQL servers by provider logical name: server key, max_connections, reserved connections.",
    "additionalProperties": {
        "type": "object",
        "properties": {"server": {"type": "string"}, "maxConnections": _NUMBER, "reservedConnections": _NUMBER, "memoryMb": {"type": ["number", "null"]}},
        "required": ["maxConnections"],
    },
}
_PLANS_LIST = {
    "type": "array",
    "description": "The plan catalog: name, base sizes and max per role.",
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "backend": _SIZE,
            "frontend": _SIZE,
            "services": {"type": "object", "additionalProperties": _SIZE},
            "max": {"type": "object"},
        },
        "required": ["name", "max"],
    },
}

MANDATORY, ADVISORY = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY

ALL_POLICIES = [
    ResourceValidationPolicy(
        name=CONTAINER_LIMITS_SET,
        description="Every container has a memory limit and a CPU limit.",
        validate=container_limits_set,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name=CONTAINER_LIMITS_MATCH_PLAN,
        description="App container memory and CPU equal the tenant's plan with its overrides, never above the plan's max.",
        validate=container_limits_match_plan,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "tenants": {"type": "object", "description": "Per tenant: plan and expected size per role ({cpu, memoryMb})."},
                "plans": {"type": "object", "description": "Per plan: its max per role."},
            },
            required=["tenants", "plans"],
        ),
    ),
    ResourceValidationPolicy(
        name=IMAGES_PINNED,
        description="Container images are pinned to a version tag or a digest, never `latest` or untagged.",
        validate=images_pinned,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name=DATABASE_PROTECTED,
        description="Tenant databases and roles can't be dropped by a deploy (retain_on_delete or protect).",
        validate=database_protected,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "retainedOnDelete": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "`<type>::<name>` of resources declared with retain_on_delete (invisible to CrossGuard).",
                },
            },
        ),
    ),
    StackValidationPolicy(
        name=DATABASE_PUBLIC_REVOKED,
        description="Every tenant database has PUBLIC's CONNECT revoked.",
        validate=database_public_connect_revoked,
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name=REDIS_MEMORY_CAPACITY,
        description="The shared Redis's memory covers its tenants' redis_memory_mb, minus headroom.",
        validate=redis_memory_capacity,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "memoryMb": {"type": ["number", "null"]},
                "headroomPercent": {"type": "number"},
                "tenants": {"type": "object", "description": "redis_memory_mb per tenant."},
            },
        ),
    ),
    StackValidationPolicy(
        name=DATABASE_OWNER_NOLOGIN,
        description="Every tenant database is owned by a NOLOGIN role, never by the app's login role.",
        validate=database_owned_by_nologin_role,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name=ROLE_CONNECTION_LIMIT,
        description="Every PostgreSQL role has a connection limit.",
        validate=role_connection_limit,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name=ROLE_TIMEOUTS_BOUNDED,
        description="A tenant's login roles have a statement timeout and an idle-in-transaction timeout, within bounds.",
        validate=role_timeouts_bounded,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "statementTimeout": {"type": "number", "default": DEFAULT_TIMEOUT_BOUNDS_MS["statementTimeout"]},
                "idleInTransactionSessionTimeout": {"type": "number", "default": DEFAULT_TIMEOUT_BOUNDS_MS["idleInTransactionSessionTimeout"]},
                "jobsStatementTimeout": {"type": "number", "default": DEFAULT_TIMEOUT_BOUNDS_MS["jobsStatementTimeout"]},
            },
        ),
    ),
    StackValidationPolicy(
        name=POSTGRES_MEMORY_CAPACITY,
        description="work_mem × connection limit of the tenants on each PostgreSQL server fits its declared memory.",
        validate=postgres_memory_capacity,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(properties={"servers": _SERVERS, "workMemPercent": {"type": "number", "default": 50}}, required=["servers"]),
    ),
    ResourceValidationPolicy(
        name=GENERATED_SECRETS_STRONG,
        description=f"Generated secrets are at least {MIN_SECRET_LENGTH} characters and secret.",
        validate=generated_secrets_strong,
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name=CREDENTIALS_FROM_GENERATED_SECRETS,
        description="Database passwords and JWT secrets come from generated, secret randomness.",
        validate=credentials_from_generated_secrets,
        enforcement_level=MANDATORY,
    ),
    ResourceValidationPolicy(
        name=HOSTNAMES_ALLOWED,
        description="Hostnames are under the base domain or one of the tenant's declared domains.",
        validate=hostnames_allowed,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "baseDomain": {"type": "string"},
                "tenantDomains": {"type": "object", "description": "Custom domains declared per tenant."},
                "tenantHostnames": {"type": "object", "description": "The hostnames under the base domain that each tenant owns (api-, app-)."},
            },
            required=["baseDomain", "tenantDomains"],
        ),
    ),
    StackValidationPolicy(
        name=HOSTNAMES_UNIQUE,
        description="Hostnames and custom domains are unique across the fleet.",
        validate=hostnames_unique,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={"claimedHostnames": {"type": "object", "description": "hostname -> tenant for the whole fleet (other shards included)."}},
        ),
    ),
    ResourceValidationPolicy(
        name=DNS_RECORDS_PROXIED,
        description="Tenant DNS records in Cloudflare are proxied.",
        validate=dns_records_proxied,
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name=DOCKER_HOST_CAPACITY,
        description="Container memory and CPU on each Docker host fit its declared capacity minus headroom.",
        validate=docker_host_capacity,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(properties={"hosts": _HOSTS}, required=["hosts"]),
    ),
    StackValidationPolicy(
        name=POSTGRES_CONNECTION_CAPACITY,
        description="Role connection limits on each PostgreSQL server fit max_connections minus reserved connections.",
        validate=postgres_connection_capacity,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(properties={"servers": _SERVERS}, required=["servers"]),
    ),
    StackValidationPolicy(
        name=PLAN_OVERRIDES_NEAR_MAX,
        description="A tenant whose overrides nearly reach its plan's max should move to the next plan.",
        validate=plan_overrides_near_max,
        enforcement_level=ADVISORY,
        config_schema=PolicyConfigSchema(
            properties={"plans": _PLANS_LIST, "nearPercent": {"type": "number", "default": DEFAULT_NEAR_PERCENT}},
            required=["plans"],
        ),
    ),
    ResourceValidationPolicy(
        name=KUBERNETES_PODS_RESTRICTED,
        description="Tenant pods: no host network, PID or IPC, no hostPath volumes, no privileged containers, no privilege escalation.",
        validate=kubernetes_pods_restricted,
        enforcement_level=MANDATORY,
    ),
    StackValidationPolicy(
        name=KUBERNETES_QUOTA_CAPACITY,
        description="Every tenant namespace has a ResourceQuota, and each cluster's quotas fit its declared capacity minus headroom.",
        validate=kubernetes_quota_capacity,
        enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "clusters": {
                    "type": "object",
                    "description": "Kubernetes clusters by provider logical name: declared memory (MB), CPUs and headroom (%).",
                    "additionalProperties": {"type": "object", "properties": {"memoryMb": _NUMBER, "cpus": _NUMBER, "headroomPercent": _NUMBER}},
                }
            },
        ),
    ),
    StackValidationPolicy(
        name=CAPACITY_UTILIZATION_HIGH,
        description="A Docker host or PostgreSQL server is above 80 % of its capacity.",
        validate=capacity_utilization_high,
        enforcement_level=ADVISORY,
        config_schema=PolicyConfigSchema(
            properties={"hosts": _HOSTS, "servers": _SERVERS, "warnPercent": {"type": "number", "default": DEFAULT_WARN_PERCENT}},
            required=["hosts", "servers"],
        ),
    ),
]
"""Every policy of the pack, in the order they run and are reported."""

POLICIES_BY_NAME = {policy.name: policy for policy in ALL_POLICIES}
