"""The offline plan: run the real program under Pulumi mocks and record every resource it declares.

No engine, no credentials, no network: the same `fleet_program` that `pulumi up` runs is executed
with a mock monitor that records each registration (type, name, inputs, options, parent), so the
CLI, the policies and the tests look at exactly what a deploy would declare.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from fleet import derive
from fleet.spec import SECRET_PLACEHOLDER, Problem, SpecError, stack_config_mapping

TENANT_TYPE = derive.COMPONENT_TYPE.format("Tenant")
DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
REDACTED = "[secret]"


@dataclass
class Declared:
    """One resource as the program declared it."""

    type: str
    name: str
    urn: str
    parent: Optional[str]
    custom: bool
    inputs: dict[str, Any]
    provider: Optional[str]
    options: dict[str, Any]
    raw_inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    """Inputs with secrets revealed and marked: for checks (policies, tests), never for printing."""
    secret_inputs: frozenset[str] = frozenset()
    """Top-level input keys whose value is secret."""
    tenant: Optional[str] = None

    def summary(self) -> dict[str, Any]:
        """The resource as the plan's JSON shows it: type, name and inputs, secrets redacted."""
        return {"type": self.type, "name": self.name, "inputs": self.inputs}


@dataclass
class Evaluation:
    """Everything one program run declared, and the stack outputs it exported."""

    stack: str
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack outputs as exported (secret values stay wrapped: see `rpc.is_rpc_secret`)."""
    specs: dict[str, Any] = field(default_factory=dict)
    """The validated TenantSpec of every declared tenant, by name."""

    def by_tenant(self) -> dict[str, list[Declared]]:
        """Resources grouped by the tenant that owns them (components included)."""
        grouped: dict[str, list[Declared]] = {}
        for resource in self.resources:
            if resource.tenant is not None:
                grouped.setdefault(resource.tenant, []).append(resource)
        return grouped

    def shared(self) -> list[Declared]:
        """Resources no tenant owns: providers, the proxy server."""
        return [r for r in self.resources if r.tenant is None and r.type != "pulumi:pulumi:Stack"]

    def engine_urn(self, resource: Declared) -> str:
        """The URN the engine gives this resource: the parent type chain is part of it (mock URNs leave it out)."""
        by_urn = {r.urn: r for r in self.resources}
        types = [resource.type]
        parent = by_urn.get(resource.parent) if resource.parent else None
        while parent is not None:
            types.insert(0, parent.type)
            parent = by_urn.get(parent.parent) if parent.parent else None
        return f"urn:pulumi:{self.stack}::tenant-fleet::{'$'.join(types)}::{resource.name}"

    def custom_resources(self) -> list[Declared]:
        """Real resources (no components)."""
        return [r for r in self.resources if r.custom]

    def find(self, type_: str, name: str) -> Declared:
        """The resource with this type and logical name."""
        for resource in self.resources:
            if resource.type == type_ and resource.name == name:
                return resource
        raise KeyError(f"{type_} {name}")


def _plain(value: Any) -> Any:
    """Inputs as JSON-able values with secrets redacted."""
    if rpc.is_rpc_secret(value):
        return REDACTED
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has only doubles; 40.0 was declared as 40
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _revealed(value: Any) -> Any:
    """Inputs as plain values with secrets unwrapped (whether a key was secret is kept in `secret_inputs`)."""
    if rpc.is_rpc_secret(value):
        return _revealed(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {key: _revealed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_revealed(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _stable_port(name: str) -> int:
    return 20000 + zlib.crc32(name.encode()) % 20000


class FleetMocks(pulumi_mocks.Mocks):
    """Fake provider outputs, chosen by type, deterministic so that two runs can be compared."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        outputs = dict(args.inputs)
        outputs.pop("__provider", None)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = f"mock-{args.name}-" + "x" * int(args.inputs.get("length", 32))
        elif args.typ == "docker:index/container:Container":
            ports = args.inputs.get("ports") or []
            outputs["ports"] = [{**port, "external": _stable_port(args.name)} for port in ports]
        elif args.typ == "docker:index/network:Network":
            outputs.setdefault("name", f"{args.name}-mock")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also records each registration's options and parent."""

    def __init__(self, mocks: pulumi_mocks.Mocks, evaluation: Evaluation):
        super().__init__(mocks)
        self.evaluation = evaluation

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        inputs = {key: value for key, value in inputs.items() if key != "__provider"}
        self.evaluation.resources.append(
            Declared(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent or None,
                custom=bool(request.custom),
                inputs=_plain(inputs),
                raw_inputs=_revealed(inputs),
                secret_inputs=frozenset(key for key, value in inputs.items() if rpc.is_rpc_secret(value)),
                provider=request.provider or None,
                options={
                    "protect": bool(request.protect),
                    "retainOnDelete": bool(request.retainOnDelete),
                    "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                    "ignoreChanges": list(request.ignoreChanges),
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "additionalSecretOutputs": list(request.additionalSecretOutputs),
                    "dependencies": sorted(request.dependencies),
                },
            )
        )
        return response


