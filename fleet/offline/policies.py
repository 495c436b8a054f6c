"""Run the CrossGuard pack in `policies/` against an offline plan, with the config the engine would pass.

The same validate functions and the same config as `pulumi preview --policy-pack policies`, so the
offline verdicts and the engine's agree (tests/e2e/test_policy_engine.py).
"""


from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from inspect import isawaitable
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from fleet.model import derive
from fleet.model.load import load_fleet
from fleet.model.spec import Fleet, Plan, Size
from fleet.offline.mocks import Declared, Evaluation
from fleet.offline.plan import plan_stack, stack_config
from fleet.sdk_internals import gc_paused
from policies import fleet_policies as pack

SHARED = "(fleet-wide)"
"""Group of violations that belong to no tenant (a host, a server)."""


@dataclass(frozen=True)
class Violation:
    """One policy violation: which policy, how bad, whose, on which resource (logical name), and what is wrong."""

    policy: str
    enforcement: str
    """`mandatory` (blocks the deploy, `fleet plan` exits 1) or `advisory`."""
    tenant: Optional[str]
    resource: Optional[str]
    message: str

    @property
    def mandatory(self) -> bool:
        return self.enforcement == EnforcementLevel.MANDATORY.value


# ---------------------------------------------------------------- config: the facts resources don't carry


def _size(size: Size) -> dict[str, Any]:
    return {"cpu": size.cpu, "memoryMb": size.memory_mb, "replicas": size.replicas}


def policy_config(fleet: Fleet, evaluation: Optional[Evaluation] = None) -> dict[str, dict[str, Any]]:
    """The policy pack's config (policy name -> properties) from the validated fleet; the engine gets it as a JSON file.

    Pass the whole fleet (every tenant file), not a shard: hostnames are claimed fleet-wide. Pass the
    offline `evaluation` of the same stack to attest which resources are `retain_on_delete`, which
    CrossGuard can't see; without it, unprotected databases fail `database-protected-from-deletion`.
    """
    environment = fleet.environment
    expected: dict[str, dict[str, Any]] = {}
    for tenant in fleet.tenants:
        plan = fleet.plan_of(tenant)
        sizes = {service.name: _size(service.size) for service in derive.services(plan, tenant, environment)}
        expected[tenant.name] = {"plan": tenant.plan, **({"services": sizes} if plan.services else sizes)}
        if plan.workers:
            expected[tenant.name]["workers"] = {name: {"cpu": w.cpu, "memoryMb": w.memory_mb, "replicas": w.replicas} for name, w in plan.workers.items()}
    plan_catalog = [
        _plan_entry(name, plan) for name, plan in fleet.plans.items()
    ]
    hosts = {
        derive.docker_provider_name(key): {"memoryMb": host.memory_mb, "cpus": host.cpus, "headroomPercent": host.headroom_percent}
        for key, host in sorted(environment.app_hosts().items())
    }
    servers = {
        derive.postgres_provider_name(key): {
            "server": key, "maxConnections": server.max_connections, "reservedConnections": server.reserved_connections,
            **({"memoryMb": server.memory_mb} if server.memory_mb is not None else {}),
        }
        for key, server in sorted(environment.servers.items())
    }
    config: dict[str, dict[str, Any]] = {
        pack.CONTAINER_LIMITS_MATCH_PLAN: {"tenants": expected, "plans": {plan["name"]: {"max": plan["max"]} for plan in plan_catalog}},
        pack.HOSTNAMES_ALLOWED: {
            "baseDomain": environment.base_domain,
            "tenantDomains": {tenant.name: list(tenant.custom_domains) for tenant in fleet.tenants},
            "tenantHostnames": {tenant.name: [derive.api_hostname(tenant, environment), derive.app_hostname(tenant, environment)] for tenant in fleet.tenants},
        },
        pack.HOSTNAMES_UNIQUE: {"claimedHostnames": {host: tenant.name for tenant in fleet.tenants for host in derive.hostnames(tenant, environment)}},
        pack.DOCKER_HOST_CAPACITY: {"hosts": hosts},
        pack.POSTGRES_CONNECTION_CAPACITY: {"servers": servers},
        pack.POSTGRES_MEMORY_CAPACITY: {"servers": servers},
        pack.PLAN_OVERRIDES_NEAR_MAX: {"plans": plan_catalog},
        pack.CAPACITY_UTILIZATION_HIGH: {"hosts": hosts, "servers": servers},
        pack.REDIS_MEMORY_CAPACITY: {
            "memoryMb": environment.redis.memory_mb if environment.redis is not None else None,
            "headroomPercent": environment.redis.headroom_percent if environment.redis is not None else 0,
            "tenants": {tenant.name: fleet.plan_of(tenant).redis_memory_mb for tenant in fleet.tenants if fleet.plan_of(tenant).redis == "shared"},
        },
    }
    if evaluation is not None:
        retained = sorted(f"{r.type}::{r.name}" for r in evaluation.resources if r.options.get("retainOnDelete"))
        config[pack.DATABASE_PROTECTED] = {"retainedOnDelete": retained}
    return config


