"""Run the real program under Pulumi mocks and record every resource it declares.

The mock monitor records each registration (type, name, inputs, options, parent) into an `Evaluation`,
so the CLI, the policies and the tests look at exactly what a deploy would declare.
"""


from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
from google.protobuf import struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from fleet.errors import SpecError
from fleet.model import type_tokens
from fleet.model.type_tokens import PROJECT_NAME, TENANT_TYPE
from fleet.program import CONFIG_NAMESPACE, SECRET_CONFIG_KEYS, InvalidFleetSpec, fleet_program
from fleet.sdk_internals import offline_runtime

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
        return [r for r in self.resources if r.tenant is None and r.type != type_tokens.STACK]

    def engine_urn(self, resource: Declared) -> str:
        """The URN the engine gives this resource: the parent type chain is part of it (mock URNs leave it out)."""
        return self.engine_urns()[resource.urn]

    def engine_urns(self) -> dict[str, str]:
        """Mock URN -> engine URN for every resource, in one pass (each parent's type chain is computed once)."""
        by_urn = {r.urn: r for r in self.resources}
        chains: dict[str, str] = {}

        def chain(resource: Declared) -> str:
            if resource.urn not in chains:
                parent = by_urn.get(resource.parent) if resource.parent else None
                chains[resource.urn] = f"{chain(parent)}${resource.type}" if parent is not None else resource.type
            return chains[resource.urn]

        return {r.urn: f"urn:pulumi:{self.stack}::{PROJECT_NAME}::{chain(r)}::{r.name}" for r in self.resources}

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
    return _views(value)[0]


def _revealed(value: Any) -> Any:
    """Inputs as plain values with secrets unwrapped (whether a key was secret is kept in `secret_inputs`)."""
    return _views(value)[1]


def _views(value: Any) -> tuple[Any, Any]:
    """(redacted, revealed) in one walk. A part that holds no secret and nothing unprintable is the same
    object in both views, so a resource's inputs are kept once, not twice."""
    if isinstance(value, dict):
        if rpc.is_rpc_secret(value):
            return REDACTED, _views(rpc.unwrap_rpc_secret(value))[1]
        plain, revealed, shared = {}, {}, True
        for key, item in value.items():
            plain[key], revealed[key] = _views(item)
            shared = shared and plain[key] is revealed[key]
        return (revealed, revealed) if shared else (plain, revealed)
    if isinstance(value, (list, tuple)):
        pairs = [_views(item) for item in value]
        revealed_list = [pair[1] for pair in pairs]
        if all(pair[0] is pair[1] for pair in pairs):
            return revealed_list, revealed_list
        return [pair[0] for pair in pairs], revealed_list
    if isinstance(value, float) and value.is_integer():
        number = int(value)  # the wire has only doubles; 40.0 was declared as 40
        return number, number
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value, value
    return str(value), value


def _without_unknowns(value: Any) -> Any:
    """The value the stock MockMonitor hands to `Mocks.new_resource`: unknowns as None (the same object when there are none)."""
    if isinstance(value, Unknown):
        return None
    if isinstance(value, dict):
        items = {key: _without_unknowns(item) for key, item in value.items()}
        return value if all(items[key] is value[key] for key in value) else items
    if isinstance(value, list):
        items_list = [_without_unknowns(item) for item in value]
        return value if all(a is b for a, b in zip(items_list, value)) else items_list
    return value


def _stable_port(name: str) -> int:
    return 20000 + zlib.crc32(name.encode()) % 20000


def _kubernetes_outputs(args: pulumi_mocks.MockResourceArgs) -> dict[str, Any]:
    """What the Kubernetes API server adds to an object: a name where Pulumi names it, a generation, a Service's cluster IP."""
    metadata = dict(args.inputs.get("metadata") or {})
    metadata.setdefault("name", f"{args.name}-mock")
    metadata.setdefault("generation", 1)
    outputs: dict[str, Any] = {"metadata": metadata}
    if args.typ == type_tokens.KUBE_SERVICE:
        address = _stable_port(args.name)
        outputs["spec"] = {**(args.inputs.get("spec") or {}), "clusterIP": f"10.96.{address // 250 % 250}.{address % 250}"}
    return outputs


