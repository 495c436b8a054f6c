"""Which changed tenants a rollout reaches in which wave: the canary set first, then batches (fleet:rollout)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from fleet.model.spec import Rollout


def batch_size(batch: str, remaining: int) -> int:
    """A wave's size: `5` tenants, or `25%` of those left after the canary (at least 1)."""
    if batch.endswith("%"):
        return max(1, math.ceil(remaining * int(batch[:-1]) / 100))
    return max(1, int(batch))


def plan_waves(changed: Iterable[str], rollout: Rollout) -> list[list[str]]:
    """Waves of tenant names: the changed canaries (one wave), then the other changed tenants by name, in batches."""
    changed = sorted(set(changed))
    canary = [name for name in rollout.canary if name in changed]
    rest = [name for name in changed if name not in canary]
    waves = [canary] if canary else []
    size = batch_size(rollout.batch, len(rest))
    waves += [rest[start : start + size] for start in range(0, len(rest), size)]
    return waves


def describe_waves(waves: list[list[str]], canaries: Iterable[str]) -> list[str]:
    """One line per wave, for the PR summary and the deploy's output."""
    canary = set(canaries)
    lines = []
    for number, wave in enumerate(waves, 1):
        label = " (canary)" if wave and set(wave) <= canary and number == 1 else ""
        lines.append(f"wave {number}{label}: {', '.join(wave)}")
    return lines
