"""The Caddy dynamic providers against a real Caddy: what a tenant's visitor sees after each provider call.

No engine: the provider methods are called the way the engine would (create(props), update(id, olds,
news), ...). Every test starts from a Caddy with no apps (the `caddy` fixture).
"""

from __future__ import annotations

import threading

import pytest

from components.providers import ProviderError
from components.providers.caddy import (
    CaddyRouteProvider,
    CaddyServerProvider,
    catch_all_id,
)
from fleet.bench.servers import free_port
from fleet.paths import PROJECT_ROOT
from tests.support.dynamic import outs_of

SERVER = "fleet"
NOT_FOUND = "tenant not found"


def server_props(caddy, **overrides):
    props = {
        "admin_url": caddy.admin_url,
        "server": SERVER,
        "listen": [caddy.http_listen],
        "automatic_https": False,
        "not_found_body": NOT_FOUND,
        "resource_name": "proxy-server",
    }
    props.update(overrides)
    return props


def route_props(caddy, tenant, hosts, upstreams, maintenance=False, **overrides):
    props = {
        "admin_url": caddy.admin_url,
        "server": SERVER,
        "route_id": f"tenant-{tenant}",
        "hosts": list(hosts),
        "upstreams": [upstream.address if hasattr(upstream, "address") else upstream for upstream in upstreams],
        "maintenance": maintenance,
        "resource_name": f"{tenant}-route",
    }
    props.update(overrides)
    return props


def create_route(props):
    """Create through the provider; return the outputs the engine would store."""
    result = CaddyRouteProvider().create(props)
    assert result.id == props["route_id"]
    return outs_of(result)


def route_ids(caddy):
    return [route.get("@id") for route in caddy.config(f"apps/http/servers/{SERVER}/routes")]


@pytest.fixture
def server(caddy):
    """The fleet server, created through the provider on the test's Caddy."""
    result = CaddyServerProvider().create(server_props(caddy))
    return outs_of(result)


# ---------------------------------------------------------------- the server


def test_unknown_hosts_get_the_not_found_page(caddy, server):
    response = caddy.get("nobody.example.test")

    assert (response.status, response.body) == (404, NOT_FOUND)
    assert route_ids(caddy) == [catch_all_id(SERVER)]
    assert caddy.config(f"apps/http/servers/{SERVER}/automatic_https") == {"disable": True}


def test_server_creation_keeps_the_rest_of_the_config_and_adopts_an_existing_server(caddy, server):
    # The admin listener the process was started with is still in place (the root was never replaced).
    assert caddy.config("admin")["listen"].endswith(f":{caddy.admin_port}")

    # Creating again (state lost, or a second run) adopts the live server instead of failing.
    again = CaddyServerProvider().create(server_props(caddy))
    assert again.id == SERVER
    assert route_ids(caddy) == [catch_all_id(SERVER)]


def test_server_update_patches_in_place_and_keeps_tenant_routes(caddy, server, upstream_factory):
    upstream = upstream_factory("santarita")
    create_route(route_props(caddy, "santarita", ["santarita.example.test"], [upstream]))
    new_port = free_port()
    news = server_props(caddy, listen=[f"127.0.0.1:{new_port}"], not_found_body="no such tenant")

    diff = CaddyServerProvider().diff(SERVER, server, news)
    assert diff.changes and diff.replaces == []
    CaddyServerProvider().update(SERVER, server, news)

    assert route_ids(caddy) == ["tenant-santarita", catch_all_id(SERVER)]
    assert caddy.get("santarita.example.test", port=new_port).body.startswith("santarita ")
    assert (caddy.get("other.example.test", port=new_port).status, caddy.get("other.example.test", port=new_port).body) == (404, "no such tenant")


def test_server_update_moves_a_misplaced_catch_all_back_to_the_end(caddy, server, upstream_factory):
    upstream = upstream_factory("late")
    # Someone appended a route after the catch-all: it can never match.
    caddy.admin(
        "POST",
        f"/config/apps/http/servers/{SERVER}/routes",
        {
            "@id": "tenant-late",
            "match": [{"host": ["late.example.test"]}],
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": upstream.address}]}],
            "terminal": True,
        },
    )
    assert caddy.get("late.example.test").status == 404

    CaddyServerProvider().update(SERVER, server, server_props(caddy))

    assert route_ids(caddy) == ["tenant-late", catch_all_id(SERVER)]
    assert caddy.get("late.example.test").status == 200