class FleetMocks(pulumi_mocks.Mocks):
    """Fake provider outputs, chosen by type, deterministic so that two runs can be compared."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        outputs.pop("__provider", None)
        if args.typ == type_tokens.PASSWORD:
            outputs["result"] = f"mock-{args.name}-" + "x" * int(args.inputs.get("length", 32))
        elif args.typ == type_tokens.CONTAINER:
            ports = args.inputs.get("ports") or []
            outputs["ports"] = [{**port, "external": _stable_port(args.name)} for port in ports]
        elif args.typ == type_tokens.NETWORK:
            outputs.setdefault("name", f"{args.name}-mock")
        elif args.typ.startswith("kubernetes:") and not args.typ.startswith("kubernetes:index"):
            outputs.update(_kubernetes_outputs(args))
        elif args.typ == type_tokens.KUBE_READY_PODS:
            outputs["addresses"] = [f"10.88.{_stable_port(args.name) % 250}.{10 + index}:{int(args.inputs['port'])}" for index in range(int(args.inputs["expected"]))]
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also records each registration's options and parent.

    It answers RegisterResource itself, as the stock MockMonitor does (URN, the mocks' id and outputs),
    but deserializes the request once and builds the response Struct directly instead of running the
    async serializer on a private event loop; `resources` (the stock monitor's registry of every
    resource's state, read only by the `getResource` invoke the program never makes) is not kept.
    """

    mocks: FleetMocks

    def __init__(self, mocks: FleetMocks, evaluation: Evaluation):
        super().__init__(mocks)
        self.evaluation = evaluation

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == type_tokens.STACK:
            return resource_pb2.RegisterResourceResponse(urn=urn)
        declared = rpc.deserialize_properties(request.object, keep_unknowns=True)
        resource_id, state = self.mocks.new_resource(
            pulumi_mocks.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=_without_unknowns(declared),
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
            )
        )
        response = resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=_struct(state))
        self._record(request, urn, declared)
        return response

    def _record(self, request, urn: str, declared: dict[str, Any]) -> None:
        inputs = {key: value for key, value in declared.items() if key != "__provider"}
        plain, revealed = _views(inputs)
        self.evaluation.resources.append(
            Declared(
                type=request.type,
                name=request.name,
                urn=urn,
                parent=request.parent or None,
                custom=bool(request.custom),
                inputs=dict(plain),
                raw_inputs=dict(revealed),
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


def _struct(state: dict[str, Any]) -> struct_pb2.Struct:
    """The mocks' outputs as the Struct the SDK resolves outputs from (what `rpc.serialize_properties` gives plain values)."""
    struct = struct_pb2.Struct()
    try:
        struct.update(state)
    except (TypeError, ValueError):  # not plain data (an asset, a resource): the SDK's serializer knows those
        return _sync_await(rpc.serialize_properties(state, {}))
    return struct


def attribute_tenants(evaluation: Evaluation) -> None:
    # Mock URNs carry no parent names, so follow the recorded parent links up to a Tenant component.
    by_urn = {resource.urn: resource for resource in evaluation.resources}
    for resource in evaluation.resources:
        node: Optional[Declared] = resource
        while node is not None and node.type != TENANT_TYPE:
            node = by_urn.get(node.parent) if node.parent else None
        resource.tenant = node.name if node is not None else None


def evaluate_once(config: dict[str, Any], stack: str, tenants_dir: Path, selection: Optional[list[str]], shard: Optional[list[str]] = None) -> Evaluation:
    """One run of the program in this process (`shard`: read only these tenants' files, see `evaluate_sharded`)."""

    evaluation = Evaluation(stack=stack)
    secret_keys = [f"{CONFIG_NAMESPACE}:{key}" for key in SECRET_CONFIG_KEYS]
    all_config = {f"{CONFIG_NAMESPACE}:{key}": json.dumps(value) for key, value in config.items()}
    for key in SECRET_CONFIG_KEYS:
        # As `pulumi config` holds them: an object as JSON (server_passwords), a plain string as itself (redis_password).
        value = config.get(key, "" if key == "redis_password" else {})
        all_config[f"{CONFIG_NAMESPACE}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    errors: list[SpecError] = []

    def program() -> None:
        # Configured inside the run so that the program reads the values through pulumi.Config, as in a deploy.
        pulumi.runtime.set_all_config(all_config, secret_keys)
        try:
            declared = fleet_program(selection, tenants_dir, shard=shard, whole=True)
            evaluation.specs.update({name: component.spec for name, component in declared.items()})
        except InvalidFleetSpec as error:
            errors.append(error.spec_error)

    run_under_mocks(program, evaluation, stack)
    if errors:
        raise errors[0]
    attribute_tenants(evaluation)
    # Registration order depends on output resolution; sort so two runs of the same spec compare equal.
    evaluation.resources.sort(key=lambda r: (r.tenant or "", r.type, r.name))
    return evaluation


def run_under_mocks(program, evaluation: Evaluation, stack: str) -> None:
    settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh stack per evaluation
    monitor = RecordingMonitor(FleetMocks(), evaluation)
    with offline_runtime():
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
        # Let go of the run's resources and Outputs before collection resumes: one collection then frees them.
        settings.set_root_resource(None)  # type: ignore[arg-type]
        settings.SETTINGS.rpc_manager.clear()
        settings.SETTINGS.outputs.clear()
