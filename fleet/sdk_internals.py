"""Every use of private Pulumi SDK names, in one place, switched on only for the SDK version checked.

Speed-ups of the offline plan (SDK functions whose work a run under mocks throws away) and the pickler
guard every dynamic resource needs on pulumi 3.259.0. With another SDK version they stay off and the stock
SDK runs, after a one-line notice. The private names used are listed in PRIVATE_NAMES.
"""


from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import json
import pickle
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Optional

import grpc
import pulumi
from pulumi import _types as sdk_types
from pulumi import output as sdk_output
from pulumi.automation._server import LanguageServer
from pulumi.runtime import known_types, rpc, settings
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import language_pb2_grpc, source_pb2
from pulumi.runtime.sync_await import _ensure_event_loop

PRIVATE_NAMES = (
    "pulumi.runtime.resource._get_stack_trace",
    "pulumi.runtime.resource.create_urn",
    "pulumi.runtime.rpc.contains_unknowns",
    "pulumi.runtime.rpc.transfer_properties",
    "pulumi._types.resource_types",
    "pulumi.output._OutputData",
    "pulumi.Output._data",
    "pulumi.runtime.settings.SETTINGS",
    "pulumi.runtime.sync_await._ensure_event_loop",
    "pickle._Pickler._batch_setitems",
    "pickle._Pickler.save_dict",
    "pulumi.automation._server.LanguageServer",
    "pulumi.runtime._grpc_settings._GRPC_CHANNEL_OPTIONS",
    "pulumi.automation.Stack._run_pulumi_cmd_sync",
)
"""Every private name this module reads or replaces."""
CHECKED_SDK_VERSION = "3.259.0"
"""The pulumi SDK version every replacement below was read against and tested with."""
SDK_VERSION = metadata.version("pulumi")
ENABLED = SDK_VERSION == CHECKED_SDK_VERSION
"""On only for the checked version: another SDK may have moved or fixed what these rely on."""
_noticed: list[str] = []


def notice_stock_sdk() -> None:
    """Say once per process that the stock SDK runs (the version differs from the one checked)."""
    if not ENABLED and not _noticed:
        _noticed.append(SDK_VERSION)
        print(
            f"note: pulumi SDK {SDK_VERSION} is not {CHECKED_SDK_VERSION}, which fleet.sdk_internals was checked against: "
            "running the stock SDK (slower offline plans; no pickler guard)",
            file=sys.stderr,
        )

# ---------------------------------------------------------------- what a run under mocks doesn't pay for


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each call at once on the calling thread. The SDK sends every monitor call through the event loop's
    default executor (a thread hop per resource); the mock monitor answers in microseconds, so the hop and the
    GIL hand-offs it causes only cost time."""

    def submit(self, fn, /, *args, **kwargs):
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
def offline_runtime() -> Iterator[None]:
    """What a run under mocks doesn't pay for, all restored on exit: the executor thread hop per monitor call,
    the SDK work in SDK_REPLACEMENTS, and cyclic garbage collection while the program runs (`gc_paused`).
    With an SDK version other than the one checked, SDK_REPLACEMENTS stay off."""
    if not ENABLED:
        notice_stock_sdk()
    loop = _ensure_event_loop()
    loop.set_default_executor(_InlineExecutor())
    originals = []
    for module, attribute, replacement in SDK_REPLACEMENTS if ENABLED else ():
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


# ---------------------------------------------------------------- the pickler guard of dynamic resources

# The pure-Python pickler that `pulumi.dynamic.dynamic.serialize_provider` patches (it swaps
# `pickle.Pickler` for `pickle._Pickler` while serializing).
_PATCHED_PICKLER = pickle._Pickler
_PATCHED_ATTRIBUTES = ("_batch_setitems", "save_dict")


@contextlib.contextmanager
def preserved_pickler() -> Iterator[None]:
    """Restore `pickle._Pickler._batch_setitems` and `save_dict` to what they were on entry.

    pulumi 3.259.0's `serialize_provider` (run by every `pulumi.dynamic.Resource.__init__`) wraps the
    *current* `_batch_setitems` in a sorting wrapper and never restores it. Each dynamic resource
    therefore adds one call level to every dict pickled afterwards; around 900 resources in one
    process end in RecursionError (Python < 3.14). Restoring the attributes after each construction keeps the
    wrapper depth at one: the sorting (what the SDK wants, for a stable `__provider` string) still
    applies inside each serialization, because the SDK re-installs its wrapper on every call.
    """
    if not ENABLED:
        notice_stock_sdk()
        yield
        return
    saved = {attribute: _PATCHED_PICKLER.__dict__.get(attribute) for attribute in _PATCHED_ATTRIBUTES}
    try:
        yield
    finally:
        for attribute, original in saved.items():
            if original is None:
                # Not defined on the class itself before: drop whatever the SDK put there.
                if attribute in _PATCHED_PICKLER.__dict__:
                    delattr(_PATCHED_PICKLER, attribute)
            else:
                setattr(_PATCHED_PICKLER, attribute, original)


def pickler_wrapper_depth() -> int:
    """How many sorting wrappers sit on top of the stock `pickle._Pickler._batch_setitems` (0 = untouched)."""
    function, depth = _PATCHED_PICKLER._batch_setitems, 0  # type: ignore[attr-defined]  # private method, not in typeshed's pickle stub
    while function.__closure__:
        inner = [cell.cell_contents for cell in function.__closure__ if callable(cell.cell_contents)]
        if not inner:
            break
        function, depth = inner[0], depth + 1
    return depth


# ---------------------------------------------------------------- an inline `up` without the extra commands


def lean_up(stack: Any, program: Any, extra_args: Optional[list[str]] = None) -> Optional[dict[str, int]]:
    """`pulumi up` of an inline program, as `Stack.up` runs it, without the three commands it adds afterwards.

    After every up the SDK runs `pulumi stack output` twice and `pulumi stack history` once (0.2 s of CPU
    each here), for outputs and a summary a fleet of stacks doesn't read: that was two thirds of a small
    stack's up. Here the change summary comes from the engine's own event log instead. Returns the
    resource changes, or None with another SDK version or no inline program (then the caller uses `Stack.up`)."""
    if not ENABLED or program is None:
        notice_stock_sdk()
        return None
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4), options=_GRPC_CHANNEL_OPTIONS)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
    port = server.add_insecure_port(address="127.0.0.1:0")
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="fleet-events-") as folder:
            events = Path(folder) / "events.jsonl"
            args = ["up", "--yes", "--skip-preview", "--color", "never", *(extra_args or [])]
            args += [f"--client=127.0.0.1:{port}", "--exec-kind", "auto.inline", "--event-log", str(events)]
            stack._run_pulumi_cmd_sync(args)
            return _summary_changes(events)
    finally:
        server.stop(0)


def _summary_changes(events: Path) -> dict[str, int]:
    changes: dict[str, int] = {}
    if events.exists():
        for line in events.read_text(encoding="utf-8").splitlines():
            if '"summaryEvent"' in line:
                summary = json.loads(line).get("summaryEvent") or {}
                changes = {str(kind): int(count) for kind, count in (summary.get("resourceChanges") or {}).items()}
    return changes