def test_server_diff_replaces_on_identity_and_is_quiet_when_identical(caddy, server):
    provider = CaddyServerProvider()

    assert provider.diff(SERVER, server, server_props(caddy)).changes is False
    renamed = provider.diff(SERVER, server, server_props(caddy, server="fleet2"))
    assert renamed.changes and renamed.replaces == ["server"] and renamed.delete_before_replace is True
    assert provider.diff(SERVER, server, server_props(caddy, automatic_https=True)).replaces == []


def test_server_read_and_delete(caddy, server):
    provider = CaddyServerProvider()
    read = provider.read(SERVER, server)
    assert read.id == SERVER
    assert outs_of(read)["listen"] == [caddy.http_listen] and outs_of(read)["not_found_body"] == NOT_FOUND
    assert outs_of(read)["automatic_https"] is False

    provider.delete(SERVER, server)
    assert caddy.config(f"apps/http/servers/{SERVER}") is None
    assert provider.read(SERVER, server).id == ""
    provider.delete(SERVER, server)  # already gone: fine


# ---------------------------------------------------------------- routes


def test_a_route_proxies_every_host_of_its_tenant(caddy, server, upstream_factory):
    upstream = upstream_factory("santarita")
    hosts = ["api-santarita.example.test", "santarita.customer.test"]

    outs = create_route(route_props(caddy, "santarita", hosts, [upstream]))

    assert outs["hosts"] == hosts and outs["upstreams"] == [upstream.address] and outs["maintenance"] is False
    for host in hosts:
        response = caddy.get(host, path="/health")
        assert response.status == 200
        assert response.body == f"santarita host={host} path=/health"
    assert route_ids(caddy) == ["tenant-santarita", catch_all_id(SERVER)]  # ahead of the catch-all
    assert caddy.get("nobody.example.test").status == 404


def test_several_upstreams_are_load_balanced(caddy, server, upstream_factory):
    first, second = upstream_factory("blue"), upstream_factory("green")
    create_route(route_props(caddy, "santarita", ["santarita.example.test"], [first, second]))

    answers = {caddy.get("santarita.example.test").body.split()[0] for _ in range(6)}

    assert answers == {"blue", "green"}