def _as_engine_sends(value: dict[str, Any]) -> dict[str, Any]:
    """A mapping as the engine hands it to the pack: what a protobuf Struct round trip gives (every number a float).

    Done in plain Python: the Struct round trip itself cost a second per 1,000 tenants
    (tests/unit/test_policies.py checks that both agree).
    """
    return _struct_value(value)


def _struct_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("Struct keys must be strings")
        return {key: _struct_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_struct_value(item) for item in value]
    raise TypeError(f"a Struct can't hold {type(value).__name__}")


def _through_struct(value: dict[str, Any]) -> dict[str, Any]:
    """The real protobuf round trip (the reference `_as_engine_sends` must match)."""
    struct = struct_pb2.Struct()
    struct.update(value)
    return json_format.MessageToDict(struct)


# ---------------------------------------------------------------- declared resources as the analyzer sees them


@dataclass
class _Analyzed:
    """One declared resource with what the pack receives for it."""

    declared: Declared
    urn: str
    props: Any
    opts: PolicyResourceOptions
    provider: Optional[PolicyProviderResource]
    parent_urn: Optional[str]


def _props(declared: Declared) -> Any:
    try:
        plain = _as_engine_sends(declared.raw_inputs)
    except (TypeError, ValueError):  # a value a Struct can't hold: keep it as declared
        plain = dict(declared.raw_inputs)
    return unknown_checking_proxy(plain)


def _analyzed(evaluation: Evaluation) -> list[_Analyzed]:
    by_urn = {resource.urn: resource for resource in evaluation.resources}
    engine_urn = evaluation.engine_urns()
    props = {resource.urn: _props(resource) for resource in evaluation.resources}
    result = []
    for resource in evaluation.resources:
        provider = None
        if resource.provider:
            provider_urn = resource.provider.rsplit("::", 1)[0]  # a provider reference is "<urn>::<id>"
            declared_provider = by_urn.get(provider_urn)
            if declared_provider is not None:
                provider = PolicyProviderResource(declared_provider.type, props[provider_urn], engine_urn[provider_urn], declared_provider.name)
        parent_urn = engine_urn.get(resource.parent) if resource.parent else None
        options = resource.options
        opts = PolicyResourceOptions(
            protect=bool(options.get("protect")),
            ignore_changes=list(options.get("ignoreChanges", [])),
            delete_before_replace=True if options.get("deleteBeforeReplace") else None,
            aliases=[],
            custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
            additional_secret_outputs=list(options.get("additionalSecretOutputs", [])),
            parent=parent_urn,
        )
        result.append(_Analyzed(resource, engine_urn[resource.urn], props[resource.urn], opts, provider, parent_urn))
    return result


