"""The offline plan of a stack: its `Pulumi.<stack>.yaml` and tenant files, evaluated once or in shards.

`plan_stack` is what `python -m fleet plan`, the engine verbs and the preview call.
"""


from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from fleet.errors import Problem, SpecError
from fleet.model.load import stack_config_mapping
from fleet.offline.kubeconfigs_env import with_env_kubeconfigs
from fleet.offline.mocks import Evaluation, evaluate_once
from fleet.offline.shards import MIN_SHARD_TENANTS, cores, evaluate_sharded, fleet_size
from fleet.paths import TENANTS_DIR


def stack_config(stack: str, root: Path) -> dict[str, Any]:
    """The `fleet:` values of `Pulumi.<stack>.yaml` (encrypted values replaced by a placeholder), with the clusters
    whose kubeconfig $FLEET_KUBECONFIGS hands this run (fleet.offline.kubeconfigs_env)."""
    problems: list[Problem] = []
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise SpecError([Problem(path.name, None, "", f"stack config not found; stacks here: {', '.join(sorted(p.name for p in root.glob('Pulumi.*.yaml'))) or 'none'}")])
    mapping = stack_config_mapping(path, problems, path.name)
    if problems:
        raise SpecError(problems)
    return with_env_kubeconfigs(mapping)


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

    tenants_dir = Path(tenants_dir or TENANTS_DIR)
    selection = sorted(set(selection)) if selection is not None else None
    workers = workers if workers is not None else cores()
    if workers > 1 and fleet_size(config, tenants_dir, selection) >= 2 * MIN_SHARD_TENANTS:
        sharded = evaluate_sharded(config, stack, tenants_dir, selection, workers)
        if sharded is not None:
            return sharded
    return evaluate_once(config, stack, tenants_dir, selection)


def plan_stack(
    stack: str, root: Path, tenants_dir: Optional[Path] = None, selection: Optional[Iterable[str]] = None, *, workers: Optional[int] = None
) -> Evaluation:
    """Evaluate a stack's program offline from its `Pulumi.<stack>.yaml`."""
    return evaluate(stack_config(stack, root), stack=stack, tenants_dir=tenants_dir or root / "tenants", selection=selection, workers=workers)