def test_adding_a_route_leaves_the_other_tenants_route_alone(caddy, server, upstream_factory):
    upstream_a, upstream_b = upstream_factory("alpha"), upstream_factory("bravo")
    create_route(route_props(caddy, "alpha", ["alpha.example.test"], [upstream_a]))
    alpha_before = caddy.admin("GET", "/id/tenant-alpha")

    answers: list[tuple[int, str]] = []
    resets: list[str] = []
    stop = threading.Event()

    def keep_asking_alpha() -> None:
        while not stop.is_set():
            try:
                response = caddy.get("alpha.example.test")
            except ConnectionError as error:
                resets.append(type(error).__name__)
            else:
                answers.append((response.status, response.body.split()[0]))

    watcher = threading.Thread(target=keep_asking_alpha)
    watcher.start()
    try:
        bravo = create_route(route_props(caddy, "bravo", ["bravo.example.test"], [upstream_b]))
        CaddyRouteProvider().update("tenant-bravo", bravo, route_props(caddy, "bravo", ["bravo.example.test", "b.example.test"], [upstream_b]))
        CaddyRouteProvider().delete("tenant-bravo", bravo)
        create_route(route_props(caddy, "bravo", ["bravo.example.test"], [upstream_b]))
    finally:
        stop.set()
        watcher.join()

    assert caddy.admin("GET", "/id/tenant-alpha") == alpha_before
    # Every answer alpha's visitors got came from alpha's upstream: never a 404, 502 or empty 200.
    assert answers and set(answers) == {(200, "alpha")}, f"alpha answered {sorted(set(answers))} while bravo changed"
    # Caddy 2.6 applies each change by starting new listeners (SO_REUSEPORT) and closing the old
    # ones; a connection still queued on a closing listener is reset by the kernel. That is Caddy's
    # reload, the same for every config change, not a routing gap: it stays a small fraction.
    assert len(resets) <= max(3, len(answers) // 10), f"{len(resets)} resets against {len(answers)} answers"
    assert caddy.get("bravo.example.test").body.startswith("bravo ")
    assert route_ids(caddy) == ["tenant-bravo", "tenant-alpha", catch_all_id(SERVER)]


def test_update_changes_hosts_upstreams_and_maintenance_in_place(caddy, server, upstream_factory):
    old_upstream, new_upstream = upstream_factory("old"), upstream_factory("new")
    provider = CaddyRouteProvider()
    olds = create_route(route_props(caddy, "santarita", ["santarita.example.test"], [old_upstream]))

    # hosts
    news = route_props(caddy, "santarita", ["santarita.example.test", "www.santarita.test"], [old_upstream])
    olds = outs_of(provider.update("tenant-santarita", olds, news))
    assert caddy.get("www.santarita.test").body.startswith("old ")

    # upstreams
    news = route_props(caddy, "santarita", ["www.santarita.test"], [new_upstream])
    olds = outs_of(provider.update("tenant-santarita", olds, news))
    assert caddy.get("www.santarita.test").body.startswith("new ")
    assert caddy.get("santarita.example.test").status == 404  # host dropped

    # maintenance on: every host answers 503, the upstreams are not called
    served = len(new_upstream.requests)
    news = route_props(caddy, "santarita", ["www.santarita.test"], [new_upstream], maintenance=True)
    olds = outs_of(provider.update("tenant-santarita", olds, news))
    response = caddy.get("www.santarita.test")
    assert (response.status, response.body) == (503, "maintenance")
    assert len(new_upstream.requests) == served
    # refresh while in maintenance keeps the recorded upstreams
    read = provider.read("tenant-santarita", olds)
    assert outs_of(read)["maintenance"] is True and outs_of(read)["upstreams"] == [new_upstream.address]
    assert provider.diff("tenant-santarita", outs_of(read), news).changes is False

    # maintenance off again
    news = route_props(caddy, "santarita", ["www.santarita.test"], [new_upstream])
    provider.update("tenant-santarita", olds, news)
    assert caddy.get("www.santarita.test").status == 200

    assert route_ids(caddy) == ["tenant-santarita", catch_all_id(SERVER)]  # same object, same place


def test_update_puts_back_a_route_that_went_missing(caddy, server, upstream_factory):
    upstream = upstream_factory("santarita")
    olds = create_route(route_props(caddy, "santarita", ["santarita.example.test"], [upstream]))
    caddy.admin("DELETE", "/id/tenant-santarita")

    CaddyRouteProvider().update("tenant-santarita", olds, route_props(caddy, "santarita", ["santarita.example.test"], [upstream]))

    assert caddy.get("santarita.example.test").status == 200
    assert route_ids(caddy) == ["tenant-santarita", catch_all_id(SERVER)]


def test_diff_replaces_on_identity_updates_in_place_otherwise(caddy):
    provider = CaddyRouteProvider()
    olds = route_props(caddy, "santarita", ["santarita.example.test"], ["127.0.0.1:8001"])

    identical = provider.diff("tenant-santarita", olds, dict(olds))
    assert identical.changes is False and identical.replaces == []

    hosts = provider.diff("tenant-santarita", olds, {**olds, "hosts": ["santarita.example.test", "x.test"]})
    assert hosts.changes is True and hosts.replaces == []

    for key, value in (("upstreams", ["127.0.0.1:8002"]), ("maintenance", True)):
        in_place = provider.diff("tenant-santarita", olds, {**olds, key: value})
        assert in_place.changes is True and in_place.replaces == [], key

    renamed = provider.diff("tenant-santarita", olds, {**olds, "route_id": "tenant-santa-rita"})
    assert renamed.changes is True and renamed.replaces == ["route_id"]
    assert renamed.delete_before_replace is False  # a new @id can exist beside the old one

    moved = provider.diff("tenant-santarita", olds, {**olds, "server": "fleet2"})
    assert moved.replaces == ["server"] and moved.delete_before_replace is True  # same @id: old one goes first

    other_caddy = provider.diff("tenant-santarita", olds, {**olds, "admin_url": "http://127.0.0.1:2020"})
    assert other_caddy.replaces == ["admin_url"]

    # A renamed Pulumi resource, or a missing optional flag in old state, is not a change.
    assert provider.diff("tenant-santarita", {**olds, "maintenance": None}, {**olds, "resource_name": "x"}).changes is False

    # During preview an input may be unknown: that is a (possible) change.
    from pulumi.runtime.rpc import UNKNOWN

    assert provider.diff("tenant-santarita", olds, {**olds, "upstreams": [UNKNOWN]}).changes is True
    assert provider.diff("tenant-santarita", olds, {**olds, "server": UNKNOWN}).replaces == ["server"]


def test_delete_removes_only_that_route_and_tolerates_a_missing_one(caddy, server, upstream_factory):
    upstream_a, upstream_b = upstream_factory("alpha"), upstream_factory("bravo")
    alpha = create_route(route_props(caddy, "alpha", ["alpha.example.test"], [upstream_a]))
    create_route(route_props(caddy, "bravo", ["bravo.example.test"], [upstream_b]))

    CaddyRouteProvider().delete("tenant-alpha", alpha)

    assert (caddy.get("alpha.example.test").status, caddy.get("alpha.example.test").body) == (404, NOT_FOUND)
    assert caddy.get("bravo.example.test").status == 200
    assert route_ids(caddy) == ["tenant-bravo", catch_all_id(SERVER)]
    CaddyRouteProvider().delete("tenant-alpha", alpha)  # already gone: no error


def test_create_adopts_an_existing_route_with_the_same_id(caddy, server, upstream_factory):
    old, new = upstream_factory("old"), upstream_factory("new")
    create_route(route_props(caddy, "santarita", ["santarita.example.test"], [old]))

    create_route(route_props(caddy, "santarita", ["santarita.example.test"], [new]))

    assert route_ids(caddy) == ["tenant-santarita", catch_all_id(SERVER)]  # replaced, not duplicated
    assert caddy.get("santarita.example.test").body.startswith("new ")


def test_parallel_operations_keep_every_route_intact(caddy, server, upstream_factory):
    # The engine runs several provider operations at once. Caddy's /id/ API resolves an @id to an array
    # index before taking its lock, so unserialized inserts beside PATCH /id/ land on the wrong route.
    from concurrent.futures import ThreadPoolExecutor

    upstream = upstream_factory("shared")
    provider = CaddyRouteProvider()

    def lifecycle(index: int) -> None:
        props = route_props(caddy, f"t{index}", [f"t{index}.example.test"], [upstream])
        outs = outs_of(provider.create(props))
        outs = outs_of(provider.update(props["route_id"], outs, {**props, "hosts": [f"t{index}.example.test", f"www.t{index}.example.test"]}))
        provider.read(props["route_id"], outs)
        if index % 4 == 0:
            provider.delete(props["route_id"], outs)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lifecycle, range(40)))

    kept = {f"tenant-t{index}" for index in range(40) if index % 4}
    ids = route_ids(caddy)
    assert sorted(ids[:-1]) == sorted(kept) and ids[-1] == catch_all_id(SERVER)
    for index in (1, 2, 39):
        route = caddy.admin("GET", f"/id/tenant-t{index}")
        assert route["match"] == [{"host": [f"t{index}.example.test", f"www.t{index}.example.test"]}]
    assert caddy.get("www.t39.example.test").status == 200
    assert caddy.get("t4.example.test").status == 404