def _stack_resources(analyzed: list[_Analyzed]) -> list[PolicyResource]:
    """PolicyResources with parents and dependencies linked (the plan records no per-property dependencies)."""
    by_mock_urn = {
        item.declared.urn: PolicyResource(item.declared.type, item.props, item.urn, item.declared.name, item.opts, item.provider, None, [], {})
        for item in analyzed
    }
    for item in analyzed:
        resource = by_mock_urn[item.declared.urn]
        if item.declared.parent:
            resource.parent = by_mock_urn.get(item.declared.parent)
        resource.dependencies = [by_mock_urn[urn] for urn in item.declared.options.get("dependencies", []) if urn in by_mock_urn]
    return list(by_mock_urn.values())


# ---------------------------------------------------------------- running the pack


def _run(validate, args, report) -> None:
    try:
        result = validate(args, report)
        if isawaitable(result):
            asyncio.run(result)  # type: ignore[arg-type]
    except (_NotApplicableError, UnknownValueError):
        pass  # the engine reports these as "not applicable" / advisory "can't run during preview", never a violation


def _levels(policies: Sequence[Policy], config: dict[str, dict[str, Any]]) -> dict[str, EnforcementLevel]:
    """Each policy's enforcement level, with a config override (`{"<policy>": {"enforcementLevel": ...}}`) as the engine applies it."""
    levels = {}
    for policy in policies:
        level = policy.enforcement_level or EnforcementLevel.MANDATORY
        override = (config.get(policy.name) or {}).get("enforcementLevel")
        levels[policy.name] = EnforcementLevel(override) if override else level
    return levels


def check(
    evaluation: Evaluation,
    fleet: Fleet,
    *,
    config: Optional[dict[str, dict[str, Any]]] = None,
    policies: Optional[Sequence[Policy]] = None,
) -> list[Violation]:
    """Every violation the pack reports for what `evaluation` declares (config: `policy_config(fleet, evaluation)` unless given).

    Cyclic GC is paused meanwhile (`gc_paused`): the check builds a proxy and arguments per resource and policy,
    and collections rescanning the plan's large heap took half of its time at 1,000 tenants."""
    with gc_paused():
        return _check(evaluation, fleet, config, policies)


def _check(
    evaluation: Evaluation, fleet: Fleet, config: Optional[dict[str, dict[str, Any]]], policies: Optional[Sequence[Policy]]
) -> list[Violation]:
    policies = list(policies if policies is not None else pack.ALL_POLICIES)
    config = policy_config(fleet, evaluation) if config is None else config
    levels = _levels(policies, config)
    analyzed = _analyzed(evaluation)
    by_urn = {item.urn: item.declared for item in analyzed}
    stack_resources: Optional[list[PolicyResource]] = None
    violations: list[Violation] = []

    for policy in policies:
        level = levels[policy.name]
        if level == EnforcementLevel.DISABLED:
            continue
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY  # the engine reports a remaining violation of a remediation as mandatory
        properties = {key: value for key, value in (config.get(policy.name) or {}).items() if key != "enforcementLevel"}
        policy_config_value = _as_engine_sends(properties) if properties else None

        def collect(message: str, urn: Optional[str] = None, *, subject: Optional[Declared] = None, policy=policy, level=level) -> None:
            declared = subject if subject is not None else by_urn.get(urn or "")
            violations.append(
                Violation(
                    policy=policy.name,
                    enforcement=level.value,
                    tenant=declared.tenant if declared is not None else None,
                    resource=declared.name if declared is not None else None,
                    message=message,
                )
            )

        if isinstance(policy, ResourceValidationPolicy):
            for item in analyzed:
                args = ResourceValidationArgs(item.declared.type, item.props, item.urn, item.declared.name, item.opts, item.provider, policy_config_value)
                # A resource policy's report is about the resource being validated (the engine ignores the urn argument).
                _run(policy.validate, args, lambda message, urn=None, subject=item.declared: collect(message, subject=subject))
        elif isinstance(policy, StackValidationPolicy):
            if stack_resources is None:
                stack_resources = _stack_resources(analyzed)
            _run(policy.validate, StackValidationArgs(stack_resources, policy_config_value), collect)
    return violations


