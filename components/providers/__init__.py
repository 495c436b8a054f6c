"""The project's own Pulumi dynamic providers, one module per provider, and what they share.

Provider classes are module-level and get everything as inputs; dill pickles them by reference, so
module and class names here are contracts that deployed stacks depend on (docs/architecture.md).
Shared here: the base resource, `ProviderError`/`failure_context`, `is_unknown`, `resource_label`, `in_place_diff`,
`check_server_entry`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional

import pulumi
import pulumi.dynamic
from pulumi.runtime import rpc

from fleet.errors import FleetError
from fleet.sdk_internals import preserved_pickler

__all__ = [
    "FleetDynamicResource",
    "ProviderError",
    "failure_context",
    "is_unknown",
    "resource_label",
    "in_place_diff",
    "check_server_entry",
    "RESOURCE_NAME_KEY",
]

RESOURCE_NAME_KEY = "resource_name"
"""Input that carries the Pulumi logical name into the provider, which otherwise never learns it.

Providers ignore it in `diff`: a new logical name is a new URN, hence a new resource, anyway.
"""

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


class ProviderError(FleetError):
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


def is_unknown(value: Any) -> bool:
    """Whether an input as a provider receives it holds a value not known yet (during preview), at any depth."""
    if isinstance(value, str):
        return value == rpc.UNKNOWN
    if isinstance(value, dict):
        return any(is_unknown(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(item) for item in value)
    return False


def resource_label(kind: str, props: dict[str, Any], *, quoted: bool = True) -> str:
    """`Kind 'logical-name'` for messages (just `Kind` when the name is not among the inputs)."""
    name = props.get(RESOURCE_NAME_KEY)
    if not name:
        return kind
    return f"{kind} {name!r}" if quoted else f"{kind} {name}"


def in_place_diff(olds: Mapping[str, Any], news: Mapping[str, Any], tracked: Iterable[str]) -> pulumi.dynamic.DiffResult:
    """A diff that never replaces: a change when any `tracked` input differs or isn't known yet (others are ignored)."""
    changed = [key for key in tracked if is_unknown(news.get(key)) or olds.get(key) != news.get(key)]
    return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)


def check_server_entry(news: Mapping[str, Any], failures: list) -> None:
    """`check`: the `server` input names an entry of the `servers` input (once both are known)."""
    servers, server = news.get("servers"), news.get("server")
    if not is_unknown(servers) and not is_unknown(server) and (not isinstance(servers, Mapping) or server not in servers):
        failures.append(pulumi.dynamic.CheckFailure("servers", f"servers has no entry for server {server!r}"))
