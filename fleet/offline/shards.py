"""Evaluate a large fleet in shards of tenants, one worker process per core, and merge the results.

Memory stays bounded by a shard and the cores are used; the merged Evaluation equals a single run's
(tests/unit/test_bench_smoke.py compares them). Cross-tenant checks still run on the whole fleet.
"""


from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
from pathlib import Path
from typing import Any, Iterable, Optional

from pulumi.runtime import rpc

from fleet.errors import SpecError
from fleet.model.load import load_fleet, tenant_files
from fleet.model.spec import Environment
from fleet.offline.mocks import Declared, Evaluation, evaluate_once
from fleet.program import SECRET_CONFIG_KEYS
from fleet.sdk_internals import gc_paused

SHARD_TENANTS = 100
"""Most tenants per shard when a fleet is evaluated in shards: the SDK keeps every resource's Outputs until a
run ends (about 1.3 MB per tenant), so a shard bounds a worker's memory, and shards spread over the cores."""
MIN_SHARD_TENANTS = 25
"""Fewest tenants per shard: below that, starting a worker costs more than it saves (a fleet of 50 or more is sharded)."""


# ---------------------------------------------------------------- large fleets: shards in worker processes


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fleet_size(config: dict[str, Any], tenants_dir: Path, selection: Optional[list[str]]) -> int:
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

    if selection is not None:
        return sorted(selection)
    if isinstance(config.get("tenants"), list):
        return sorted(set(config["tenants"]))
    return sorted({path.stem for path in tenant_files(tenants_dir)})


def _fleet_problems(config: dict[str, Any], stack: str, tenants_dir: Path) -> bool:
    """Whether the whole tenants folder fails validation, with every check across tenants (a hostname claimed
    twice, by two shards or by a tenant no shard declares): the shards each read and checked only their own."""

    raw = {key: value for key, value in config.items() if key in Environment.model_fields and key not in SECRET_CONFIG_KEYS}
    raw["app_secrets"] = dict.fromkeys(config.get("app_secrets") or {}, "[secret]")  # names are checked, as the program does
    raw["kubeconfigs"] = dict.fromkeys(config.get("kubeconfigs") or {}, "[secret]")
    try:
        load_fleet(tenants_dir, raw, root=tenants_dir.parent, environment_display=f"Pulumi.{stack}.yaml")
    except SpecError:
        return True
    return False


def evaluate_sharded(config: dict[str, Any], stack: str, tenants_dir: Path, selection: Optional[list[str]], workers: int) -> Optional[Evaluation]:
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
        evaluate_once(config, stack, tenants_dir, shards[0][:1], shard=shards[0][:1])
    except SpecError:
        return None
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with gc_paused(), context.Pool(processes=min(workers, len(shards)), maxtasksperchild=1) as pool:
        pending = pool.starmap_async(_evaluate_shard, jobs, chunksize=1)
        invalid = _fleet_problems(config, stack, tenants_dir)
        parts = pending.get()
        if invalid or any(part is None for part in parts):
            return None
        return merge_evaluations(stack, [part for part in parts if part is not None])


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

    # The loop inherited from the parent shares its selector and self-pipe with the parent's: closing it here
    # (as dropping the last reference to it would) takes the self-pipe out of the parent's selector, and the
    # parent's loop would never again wake up for a thread's result. Keep it, unused, until this process exits.
    _INHERITED_LOOPS.append(asyncio.get_event_loop_policy().get_event_loop())
    asyncio.set_event_loop(asyncio.new_event_loop())
    # The worker exits after this shard: collecting the run's garbage (a tenth of the shard's time) would be wasted.
    gc.disable()
    try:
        return evaluate_once(config, stack, Path(tenants_dir), names, shard=names)
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
