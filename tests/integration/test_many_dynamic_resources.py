"""A whole fleet of dynamic resources fits in one process (the pulumi 3.259.0 pickler leak is contained).

Here rather than in the unit tier because it takes seconds: 1,100 dynamic resources under mocks.

pulumi 3.259.0's `serialize_provider` wraps `pickle._Pickler._batch_setitems` again on every dynamic
resource it constructs, so about 900 resources in one process ended in RecursionError.
`components.providers.FleetDynamicResource` restores the pickler after each construction.
"""

from __future__ import annotations

import contextvars
import pickle
import time

import pulumi
import pulumi.dynamic

from components.providers import FleetDynamicResource
from components.providers.caddy import (
    CaddyRoute,
    CaddyRouteArgs,
    CaddyServer,
    CaddyServerArgs,
)
from fleet.sdk_internals import pickler_wrapper_depth

RESOURCES = 1_100  # comfortably past the ~900 where the unpatched SDK failed


class _Mocks(pulumi.runtime.Mocks):
    """Echo the inputs back as outputs; every resource gets `<name>-id`."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class _StatefulProvider(pulumi.dynamic.ResourceProvider):
    """A provider whose pickled form contains a dict: that is where the leaked wrappers recurse."""

    def __init__(self) -> None:
        super().__init__()
        self.settings = {"purpose": "probe"}

    def create(self, props):
        return pulumi.dynamic.CreateResult("probe", props)


class _Probe(FleetDynamicResource):
    def __init__(self, name: str) -> None:
        super().__init__(_StatefulProvider(), name, {"value": name})


def _in_own_context(function):
    """Run `function` in a copy of the current context: pulumi's settings are context variables, so
    the mocks set here do not leak into tests that run later in this process."""
    return contextvars.copy_context().run(function)


def test_more_than_a_thousand_dynamic_resources_in_one_process():
    original = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
    depth_before = pickler_wrapper_depth()  # other tests in this process may have left plain dynamic resources' wrappers
    checked: list[int] = []

    def build_fleet():
        pulumi.runtime.set_mocks(_Mocks(), project="tenant-fleet", stack="recursion", preview=False)

        @pulumi.runtime.test
        def program():
            server = CaddyServer(
                "proxy",
                CaddyServerArgs(admin_url="http://127.0.0.1:2019", server="fleet", listen=[":443"]),
            )
            routes = [
                CaddyRoute(
                    f"tenant{index:04d}-route-api",
                    CaddyRouteArgs(
                        admin_url="http://127.0.0.1:2019",
                        server=server.server,
                        route_id=f"tenant-tenant{index:04d}-api",
                        hosts=[f"api-tenant{index:04d}.example.test"],
                        upstreams=[f"127.0.0.1:{20000 + index}"],
                    ),
                )
                for index in range(RESOURCES)
            ]
            # Pickling a dict after the fleet recursed once per earlier resource: RecursionError
            # without the workaround (CaddyRoute's own provider pickles no dict, so it did not show).
            _Probe("probe-after-fleet")
            # The wrapper stack did not grow with the fleet.
            assert pickler_wrapper_depth() == depth_before
            assert pickle._Pickler._batch_setitems is original  # type: ignore[attr-defined]

            def check(values):
                ids, hosts = values[: len(routes)], values[len(routes):]
                assert ids[0] == "tenant0000-route-api-id" and ids[-1] == f"tenant{RESOURCES - 1:04d}-route-api-id"
                assert hosts[-1] == [f"api-tenant{RESOURCES - 1:04d}.example.test"]
                checked.append(len(ids))

            return pulumi.Output.all(*[route.id for route in routes], *[route.hosts for route in routes]).apply(check)

        program()

    started = time.monotonic()
    _in_own_context(build_fleet)
    elapsed = time.monotonic() - started

    assert checked == [RESOURCES], "the outputs were never resolved, so nothing was checked"
    assert pickle._Pickler._batch_setitems is original  # type: ignore[attr-defined]
    assert elapsed < 60, f"{RESOURCES} mocked resources took {elapsed:.1f}s"