def has_mandatory(violations: Iterable[Violation]) -> bool:
    """Whether any violation blocks the deploy."""
    return any(violation.mandatory for violation in violations)


# ---------------------------------------------------------------- for people and machines


def format_violations(violations: Sequence[Violation], policy_count: Optional[int] = None) -> str:
    """Violations grouped by tenant (fleet-wide ones last), mandatory first, with a one-line verdict at the end."""
    policy_count = policy_count if policy_count is not None else len(pack.ALL_POLICIES)
    if not violations:
        return f"Policies: all {policy_count} passed."
    groups: dict[str, list[Violation]] = defaultdict(list)
    for violation in violations:
        groups[violation.tenant or SHARED].append(violation)
    lines = []
    for group in sorted(groups, key=lambda name: (name == SHARED, name)):
        lines.append(f"tenant {group}" if group != SHARED else SHARED)
        for violation in sorted(groups[group], key=lambda v: (not v.mandatory, v.policy, v.resource or "", v.message)):
            where = f" {violation.resource}:" if violation.resource and violation.resource not in violation.message else ""
            message = violation.message.removeprefix(f"tenant {group}: ")
            lines.append(f"  [{violation.enforcement}] {violation.policy}:{where} {message}")
    mandatory = sum(1 for violation in violations if violation.mandatory)
    advisory = len(violations) - mandatory
    verdict = "a deploy would be refused" if mandatory else "advisory only, a deploy may go ahead"
    lines.append(f"Policies: {mandatory} mandatory and {advisory} advisory violation(s) over {policy_count} policies; {verdict}.")
    return "\n".join(lines)


def violations_document(violations: Sequence[Violation]) -> list[dict[str, Any]]:
    """Violations as JSON-able dicts (for `fleet plan --json`)."""
    return [asdict(violation) for violation in violations]


# ---------------------------------------------------------------- stack helpers (CLI and engine path)


def load_stack_fleet(stack: str, root: Path, tenants_dir: Optional[Path] = None) -> Fleet:
    """The validated whole fleet of a stack (every tenant file, not the stack's shard); raises SpecError."""

    tenants_dir = tenants_dir or root / "tenants"
    return load_fleet(tenants_dir, stack_config(stack, root), root=tenants_dir.parent, environment_display=f"Pulumi.{stack}.yaml")


def check_stack(evaluation: Evaluation, stack: str, root: Path, tenants_dir: Optional[Path] = None) -> list[Violation]:
    """`check` for an evaluation of a stack's config (what `fleet plan` needs)."""
    return check(evaluation, load_stack_fleet(stack, root, tenants_dir))


def write_policy_config(path: Path, stack: str, root: Path, tenants_dir: Optional[Path] = None, evaluation: Optional[Evaluation] = None) -> Path:
    """Write the `--policy-pack-config` file of a stack (runs the offline plan for the retain attestation unless given)."""

    fleet = load_stack_fleet(stack, root, tenants_dir)
    evaluation = evaluation if evaluation is not None else plan_stack(stack, root, tenants_dir=tenants_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(policy_config(fleet, evaluation), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _plan_entry(name: str, plan: Plan) -> dict[str, Any]:
    """A plan in the policies' catalog: its base sizes and max per service (or backend and frontend)."""
    if plan.services:
        return {
            "name": name,
            "services": {service: _size(spec) for service, spec in plan.services.items()},
            "max": {service: _size(spec.bound) for service, spec in plan.services.items()},
        }
    assert plan.backend is not None and plan.frontend is not None and plan.max is not None  # the default shape
    return {"name": name, "backend": _size(plan.backend), "frontend": _size(plan.frontend), "max": {role: _size(getattr(plan.max, role)) for role in derive.APP_ROLES}}