def test_read_reports_drift_and_a_route_lost_in_a_restart_without_resume(caddy, server, upstream_factory):
    upstream = upstream_factory("santarita")
    route_provider, server_provider = CaddyRouteProvider(), CaddyServerProvider()
    outs = create_route(route_props(caddy, "santarita", ["santarita.example.test"], [upstream]))

    assert outs_of(route_provider.read("tenant-santarita", outs))["hosts"] == ["santarita.example.test"]
    caddy.admin("PATCH", "/id/tenant-santarita/match/0/host", ["hijacked.example.test"])
    assert outs_of(route_provider.read("tenant-santarita", outs))["hosts"] == ["hijacked.example.test"]
    route_provider.update("tenant-santarita", outs, route_props(caddy, "santarita", ["santarita.example.test"], [upstream]))

    # With --resume, Caddy comes back with the route.
    caddy.restart(resume=True)
    assert route_provider.read("tenant-santarita", outs).id == "tenant-santarita"
    assert caddy.get("santarita.example.test").status == 200

    # Without it, Caddy has forgotten both: refresh would drop them from the state...
    caddy.restart(resume=False)
    assert route_provider.read("tenant-santarita", outs).id == ""
    assert server_provider.read(SERVER, server).id == ""

    # ...and the next up creates them again.
    server_provider.create(server_props(caddy))
    create_route(route_props(caddy, "santarita", ["santarita.example.test"], [upstream]))
    assert caddy.get("santarita.example.test").body.startswith("santarita ")
    assert caddy.get("nobody.example.test").status == 404


# ---------------------------------------------------------------- failures


def test_an_unreachable_admin_api_fails_naming_the_resource(caddy):
    dead_admin = f"http://127.0.0.1:{free_port()}"
    props = route_props(caddy, "santarita", ["santarita.example.test"], ["127.0.0.1:8001"], admin_url=dead_admin)

    for call in (
        lambda: CaddyRouteProvider().create(props),
        lambda: CaddyRouteProvider().update("tenant-santarita", props, props),
        lambda: CaddyRouteProvider().read("tenant-santarita", props),
        lambda: CaddyRouteProvider().delete("tenant-santarita", props),
    ):
        with pytest.raises(ProviderError) as failure:
            call()
        message = str(failure.value)
        assert "santarita-route" in message and "tenant-santarita" in message
        assert "cannot reach the Caddy admin API" in message and dead_admin in message

    with pytest.raises(ProviderError, match=r"CaddyServer 'proxy-server': create of server 'fleet' failed: .*cannot reach"):
        CaddyServerProvider().create(server_props(caddy, admin_url=dead_admin))


