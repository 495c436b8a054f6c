"""The project's own Pulumi dynamic providers, one module per provider, and what they share.

Everything a provider needs arrives as inputs: the provider classes are module-level and hold no
clients, connections or secrets. dill pickles a module-level class *by reference*
(`components.providers.caddy.CaddyRouteProvider`), so the state stores that dotted path, not the code:
the dynamic-provider process (`pulumi-resource-pulumi-python`) must be able to import this package
(run it with the repository root on PYTHONPATH), and module and class names here are contracts
that existing stacks depend on. Renaming one breaks refresh and delete of resources already deployed.

What lives here:

* `FleetDynamicResource`: the base class of every dynamic resource in this package. It carries the
  workaround for the pulumi 3.259.0 pickler bug (see `preserved_pickler`).
* `ProviderError` and `failure_context`: every provider failure is re-raised naming the resource
  and the action, so `pulumi up` says *which* tenant's route failed and why.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from typing import Any, Optional

import pulumi
import pulumi.dynamic

__all__ = [
    "FleetDynamicResource",
    "ProviderError",
    "failure_context",
    "preserved_pickler",
    "RESOURCE_NAME_KEY",
]

RESOURCE_NAME_KEY = "resource_name"
"""Input that carries the Pulumi logical name into the provider, which otherwise never learns it.

Providers ignore it in `diff`: a new logical name is a new URN, hence a new resource, anyway.
"""

# The pure-Python pickler that `pulumi.dynamic.dynamic.serialize_provider` patches (it swaps
# `pickle.Pickler` for `pickle._Pickler` while serializing).
_PATCHED_PICKLER = pickle._Pickler  # type: ignore[attr-defined]
_PATCHED_ATTRIBUTES = ("_batch_setitems", "save_dict")


@contextlib.contextmanager
def preserved_pickler() -> Iterator[None]:
    """Restore `pickle._Pickler._batch_setitems` and `save_dict` to what they were on entry.

    pulumi 3.259.0's `serialize_provider` (run by every `pulumi.dynamic.Resource.__init__`) wraps the
    *current* `_batch_setitems` in a sorting wrapper and never restores it. Each dynamic resource
    therefore adds one call level to every dict pickled afterwards; around 900 resources in one
    process end in RecursionError. Restoring the attributes after each construction keeps the
    wrapper depth at one: the sorting (what the SDK wants, for a stable `__provider` string) still
    applies inside each serialization, because the SDK re-installs its wrapper on every call.
    """
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


class FleetDynamicResource(pulumi.dynamic.Resource):
    """Base of the project's dynamic resources: constructs through the SDK without its pickler leak."""

    def __init__(
        self,
        provider: pulumi.dynamic.ResourceProvider,
        name: str,
        props: dict[str, Any],
        opts: Optional[pulumi.ResourceOptions] = None,
    ) -> None:
        with preserved_pickler():
            super().__init__(provider, name, props, opts)


class ProviderError(Exception):
    """A dynamic-provider action failed; the message names the resource, the action and the cause."""

    def __init__(self, resource: str, action: str, detail: str) -> None:
        self.resource = resource
        self.action = action
        self.detail = detail
        super().__init__(f"{resource}: {action} failed: {detail}")

    def __reduce__(self):  # keep it picklable although __init__ takes three arguments
        return (type(self), (self.resource, self.action, self.detail))


@contextlib.contextmanager
def failure_context(resource: str, action: str) -> Iterator[None]:
    """Re-raise any failure inside the block as a `ProviderError` naming `resource` and `action`.

    An inner `ProviderError` passes through unchanged, so nesting does not stack prefixes.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as error:  # noqa: BLE001 - the point is to annotate every failure
        detail = str(error) or type(error).__name__
        raise ProviderError(resource, action, detail) from error