def _attribute_tenants(evaluation: Evaluation) -> None:
    # Mock URNs carry no parent names, so follow the recorded parent links up to a Tenant component.
    by_urn = {resource.urn: resource for resource in evaluation.resources}
    for resource in evaluation.resources:
        node: Optional[Declared] = resource
        while node is not None and node.type != TENANT_TYPE:
            node = by_urn.get(node.parent) if node.parent else None
        resource.tenant = node.name if node is not None else None


def stack_config(stack: str, root: Path) -> dict[str, Any]:
    """The `fleet:` values of `Pulumi.<stack>.yaml` (encrypted values replaced by a placeholder)."""
    problems: list[Problem] = []
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise SpecError([Problem(path.name, None, "", f"stack config not found; stacks here: {', '.join(sorted(p.name for p in root.glob('Pulumi.*.yaml'))) or 'none'}")])
    mapping = stack_config_mapping(path, problems, path.name)
    if problems:
        raise SpecError(problems)
    return mapping


def evaluate(
    config: dict[str, Any],
    *,
    stack: str = "dev",
    tenants_dir: Optional[Path] = None,
    selection: Optional[Iterable[str]] = None,
) -> Evaluation:
    """Run the program under mocks with the given `fleet:` config values; raises SpecError for an invalid spec."""
    from fleet.program import CONFIG_NAMESPACE, SECRET_CONFIG_KEYS, InvalidFleetSpec, fleet_program

    evaluation = Evaluation(stack=stack)
    secret_keys = [f"{CONFIG_NAMESPACE}:{key}" for key in SECRET_CONFIG_KEYS]
    all_config = {f"{CONFIG_NAMESPACE}:{key}": json.dumps(value) for key, value in config.items()}
    for key in secret_keys:
        all_config.setdefault(key, json.dumps({}))
    errors: list[SpecError] = []

    def program() -> None:
        # Configured inside the run so that the program reads the values through pulumi.Config, as in a deploy.
        pulumi.runtime.set_all_config(all_config, secret_keys)
        try:
            declared = fleet_program(selection, tenants_dir)
            evaluation.specs.update({name: component.spec for name, component in declared.items()})
        except InvalidFleetSpec as error:
            errors.append(error.spec_error)

    _run_under_mocks(program, evaluation, stack)
    if errors:
        raise errors[0]
    _attribute_tenants(evaluation)
    # Registration order depends on output resolution; sort so two runs of the same spec compare equal.
    evaluation.resources.sort(key=lambda r: (r.tenant or "", r.type, r.name))
    return evaluation


def _run_under_mocks(program, evaluation: Evaluation, stack: str) -> None:
    settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh stack per evaluation
    monitor = RecordingMonitor(FleetMocks(), evaluation)
    pulumi.runtime.set_mocks(FleetMocks(), project="tenant-fleet", stack=stack, preview=False, monitor=monitor)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    # Stack outputs live on the root resource; they are resolved once the run is over.
    root = settings.get_root_resource()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        resolved = _revealed(_sync_await(output.future()))
        evaluation.outputs[key] = rpc.wrap_rpc_secret(resolved) if _sync_await(output.is_secret()) else resolved


def plan_stack(stack: str, root: Path, tenants_dir: Optional[Path] = None, selection: Optional[Iterable[str]] = None) -> Evaluation:
    """Evaluate a stack's program offline from its `Pulumi.<stack>.yaml`."""
    return evaluate(stack_config(stack, root), stack=stack, tenants_dir=tenants_dir or root / "tenants", selection=selection)


def is_placeholder(value: Any) -> bool:
    """Whether a config value is an encrypted secret the offline plan cannot read."""
    return value == SECRET_PLACEHOLDER