def test_caddy_errors_carry_caddys_message(caddy, server):
    # A second server on the same address: Caddy refuses, and says why.
    with pytest.raises(ProviderError) as failure:
        CaddyServerProvider().create(server_props(caddy, server="second", resource_name="second-server"))
    message = str(failure.value)
    assert message.startswith("CaddyServer 'second-server': create of server 'second' failed:")
    assert "HTTP 500" in message and "listener address repeated" in message

    # A route for a server that does not exist.
    with pytest.raises(ProviderError) as failure:
        CaddyRouteProvider().create(route_props(caddy, "santarita", ["santarita.example.test"], ["127.0.0.1:8001"], server="nowhere"))
    message = str(failure.value)
    assert "CaddyRoute 'santarita-route' (@id tenant-santarita): create failed" in message
    assert "no server 'nowhere'" in message and "-> HTTP 500: loading new config" in message  # Caddy's own words follow


def test_an_id_used_in_another_server_is_not_adopted(caddy, server, upstream_factory):
    upstream = upstream_factory("other")
    CaddyServerProvider().create(server_props(caddy, server="other", listen=[f"127.0.0.1:{free_port()}"], resource_name="other-server"))
    create_route(route_props(caddy, "shared", ["shared.example.test"], [upstream], server="other"))
    other_routes = caddy.config("apps/http/servers/other/routes")

    with pytest.raises(ProviderError, match="'tenant-shared' is already used .* outside server 'fleet'"):
        CaddyRouteProvider().create(route_props(caddy, "shared", ["shared.example.test"], [upstream]))

    assert caddy.config("apps/http/servers/other/routes") == other_routes
    assert route_ids(caddy) == [catch_all_id(SERVER)]


def test_check_rejects_inputs_caddy_would_misread(caddy):
    provider = CaddyRouteProvider()
    good = route_props(caddy, "santarita", ["santarita.example.test"], ["127.0.0.1:8001"])
    assert provider.check({}, good).failures == []
    assert provider.check({}, {**good, "upstreams": [], "maintenance": True}).failures == []

    def failing(**changes):
        return sorted({failure.property for failure in provider.check({}, {**good, **changes}).failures})

    assert failing(route_id="tenant/../x") == ["route_id"]
    assert failing(route_id=catch_all_id(SERVER)) == ["route_id"]  # reserved for the server's catch-all
    assert failing(hosts=[]) == ["hosts"]
    assert failing(upstreams=[]) == ["upstreams"]
    assert failing(upstreams=["no-port"]) == ["upstreams"]
    assert failing(admin_url="127.0.0.1:2019") == ["admin_url"]
    assert CaddyServerProvider().check({}, server_props(caddy, listen=[])).failures[0].property == "listen"


def test_provider_processes_running_at_once_keep_every_route_intact(caddy, server, upstream_factory):
    # A fleet of stacks runs several engines, each with its own provider process, against one Caddy.
    import json as json_module
    import subprocess
    import sys

    upstream = upstream_factory("shared")
    script = (
        "import json, sys\n"
        "from components.providers.caddy import CaddyRouteProvider\n"
        "props_list = json.loads(sys.argv[1])\n"
        "provider = CaddyRouteProvider()\n"
        "for index, props in enumerate(props_list):\n"
        "    outs = provider.create(props).outs\n"
        "    outs = provider.update(props['route_id'], outs, {**props, 'hosts': props['hosts'] + ['www.' + props['hosts'][0]]}).outs\n"
        "    if index % 4 == 0:\n"
        "        provider.delete(props['route_id'], outs)\n"
    )
    batches = [[route_props(caddy, f"p{worker}x{index}", [f"p{worker}x{index}.example.test"], [upstream]) for index in range(12)] for worker in range(3)]
    workers = [
        subprocess.Popen([sys.executable, "-c", script, json_module.dumps(batch)], cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
        for batch in batches
    ]
    for process in workers:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    kept = {f"tenant-p{worker}x{index}" for worker in range(3) for index in range(12) if index % 4}
    ids = route_ids(caddy)
    assert sorted(ids[:-1]) == sorted(kept) and ids[-1] == catch_all_id(SERVER)
    for worker in range(3):
        route = caddy.admin("GET", f"/id/tenant-p{worker}x5")
        assert route["match"] == [{"host": [f"p{worker}x5.example.test", f"www.p{worker}x5.example.test"]}]
