"""The offline plan: run the real program under Pulumi mocks and record every resource it declares.

No engine, no credentials, no network: the same `fleet_program` that `pulumi up` runs is executed
with a mock monitor that records each registration (type, name, inputs, options, parent), so the
CLI, the policies and the tests look at exactly what a deploy would declare.

Cost (see `python -m fleet bench`): the SDK's per-resource machinery under mocks (an Output per
output property of each resource type: a docker Container has about 80) is most of the time and
memory, so a run pays for nothing else (`_offline_runtime`): no thread hop per registration, no
cyclic-GC scan of the ever larger heap while the program runs, and five SDK functions swapped for
equivalents that skip work a mock run throws away (`SDK_REPLACEMENTS`; each tested, and a plan with
them is tested equal to a plan without). Large fleets are evaluated in shards of tenants
(`SHARD_TENANTS`) by worker processes (one per core): memory stays bounded by a shard, the cores are
used, and the merged Evaluation is the one a single run gives (tests/unit/test_bench_smoke.py
compares them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import json
import multiprocessing
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import pulumi
from google.protobuf import struct_pb2
from pulumi import _types as sdk_types
from pulumi import output as sdk_output
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import known_types, rpc, settings
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from fleet import derive
from fleet.spec import Problem, SpecError, stack_config_mapping

TENANT_TYPE = derive.COMPONENT_TYPE.format("Tenant")
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

        return {r.urn: f"urn:pulumi:{self.stack}::tenant-fleet::{chain(r)}::{r.name}" for r in self.resources}

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
    """A mock monitor that also records each registration's options and parent.

    It answers RegisterResource itself, as the stock MockMonitor does (URN, the mocks' id and outputs),
    but deserializes the request once and builds the response Struct directly instead of running the
    async serializer on a private event loop; `resources` (the stock monitor's registry of every
    resource's state, read only by the `getResource` invoke the program never makes) is not kept.
    """

    def __init__(self, mocks: pulumi_mocks.Mocks, evaluation: Evaluation):
        super().__init__(mocks)
        self.evaluation = evaluation

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
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


# ---------------------------------------------------------------- what a run under mocks doesn't pay for


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each call at once on the calling thread. The SDK sends every monitor call through the event loop's
    default executor (a thread hop per resource); the mock monitor answers in microseconds, so the hop and the
    GIL hand-offs it causes only cost time."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine, as a thread would
            future.set_exception(error)
        return future


# The SDK internals the offline plan replaces while it runs, in this one place (pulumi 3.259.0). Each is a
# replacement changes nothing the program or the recorded plan sees; tests/unit/test_bench_smoke.py fails when one of
# them is no longer there (then drop its replacement) and checks that each is restored after a run.

_EMPTY_STACK_TRACE = source_pb2.StackTrace()


def _no_stack_trace() -> source_pb2.StackTrace:
    """For pulumi.runtime.resource._get_stack_trace: for every resource the SDK walks the Python stack
    (traceback.extract_stack, a file URI per frame) to tell the engine where the constructor was called;
    only the engine's UI shows it and a mock monitor throws it away."""
    return _EMPTY_STACK_TRACE


def _contains_unknowns(value: Any, _seen: Optional[set[int]] = None) -> bool:
    """For pulumi.runtime.rpc.contains_unknowns (called for every Output's value): the same answer, without the
    self-referencing closure the SDK builds on each call, a reference cycle only the cyclic GC frees."""
    if known_types.is_unknown(value):
        return True
    if isinstance(value, (dict, list)):
        seen = _seen if _seen is not None else set()
        if id(value) in seen:
            return False
        seen.add(id(value))
        return any(_contains_unknowns(item, seen) for item in (value.values() if isinstance(value, dict) else value))
    return False


def _memoized_resource_types(resource_types):
    """For pulumi._types.resource_types (a resource class's output types, read for every resource registered):
    the SDK resolves the class's annotations with typing.get_type_hints each time; a class doesn't change."""
    cache: dict[type, dict[str, type]] = {}

    def cached(resource_cls: type) -> dict[str, type]:
        types = cache.get(resource_cls)
        if types is None:
            types = cache[resource_cls] = resource_types(resource_cls)
        return types

    return cached


def _direct_create_urn(create_urn):
    """For pulumi.runtime.resource.create_urn, which the SDK calls for every resource it registers (a "mock URN"
    used only when there is no monitor) with plain strings: the URN string at once, in one resolved Output,
    instead of an Output.all and two applies (their tasks and callbacks). Any other argument: the original."""

    def direct(name, type_, parent=None, project=None, stack=None):
        if not (isinstance(name, str) and isinstance(type_, str) and (parent is None or isinstance(parent, str)) and project is None and stack is None):
            return create_urn(name, type_, parent, project, stack)
        if parent is None:
            prefix = f"urn:pulumi:{settings.get_stack()}::{settings.get_project()}::"
        else:
            prefix = parent[: parent.rfind("::")] + "$"
        return pulumi.Output.from_input(prefix + type_ + "::" + name)

    return direct


def _direct_transfer_properties(transfer_properties):
    """For pulumi.runtime.rpc.transfer_properties, which makes an Output for every output property of every
    resource registered (a docker Container has about 80): the SDK builds each from four futures (value, known,
    secret, dependencies) and a task that awaits them into the Output's one state future, and tracks it until it
    resolves (a lock and a callback each); here the resolver sets that state future at once, and only a failed one
    is tracked, as the SDK leaves it for the end of the run to raise. A pending one needs no tracking: the
    registration that resolves it is itself awaited by the run. The Output and what it resolves to are the same."""

    def direct(res, props, custom):
        resolvers = {}
        for name in props:
            if name == "urn" or (name == "id" and custom):
                continue  # the SDK handles these elsewhere
            state: asyncio.Future = asyncio.Future()
            resolvers[name] = functools.partial(_resolve_state, res, state)
            output = res.__dict__[name] = object.__new__(pulumi.Output)
            output._data = state
        return resolvers

    return direct


def _resolve_state(res, state: asyncio.Future, value: Any, is_known: bool, is_secret: bool, deps: Optional[set], failed: Optional[Exception]) -> None:
    """A resolver as transfer_properties hands out: the resource joins the dependencies; a failure fails the Output."""
    if failed is not None:
        with settings.SETTINGS.lock:  # tracked, as the SDK leaves a failed Output, for the run's end to raise
            settings.SETTINGS.outputs.add(state)
        state.set_exception(failed)
        return
    resources = set(deps) if deps else set()
    resources.add(res)
    state.set_result(sdk_output._OutputData(resources=resources, value=value, is_known=is_known, is_secret=is_secret))


SDK_REPLACEMENTS = (
    (sdk_resource, "_get_stack_trace", lambda original: _no_stack_trace),
    (rpc, "contains_unknowns", lambda original: _contains_unknowns),
    (sdk_types, "resource_types", _memoized_resource_types),
    (sdk_resource, "create_urn", _direct_create_urn),
    (rpc, "transfer_properties", _direct_transfer_properties),
)
"""(module, attribute, make replacement from the original) for each SDK function swapped during a run."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (restored on exit). For work that builds many objects that all live
    until it ends (a plan, a policy check): each collection would scan the whole ever larger heap again, which
    made 1,000 tenants take twice as long; the first collection after it frees what is garbage, once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _offline_runtime() -> Iterator[None]:
    """What a run under mocks doesn't pay for, all restored on exit: the executor thread hop per monitor call,
    the SDK work in SDK_REPLACEMENTS, and cyclic garbage collection while the program runs (`gc_paused`)."""
    loop = _ensure_event_loop()
    loop.set_default_executor(_InlineExecutor())
    originals = []
    for module, attribute, replacement in SDK_REPLACEMENTS:
        original = getattr(module, attribute, None)
        if original is not None:
            originals.append((module, attribute, original))
            setattr(module, attribute, replacement(original))
    try:
        with gc_paused():
            yield
    finally:
        for module, attribute, original in originals:
            setattr(module, attribute, original)
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio"))


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


SHARD_TENANTS = 100
"""Most tenants per shard when a fleet is evaluated in shards: the SDK keeps every resource's Outputs until a
run ends (about 1.3 MB per tenant), so a shard bounds a worker's memory, and shards spread over the cores."""
MIN_SHARD_TENANTS = 25
"""Fewest tenants per shard: below that, starting a worker costs more than it saves (a fleet of 50 or more is sharded)."""


def evaluate(
    config: dict[str, Any],
    *,
    stack: str = "dev",
    tenants_dir: Optional[Path] = None,
    selection: Optional[Iterable[str]] = None,
    workers: Optional[int] = None,
) -> Evaluation:
    """Run the program under mocks with the given `fleet:` config values; raises SpecError for an invalid spec.

    A fleet of 2 * MIN_SHARD_TENANTS tenants or more is evaluated in shards by `workers` processes (default: one
    per core) and merged into the Evaluation a single run gives; an invalid spec is reported by a single run, every
    problem at once, as always. `workers=1` always runs the program once, in this process.
    """
    from fleet.program import TENANTS_DIR

    tenants_dir = Path(tenants_dir or TENANTS_DIR)
    selection = sorted(set(selection)) if selection is not None else None
    workers = workers if workers is not None else _cores()
    if workers > 1 and _fleet_size(config, tenants_dir, selection) >= 2 * MIN_SHARD_TENANTS:
        sharded = _evaluate_sharded(config, stack, tenants_dir, selection, workers)
        if sharded is not None:
            return sharded
    return _evaluate_once(config, stack, tenants_dir, selection)


def _evaluate_once(config: dict[str, Any], stack: str, tenants_dir: Path, selection: Optional[list[str]], shard: Optional[list[str]] = None) -> Evaluation:
    """One run of the program in this process (`shard`: read only these tenants' files, see `_evaluate_sharded`)."""
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
            declared = fleet_program(selection, tenants_dir, shard=shard)
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
    with _offline_runtime():
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


# ---------------------------------------------------------------- large fleets: shards in worker processes


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _fleet_size(config: dict[str, Any], tenants_dir: Path, selection: Optional[list[str]]) -> int:
    """How many tenants a run declares, without reading them (an upper bound is enough to decide on shards)."""
    if selection is not None:
        return len(selection)
    if isinstance(config.get("tenants"), list):
        return len(config["tenants"])
    try:
        return sum(1 for p in tenants_dir.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("_"))
    except OSError:
        return 0


def _declared_names(config: dict[str, Any], tenants_dir: Path, selection: Optional[list[str]]) -> list[str]:
    """The tenants a run declares, as the program chooses them (selection, else `fleet:tenants`, else every file),
    by file name: whether they are valid is for the program to say."""
    from fleet.spec import tenant_files

    if selection is not None:
        return sorted(selection)
    if isinstance(config.get("tenants"), list):
        return sorted(set(config["tenants"]))
    return sorted({path.stem for path in tenant_files(tenants_dir)})


def _fleet_problems(config: dict[str, Any], stack: str, tenants_dir: Path) -> bool:
    """Whether the whole tenants folder fails validation, with every check across tenants (a hostname claimed
    twice, by two shards or by a tenant no shard declares): the shards each read and checked only their own."""
    from fleet.program import SECRET_CONFIG_KEYS
    from fleet.spec import Environment, load_fleet

    raw = {key: value for key, value in config.items() if key in Environment.model_fields and key not in SECRET_CONFIG_KEYS}
    try:
        load_fleet(tenants_dir, raw, root=tenants_dir.parent, environment_display=f"Pulumi.{stack}.yaml")
    except SpecError:
        return True
    return False


def _evaluate_sharded(config: dict[str, Any], stack: str, tenants_dir: Path, selection: Optional[list[str]], workers: int) -> Optional[Evaluation]:
    """Run the program on shards of tenants in worker processes and merge; None when a single run must answer.

    Each shard's program reads only its tenants' files (`fleet_program(shard=...)`), so no worker parses the whole
    fleet, and validates them as the program always does; meanwhile this process validates the whole folder once.
    When a shard or that validation finds a problem, the caller's single run reports every problem of the whole
    fleet at once, exactly as without shards (it stops at validation, before declaring anything, so that costs little)."""
    shards = shard_names(_declared_names(config, tenants_dir, selection), workers)
    if len(shards) < 2:
        return None
    jobs = [(config, stack, str(tenants_dir), shard) for shard in shards]
    # One tenant here first: the workers, forked from this process, find the program's modules imported.
    try:
        _evaluate_once(config, stack, tenants_dir, shards[0][:1], shard=shards[0][:1])
    except SpecError:
        return None
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with gc_paused(), context.Pool(processes=min(workers, len(shards)), maxtasksperchild=1) as pool:
        pending = pool.starmap_async(_evaluate_shard, jobs, chunksize=1)
        invalid = _fleet_problems(config, stack, tenants_dir)
        parts = pending.get()
        if invalid or any(part is None for part in parts):
            return None
        return merge_evaluations(stack, parts)


def shard_names(names: list[str], workers: int) -> list[list[str]]:
    """Tenants split into shards of nearly equal size: at most SHARD_TENANTS each, at least MIN_SHARD_TENANTS,
    and as many as keep every worker busy to the end (a multiple of `workers`) when the fleet allows it."""
    workers = max(workers, 1)
    needed = -(-len(names) // SHARD_TENANTS)
    count = max(1, min(-(-needed // workers) * workers, len(names) // MIN_SHARD_TENANTS), needed)
    size, extra = divmod(len(names), count)
    shards, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        shards.append(names[start:end])
        start = end
    return shards


_INHERITED_LOOPS: list = []


def _evaluate_shard(config: dict[str, Any], stack: str, tenants_dir: str, names: list[str]) -> Optional[Evaluation]:
    """A worker's job: one run of the program for a shard (on a fresh event loop: a forked one is the parent's);
    None when the shard's spec is invalid (the parent then reports the whole fleet's problems)."""
    import asyncio

    # The loop inherited from the parent shares its selector and self-pipe with the parent's: closing it here
    # (as dropping the last reference to it would) takes the self-pipe out of the parent's selector, and the
    # parent's loop would never again wake up for a thread's result. Keep it, unused, until this process exits.
    _INHERITED_LOOPS.append(asyncio.get_event_loop_policy().get_event_loop())
    asyncio.set_event_loop(asyncio.new_event_loop())
    # The worker exits after this shard: collecting the run's garbage (a tenth of the shard's time) would be wasted.
    gc.disable()
    try:
        return _evaluate_once(config, stack, Path(tenants_dir), names, shard=names)
    except SpecError:
        return None


def merge_evaluations(stack: str, parts: Iterable[Evaluation]) -> Optional[Evaluation]:
    """One Evaluation from the runs of disjoint shards of tenants: each tenant's resources once, the shared ones
    (declared by every shard) once, stack outputs merged key by key. None when shared resources differ."""
    merged = Evaluation(stack=stack)
    shared: dict[str, Declared] = {}
    for part in parts:
        for resource in part.resources:
            if resource.tenant is None:
                seen = shared.get(resource.urn)
                if seen is not None:
                    if (seen.raw_inputs, seen.options, seen.parent, seen.provider) != (resource.raw_inputs, resource.options, resource.parent, resource.provider):
                        return None
                    continue
                shared[resource.urn] = resource
            merged.resources.append(resource)
        merged.specs.update(part.specs)
        for key, value in part.outputs.items():
            if key not in merged.outputs:
                merged.outputs[key] = value
                continue
            combined = _merge_output(merged.outputs[key], value)
            if combined is None:
                return None
            merged.outputs[key] = combined
    merged.resources.sort(key=lambda r: (r.tenant or "", r.type, r.name))
    return merged


def _merge_output(left: Any, right: Any) -> Any:
    secret = rpc.is_rpc_secret(left) or rpc.is_rpc_secret(right)
    left, right = rpc.unwrap_rpc_secret(left), rpc.unwrap_rpc_secret(right)
    if isinstance(left, dict) and isinstance(right, dict):
        combined = {**left}
        for key, value in right.items():
            if key in combined and combined[key] != value:
                return None
            combined[key] = value
    elif left == right:
        combined = left
    else:
        return None
    return rpc.wrap_rpc_secret(combined) if secret else combined


def plan_stack(
    stack: str, root: Path, tenants_dir: Optional[Path] = None, selection: Optional[Iterable[str]] = None, *, workers: Optional[int] = None
) -> Evaluation:
    """Evaluate a stack's program offline from its `Pulumi.<stack>.yaml`."""
    return evaluate(stack_config(stack, root), stack=stack, tenants_dir=tenants_dir or root / "tenants", selection=selection, workers=workers)

