"""Typed access to what the project's dynamic providers return, for tests that call a provider directly."""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CreateResult, ReadResult, UpdateResult


def outs_of(result: CreateResult | UpdateResult | ReadResult) -> dict[str, Any]:
    """The outputs of a create, update or read. The SDK types them optional; the project's providers always return them."""
    assert result.outs is not None, "the provider returned no outputs"
    return result.outs
