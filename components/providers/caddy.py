"""Caddy, driven through its admin API: one HTTP server for the fleet and one route object per tenant hostname set.

A tenant's change is one admin-API call on its own `@id` objects: no restart, no other route touched.
Tenant routes go ahead of a terminal 404 catch-all; `read` notices routes a restart forgot
(docs/architecture.md, "Caddy").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.providers import (
    RESOURCE_NAME_KEY,
    FleetDynamicResource,
    failure_context,
    is_unknown,
    resource_label,
)
from fleet.errors import FleetError

__all__ = [
    "CaddyServer",
    "CaddyServerArgs",
    "CaddyServerProvider",
    "CaddyRoute",
    "CaddyRouteArgs",
    "CaddyRouteProvider",
    "CaddyAdminError",
    "ADMIN_TIMEOUT_SECONDS",
    "MAINTENANCE_BODY",
    "catch_all_id",
    "catch_all_route",
    "on_demand_policy",
    "on_demand_policy_id",
    "route_object",
    "server_object",
]

ADMIN_TIMEOUT_SECONDS = 30.0
"""Per-request timeout. Each config change makes Caddy re-provision its config; with many routes that takes a moment."""

MAINTENANCE_BODY = "maintenance"
"""Body of the 503 a route in maintenance answers with."""

DEFAULT_NOT_FOUND_BODY = "tenant not found"

# Used as URL path segments and Caddy @ids: keep them plain.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SERVERS_PATH = ("apps", "http", "servers")
# The value of an input not yet known during preview.


# ---------------------------------------------------------------- the JSON Caddy gets


_CATCH_ALL_SUFFIX = "-catch-all"


def catch_all_id(server: str) -> str:
    """The `@id` of a server's terminal catch-all route."""
    return f"{server}{_CATCH_ALL_SUFFIX}"


def catch_all_route(server: str, not_found_body: str) -> dict[str, Any]:
    """The last route of a server: every host no tenant route matched gets a 404 with `not_found_body`."""
    return {
        "@id": catch_all_id(server),
        "handle": [
            {
                "handler": "static_response",
                "status_code": 404,
                "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
                "body": not_found_body,
            }
        ],
        "terminal": True,
    }


def server_object(server: str, listen: list[str], automatic_https: bool, not_found_body: str) -> dict[str, Any]:
    """A new, empty fleet server: its listeners and the catch-all as its only route."""
    config: dict[str, Any] = {"listen": list(listen), "routes": [catch_all_route(server, not_found_body)]}
    if not automatic_https:
        config["automatic_https"] = {"disable": True}
    return config


def route_object(route_id: str, hosts: list[str], upstreams: list[str], maintenance: bool) -> dict[str, Any]:
    """A tenant's route: its hosts proxied to its upstreams (round robin), or a 503 while in maintenance."""
    if maintenance:
        handle: list[dict[str, Any]] = [
            {
                "handler": "static_response",
                "status_code": 503,
                "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Retry-After": ["120"]},
                "body": MAINTENANCE_BODY,
            }
        ]
    else:
        handle = [
            {
                "handler": "reverse_proxy",
                "upstreams": [{"dial": upstream} for upstream in upstreams],
                "load_balancing": {"selection_policy": {"policy": "round_robin"}},
            }
        ]
    return {"@id": route_id, "match": [{"host": list(hosts)}], "handle": handle, "terminal": True}


ON_DEMAND_ISSUERS = ("acme", "internal")
"""Who signs on-demand certificates: ACME (Caddy's default issuers, Let's Encrypt) or Caddy's internal CA (tests, private networks)."""
_TLS_AUTOMATION = ("apps", "tls", "automation")
_LOCAL_CA_TRUST = ("apps", "pki", "certificate_authorities", "local", "install_trust")


def on_demand_policy_id(server: str) -> str:
    """The `@id` of the fleet server's on-demand TLS automation policy."""
    return f"{server}-on-demand"


def on_demand_policy(server: str, issuer: str) -> dict[str, Any]:
    """A catch-all TLS automation policy: a certificate for any name at its first handshake, once the ask endpoint
    (`apps.tls.automation.on_demand.ask`) allows that name. Without subjects it must come last: it is appended."""
    policy: dict[str, Any] = {"@id": on_demand_policy_id(server), "on_demand": True}
    if issuer == "internal":
        policy["issuers"] = [{"module": "internal"}]
    return policy


# ---------------------------------------------------------------- the admin API


class CaddyAdminError(FleetError):
    """A request to Caddy's admin API failed: HTTP error (with Caddy's message) or no connection."""

    def __init__(self, method: str, url: str, status: Optional[int], message: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.message = message
        outcome = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{method} {url} -> {outcome}: {message}")

    def __reduce__(self):
        return (type(self), (self.method, self.url, self.status, self.message))

    @property
    def is_missing(self) -> bool:
        """True when Caddy says the object or a parent of the path does not exist."""
        return self.status == 404 or (self.status == 400 and "invalid traversal path" in self.message)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _config_path(*parts: str) -> str:
    return "/config/" + "/".join(_segment(part) for part in parts)


def _id_path(object_id: str) -> str:
    return "/id/" + _segment(object_id)


_NO_BODY = object()


# Methods whose repetition after a lost answer does no harm. (PUT inserts, POST appends, DELETE /id
# removes whichever object holds the @id by then.)
_REPEATABLE = frozenset({"GET", "PATCH", "DELETE"})
_ATTEMPTS = 3
_TRANSIENT_LOAD_ERROR = "decoding certificate metadata"
"""A config load that read a certificate another goroutine of Caddy was still writing (seen with quick successive reloads)."""


def _admin(admin_url: str, method: str, path: str, payload: Any = _NO_BODY) -> Any:
    """One admin-API request; returns the decoded JSON answer (None when empty).

    A refused connection (nothing was sent) is retried for every method, a reset one only for GET, PATCH and
    DELETE (a repeated DELETE finds the object gone: callers take that as done): Caddy restarts its admin
    endpoint on every config change, which resets requests in flight.
    """
    url = admin_url.rstrip("/") + path
    data = None
    headers = {"Accept": "application/json"}
    if payload is not _NO_BODY:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    for attempt in range(1, _ATTEMPTS + 1):
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT_SECONDS) as response:
                body = response.read()
            break
        except urllib.error.HTTPError as error:
            raw = error.read().decode(errors="replace").strip()
            try:
                message = json.loads(raw).get("error", raw)
            except (ValueError, AttributeError):
                message = raw
            if error.code == 500 and attempt < _ATTEMPTS and _TRANSIENT_LOAD_ERROR in str(message):
                # Caddy rolled the change back: the same request again is safe, once its storage settles.
                time.sleep(0.5 * 3 ** (attempt - 1))
                continue
            raise CaddyAdminError(method, url, error.code, message or error.reason) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            refused = isinstance(reason, ConnectionRefusedError)
            reset = isinstance(reason, ConnectionError) and not refused
            if attempt < _ATTEMPTS and (refused or (reset and method in _REPEATABLE)):
                time.sleep(0.1 * 3 ** (attempt - 1))
                continue
            raise CaddyAdminError(method, url, None, f"cannot reach the Caddy admin API: {reason}") from None
    if not body.strip():
        return None
    return json.loads(body)


# Caddy resolves /id/<id> to an array index, releases its lock, then applies the change at that index.
# A concurrent insert or delete in between shifts the array, and the change lands on another tenant's
# route (seen with 8 parallel operations: routes lost and duplicated). So every provider operation
# holds a per-Caddy lock for its whole sequence of requests: a thread lock within one provider process
# (which serves all dynamic resources of a `pulumi up`) and a file lock across processes, since a fleet of
# stacks runs several engines, each with its own provider process, against the same Caddy at once.
# Deploys from two hosts against one Caddy are not covered: they are serialized by the stacks' own locks
# only when they touch the same stack.
_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def _exclusive(admin_url: str) -> Iterator[None]:
    """Hold the lock of one Caddy (by admin URL) for the duration of the block, in this process and across processes."""
    key = urllib.parse.urlsplit(admin_url.rstrip("/")).geturl().lower()
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    path = os.path.join(tempfile.gettempdir(), f"tenant-fleet-caddy-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock")
    with lock, open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _operation(label: str, action: str, admin_url: str) -> Iterator[None]:
    """A provider action on one Caddy: exclusive, and failing with the resource's name and the action."""
    with failure_context(label, action), _exclusive(admin_url):
        yield


def _get_or_none(admin_url: str, path: str) -> Any:
    """GET, with a missing object (404, or a path whose parent is missing) as None."""
    try:
        return _admin(admin_url, "GET", path)
    except CaddyAdminError as error:
        if error.is_missing:
            return None
        raise


def _set_value(admin_url: str, path: str, value: Any) -> None:
    """Create or replace the value at a /config/ path (PUT would refuse to replace, PATCH to create)."""
    method = "PUT" if _get_or_none(admin_url, path) is None else "PATCH"
    _admin(admin_url, method, path, value)


def _ensure_value(admin_url: str, path: tuple[str, ...], value: Any) -> None:
    """Set the value at a /config/ path, creating the missing parents from the first missing level (never the root)."""
    for depth in range(len(path)):
        level = path[: depth + 1]
        if _get_or_none(admin_url, _config_path(*level)) is None:
            for key in reversed(path[depth + 1:]):
                value = {key: value}
            _admin(admin_url, "PUT", _config_path(*level), value)
            return
    if _get_or_none(admin_url, _config_path(*path)) != value:
        _admin(admin_url, "PATCH", _config_path(*path), value)


def _ensure_on_demand(admin_url: str, server: str, ask: Optional[str], issuer: str) -> None:
    """Make on-demand TLS match the inputs: the ask URL and the fleet's catch-all policy, or neither.

    Only what the fleet owns is touched: its policy (by `@id`) and, while that policy exists, the ask URL. The
    change is one write of `apps.tls.automation`: each write makes Caddy reload and start managing certificates,
    and a second write racing those (two quick reloads) can find a certificate half-written in its storage.
    """
    policy_id = on_demand_policy_id(server)
    automation = _get_or_none(admin_url, _config_path(*_TLS_AUTOMATION))
    current: dict[str, Any] = dict(automation) if isinstance(automation, dict) else {}
    policies = [policy for policy in current.get("policies") or [] if policy.get("@id") != policy_id]
    owned = len(policies) != len(current.get("policies") or [])
    wanted = dict(current)
    if ask:
        if issuer == "internal":
            # Caddy would otherwise install its root into the machine's trust store.
            _ensure_value(admin_url, _LOCAL_CA_TRUST, False)
        wanted["on_demand"] = {**(current.get("on_demand") or {}), "ask": ask}
        wanted["policies"] = [*policies, on_demand_policy(server, issuer)]  # a catch-all comes last
    elif owned:
        wanted.pop("on_demand", None)
        wanted["policies"] = policies
        if not policies:
            wanted.pop("policies")
    if wanted != current:
        _ensure_value(admin_url, _TLS_AUTOMATION, wanted)


# ---------------------------------------------------------------- inputs, as the providers see them


def _string_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _flag(value: Any, default: bool) -> bool:
    return default if value is None else bool(value)


def _label(kind: str, props: dict[str, Any], identity: Optional[str]) -> str:
    label = resource_label(kind, props)
    return f"{label} (@id {identity})" if identity else label


def _check_identifier(failures: list[CheckFailure], props: dict[str, Any], key: str) -> None:
    value = props.get(key)
    if is_unknown(value):
        return
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        failures.append(CheckFailure(key, f"{key} must be letters, digits, '.', '_' or '-' (got {value!r})"))


def _check_admin_url(failures: list[CheckFailure], props: dict[str, Any]) -> None:
    value = props.get("admin_url")
    if is_unknown(value):
        return
    if not isinstance(value, str) or urllib.parse.urlsplit(value).scheme not in ("http", "https"):
        failures.append(CheckFailure("admin_url", f"admin_url must be an http(s) URL such as http://127.0.0.1:2019 (got {value!r})"))


def _diff(
    olds: dict[str, Any],
    news: dict[str, Any],
    normalized_keys: dict[str, Any],
    replace_keys: tuple[str, ...],
    identity_keys: tuple[str, ...],
) -> DiffResult:
    """Compare normalized old outputs with new inputs; an unknown new value counts as a change.

    `identity_keys` are what makes two objects collide in one Caddy: while none of them changes, a
    replacement deletes the old object first.
    """
    changed = []
    for key, normalize in normalized_keys.items():
        new = news.get(key)
        if is_unknown(new) or normalize(olds.get(key)) != normalize(new):
            changed.append(key)
    replaces = [key for key in changed if key in replace_keys]
    # Create-then-delete would briefly hold two objects with the same identity in one Caddy (the same
    # @id twice, which Caddy accepts and then resolves to the wrong one, or two servers on the same
    # listen addresses): remove the old one first. Otherwise create-then-delete keeps the outage short.
    collides = not any(key in changed for key in identity_keys)
    return DiffResult(
        changes=bool(changed),
        replaces=replaces,
        stables=[],
        delete_before_replace=bool(replaces) and collides,
    )


def _same(value: Any) -> Any:
    return value


# ---------------------------------------------------------------- CaddyServer


@dataclass(frozen=True)
class CaddyServerArgs:
    """Inputs of CaddyServer."""

    admin_url: pulumi.Input[str]
    """Caddy's admin API, reachable from where the engine runs, e.g. `http://127.0.0.1:2019`. Changing it replaces the server."""
    server: pulumi.Input[str]
    """Name of the server under `apps.http.servers`, e.g. `fleet`. Changing it replaces the server (and with it, every route on it)."""
    listen: pulumi.Input[list[pulumi.Input[str]]]
    """Addresses the server listens on, e.g. `[":443"]` or `["127.0.0.1:18080"]`. Updated in place."""
    automatic_https: pulumi.Input[bool] = True
    """Let Caddy obtain certificates and redirect HTTP. False sets `automatic_https.disable` (local and test servers). Updated in place."""
    not_found_body: pulumi.Input[str] = DEFAULT_NOT_FOUND_BODY
    """Body of the 404 that hosts without a tenant route get (the catch-all route). Updated in place."""
    on_demand_ask: Optional[pulumi.Input[str]] = None
    """On-demand TLS: the URL Caddy asks (`?domain=<name>`) before issuing a certificate at a name's first handshake
    (`python -m fleet ask`); None: off. Needs automatic_https. Updated in place."""
    on_demand_issuer: pulumi.Input[str] = "acme"
    """Who signs on-demand certificates: `acme` or `internal` (Caddy's own CA). Updated in place."""


class CaddyServerProvider(ResourceProvider):
    """CRUD of one `apps.http.servers.<server>` object and its catch-all route."""

    _FIELDS = {
        "admin_url": lambda value: value,
        "server": lambda value: value,
        "listen": _string_list,
        "automatic_https": lambda value: _flag(value, True),
        "not_found_body": lambda value: DEFAULT_NOT_FOUND_BODY if value is None else str(value),
        "on_demand_ask": lambda value: value or None,
        "on_demand_issuer": lambda value: value or "acme",
    }
    _REPLACE = ("admin_url", "server")
    _IDENTITY = ("admin_url",)  # two servers in one Caddy would clash on their listen addresses

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        _check_admin_url(failures, news)
        _check_identifier(failures, news, "server")
        listen = news.get("listen")
        if not is_unknown(listen) and not _string_list(listen):
            failures.append(CheckFailure("listen", "listen needs at least one address, e.g. ':443'"))
        ask, issuer = news.get("on_demand_ask"), news.get("on_demand_issuer")
        if ask and not is_unknown(ask) and (not isinstance(ask, str) or urllib.parse.urlsplit(ask).scheme not in ("http", "https")):
            failures.append(CheckFailure("on_demand_ask", f"on_demand_ask must be an http(s) URL such as http://127.0.0.1:9123/ask (got {ask!r})"))
        if issuer and not is_unknown(issuer) and issuer not in ON_DEMAND_ISSUERS:
            failures.append(CheckFailure("on_demand_issuer", f"on_demand_issuer must be one of {', '.join(ON_DEMAND_ISSUERS)} (got {issuer!r})"))
        if ask and not is_unknown(ask) and news.get("automatic_https") is False:
            failures.append(CheckFailure("on_demand_ask", "on-demand TLS needs automatic_https: with it off the server speaks plain HTTP"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _diff(olds, news, self._FIELDS, self._REPLACE, self._IDENTITY)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with _operation(_label("CaddyServer", props, None), f"create of server {props.get('server')!r}", props["admin_url"]):
            outs = self._ensure(props)
        return CreateResult(outs["server"], outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with _operation(_label("CaddyServer", news, None), f"update of server {news.get('server')!r}", news["admin_url"]):
            return UpdateResult(self._ensure(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        server = props.get("server") or id_
        with _operation(_label("CaddyServer", props, None), f"read of server {server!r}", props["admin_url"]):
            live = _get_or_none(props["admin_url"], _config_path(*_SERVERS_PATH, server))
            if not isinstance(live, dict):
                return ReadResult("", {})  # gone: refresh drops it, the next up creates it
            policy = _get_or_none(props["admin_url"], _id_path(on_demand_policy_id(server)))
            ask = _get_or_none(props["admin_url"], _config_path(*_TLS_AUTOMATION, "on_demand", "ask")) if isinstance(policy, dict) else None
        catch_all = next((route for route in live.get("routes") or [] if route.get("@id") == catch_all_id(server)), None)
        not_found_body = None
        if catch_all:
            not_found_body = next((handler.get("body") for handler in catch_all.get("handle") or [] if handler.get("handler") == "static_response"), None)
        issuers = [issuer.get("module") for issuer in policy.get("issuers") or []] if isinstance(policy, dict) else []
        outs = dict(props)
        outs.update(
            listen=_string_list(live.get("listen")),
            automatic_https=not (live.get("automatic_https") or {}).get("disable", False),
            not_found_body=not_found_body,
            catch_all_id=catch_all_id(server) if catch_all else None,
            on_demand_ask=ask if isinstance(ask, str) else None,
            on_demand_issuer="internal" if issuers == ["internal"] else "acme",
        )
        return ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Removes this server object only (its routes go with it); a server already gone is fine.
        # Caddy answers 200 to a DELETE of a missing key.
        server = props["server"]
        with _operation(_label("CaddyServer", props, None), f"delete of server {server!r}", props["admin_url"]):
            try:
                _admin(props["admin_url"], "DELETE", _config_path(*_SERVERS_PATH, server))
            except CaddyAdminError as error:
                if not error.is_missing:
                    raise
            _ensure_on_demand(props["admin_url"], server, None, "acme")  # its on-demand policy, if it has one, goes with it

    # ------------------------------------------------------------ helpers

    @classmethod
    def _ensure(cls, props: dict[str, Any]) -> dict[str, Any]:
        """Make the live server match the inputs, creating it (and its parents) or patching it in place."""
        admin_url, server = props["admin_url"], props["server"]
        listen = _string_list(props.get("listen"))
        automatic_https = _flag(props.get("automatic_https"), True)
        not_found_body = cls._FIELDS["not_found_body"](props.get("not_found_body"))
        ask, issuer = cls._FIELDS["on_demand_ask"](props.get("on_demand_ask")), cls._FIELDS["on_demand_issuer"](props.get("on_demand_issuer"))
        # Before the server: with automatic HTTPS on, tenant hostnames would otherwise be sent to ACME at once.
        _ensure_on_demand(admin_url, server, ask, issuer)
        # Two servers created at once may race to create the shared parents: the loser retries.
        for attempt in range(3):
            try:
                created = cls._create_missing(admin_url, server, listen, automatic_https, not_found_body)
                break
            except CaddyAdminError as error:
                if attempt == 2 or "already exists" not in error.message:
                    raise
        if not created:
            cls._patch(admin_url, server, listen, automatic_https, not_found_body)
        return {
            "admin_url": admin_url,
            "server": server,
            "listen": listen,
            "automatic_https": automatic_https,
            "not_found_body": not_found_body,
            "catch_all_id": catch_all_id(server),
            "on_demand_ask": ask,
            "on_demand_issuer": issuer,
            RESOURCE_NAME_KEY: props.get(RESOURCE_NAME_KEY),
        }

    @staticmethod
    def _create_missing(admin_url: str, server: str, listen: list[str], automatic_https: bool, not_found_body: str) -> bool:
        """Create the server from the first missing level of apps/http/servers/<server>; False if it exists.

        Never writes the config root: that would drop the admin settings Caddy was started with.
        """
        value: Any = server_object(server, listen, automatic_https, not_found_body)
        path = (*_SERVERS_PATH, server)
        nested = [path[: depth + 1] for depth in range(len(path))]
        for level in nested:
            if _get_or_none(admin_url, _config_path(*level)) is None:
                for key in reversed(path[len(level):]):
                    value = {key: value}
                _admin(admin_url, "PUT", _config_path(*level), value)
                return True
        return False

    @staticmethod
    def _patch(admin_url: str, server: str, listen: list[str], automatic_https: bool, not_found_body: str) -> None:
        """Bring an existing server to the inputs, leaving its tenant routes alone."""
        base = (*_SERVERS_PATH, server)
        _set_value(admin_url, _config_path(*base, "listen"), listen)
        if automatic_https:
            _admin(admin_url, "DELETE", _config_path(*base, "automatic_https"))  # 200 when absent too
        else:
            _set_value(admin_url, _config_path(*base, "automatic_https"), {"disable": True})
        routes = _get_or_none(admin_url, _config_path(*base, "routes"))
        wanted = catch_all_route(server, not_found_body)
        if routes is None:
            _admin(admin_url, "PUT", _config_path(*base, "routes"), [wanted])
            return
        ids = [route.get("@id") for route in routes]
        if catch_all_id(server) in ids and ids[-1] == catch_all_id(server) and ids.count(catch_all_id(server)) == 1:
            if routes[-1] != wanted:
                _admin(admin_url, "PATCH", _id_path(catch_all_id(server)), wanted)
            return
        # Missing, duplicated or not last (something appended after it): put a single one at the end.
        # Tenant routes never move, so tenants keep answering meanwhile.
        for _ in range(ids.count(catch_all_id(server))):
            _admin(admin_url, "DELETE", _id_path(catch_all_id(server)))
        _admin(admin_url, "POST", _config_path(*base, "routes"), wanted)


class CaddyServer(FleetDynamicResource, module="caddy", name="CaddyServer"):
    """The fleet's HTTP server in a running Caddy, ending in a terminal 404 catch-all.

    Tenant routes (`CaddyRoute`) are separate resources; pass this resource's `server` output to them so
    they are created after it. Deleting it removes the server object and every route it holds.
    """

    admin_url: pulumi.Output[str]
    """The admin API the server was created through."""
    server: pulumi.Output[str]
    """Name of the server under `apps.http.servers`."""
    listen: pulumi.Output[list[str]]
    """Addresses the server listens on."""
    automatic_https: pulumi.Output[bool]
    """Whether Caddy's automatic HTTPS is on."""
    not_found_body: pulumi.Output[str]
    """Body of the catch-all 404."""
    catch_all_id: pulumi.Output[str]
    """`@id` of the catch-all route (`<server>-catch-all`)."""
    on_demand_ask: pulumi.Output[Optional[str]]
    """The ask URL of on-demand TLS, or None when it is off."""
    on_demand_issuer: pulumi.Output[str]
    """Who signs on-demand certificates: `acme` or `internal`."""

    def __init__(self, name: str, args: CaddyServerArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            "admin_url": args.admin_url,
            "server": args.server,
            "listen": args.listen,
            "automatic_https": args.automatic_https,
            "not_found_body": args.not_found_body,
            "catch_all_id": None,
            "on_demand_ask": args.on_demand_ask,
            "on_demand_issuer": args.on_demand_issuer,
            RESOURCE_NAME_KEY: name,
        }
        super().__init__(CaddyServerProvider(), name, props, opts)


# ---------------------------------------------------------------- CaddyRoute


@dataclass(frozen=True)
class CaddyRouteArgs:
    """Inputs of CaddyRoute."""

    admin_url: pulumi.Input[str]
    """Caddy's admin API, e.g. `http://127.0.0.1:2019`. Changing it replaces the route."""
    server: pulumi.Input[str]
    """Name of the server that holds the route; pass `CaddyServer.server` to order the route after its server. Changing it replaces the route."""
    route_id: pulumi.Input[str]
    """The route's Caddy `@id`, unique in the whole Caddy config, e.g. `tenant-santarita-api`. Changing it replaces the route."""
    hosts: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Hostnames the route answers for. Updated in place."""
    upstreams: pulumi.Input[Sequence[pulumi.Input[str]]] = field(default_factory=list)
    """Dial addresses (`host:port`) to proxy to; several are load-balanced round robin. Updated in place."""
    maintenance: pulumi.Input[bool] = False
    """When true every host of the route gets a static 503 "maintenance" instead of the proxy. Updated in place."""


class CaddyRouteProvider(ResourceProvider):
    """CRUD of one tenant route, addressed by its `@id`."""

    _FIELDS = {
        "admin_url": _same,
        "server": _same,
        "route_id": _same,
        "hosts": _string_list,
        "upstreams": _string_list,
        "maintenance": lambda value: _flag(value, False),
    }
    _REPLACE = ("admin_url", "server", "route_id")
    _IDENTITY = ("admin_url", "route_id")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        _check_admin_url(failures, news)
        _check_identifier(failures, news, "server")
        _check_identifier(failures, news, "route_id")
        route_id = news.get("route_id")
        if isinstance(route_id, str) and route_id.endswith(_CATCH_ALL_SUFFIX):
            failures.append(CheckFailure("route_id", f"route_id must not end in {_CATCH_ALL_SUFFIX!r}: that @id is the server's catch-all"))
        hosts, upstreams, maintenance = news.get("hosts"), news.get("upstreams"), news.get("maintenance")
        if not is_unknown(hosts) and not _string_list(hosts):
            failures.append(CheckFailure("hosts", "hosts needs at least one hostname"))
        if not is_unknown(upstreams):
            for upstream in _string_list(upstreams):
                if ":" not in upstream:
                    failures.append(CheckFailure("upstreams", f"upstream {upstream!r} needs a port, as host:port"))
            if not _string_list(upstreams) and not is_unknown(maintenance) and not _flag(maintenance, False):
                failures.append(CheckFailure("upstreams", "upstreams needs at least one host:port unless maintenance is on"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _diff(olds, news, self._FIELDS, self._REPLACE, self._IDENTITY)

    def create(self, props: dict[str, Any]) -> CreateResult:
        route_id = props["route_id"]
        with _operation(_label("CaddyRoute", props, route_id), "create", props["admin_url"]):
            outs = self._outputs(props)
            wanted = route_object(route_id, outs["hosts"], outs["upstreams"], outs["maintenance"])
            if _get_or_none(props["admin_url"], _id_path(route_id)) is None:
                self._insert(props["admin_url"], props["server"], wanted)
            else:
                # Already there (an earlier run whose state was lost, or an import): adopt it in place,
                # but only from our own server; @ids are global to the Caddy config.
                self._require_in_server(props["admin_url"], props["server"], route_id)
                _admin(props["admin_url"], "PATCH", _id_path(route_id), wanted)
        return CreateResult(route_id, outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        route_id = news["route_id"]
        with _operation(_label("CaddyRoute", news, route_id), "update", news["admin_url"]):
            outs = self._outputs(news)
            wanted = route_object(route_id, outs["hosts"], outs["upstreams"], outs["maintenance"])
            try:
                _admin(news["admin_url"], "PATCH", _id_path(route_id), wanted)
            except CaddyAdminError as error:
                if error.status != 404:
                    raise
                self._insert(news["admin_url"], news["server"], wanted)  # gone from Caddy: put it back
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        route_id = props.get("route_id") or id_
        with _operation(_label("CaddyRoute", props, route_id), "read", props["admin_url"]):
            live = _get_or_none(props["admin_url"], _id_path(route_id))
        if not isinstance(live, dict):
            return ReadResult("", {})  # gone (e.g. Caddy restarted without --resume): refresh drops it
        outs = dict(props)
        matchers = live.get("match") or [{}]
        outs["hosts"] = _string_list(matchers[0].get("host"))
        handlers = live.get("handle") or [{}]
        handler = handlers[0]
        if handler.get("handler") == "reverse_proxy":
            outs["maintenance"] = False
            outs["upstreams"] = [upstream.get("dial") for upstream in handler.get("upstreams") or []]
        elif handler.get("handler") == "static_response" and str(handler.get("status_code")) == "503":
            # A route in maintenance does not carry its upstreams: keep the recorded ones.
            outs["maintenance"] = True
        else:
            # Someone replaced the handler: report no upstreams so the next up restores it.
            outs["maintenance"] = False
            outs["upstreams"] = []
        return ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Only ever DELETE /id/<route_id>: nothing else in Caddy is touched. A missing route is fine.
        # Caddy tolerates duplicate @ids (DELETE removes one), hence the bounded loop.
        route_id = props["route_id"]
        with _operation(_label("CaddyRoute", props, route_id), "delete", props["admin_url"]):
            for _ in range(10):
                try:
                    _admin(props["admin_url"], "DELETE", _id_path(route_id))
                except CaddyAdminError as error:
                    if error.status == 404:
                        return
                    raise

    # ------------------------------------------------------------ helpers

    @classmethod
    def _outputs(cls, props: dict[str, Any]) -> dict[str, Any]:
        outs = {key: normalize(props.get(key)) for key, normalize in cls._FIELDS.items()}
        outs[RESOURCE_NAME_KEY] = props.get(RESOURCE_NAME_KEY)
        return outs

    @staticmethod
    def _require_in_server(admin_url: str, server: str, route_id: str) -> None:
        """Fail unless the route with this @id is one of `server`'s routes (a rare path: it lists them all)."""
        routes = _get_or_none(admin_url, _config_path(*_SERVERS_PATH, server, "routes"))
        if routes is None:
            raise LookupError(f"no server {server!r} with routes at {admin_url} (create its CaddyServer first)")
        if not any(route.get("@id") == route_id for route in routes):
            raise LookupError(
                f"@id {route_id!r} is already used by another object in the Caddy config at {admin_url}, "
                f"outside server {server!r}; @ids must be unique across the whole config"
            )

    @staticmethod
    def _insert(admin_url: str, server: str, route: dict[str, Any]) -> None:
        """Insert at index 0, so the route sits ahead of the catch-all (appending would put it after)."""
        try:
            try:
                _admin(admin_url, "PUT", _config_path(*_SERVERS_PATH, server, "routes", "0"), route)
            except CaddyAdminError as error:
                if error.status is not None:
                    raise
                # The answer was lost (admin endpoint restarting): insert again only if it did not land.
                if _get_or_none(admin_url, _id_path(route["@id"])) is None:
                    _admin(admin_url, "PUT", _config_path(*_SERVERS_PATH, server, "routes", "0"), route)
        except CaddyAdminError as error:
            # Caddy's own message for a missing server is a confusing decode error: say what is wrong.
            if error.is_missing or _get_or_none(admin_url, _config_path(*_SERVERS_PATH, server, "routes")) is None:
                raise LookupError(
                    f"no server {server!r} with routes at {admin_url} (create its CaddyServer first, or run "
                    f"`pulumi refresh` if Caddy lost its config): {error}"
                ) from error
            raise


class CaddyRoute(FleetDynamicResource, module="caddy", name="CaddyRoute"):
    """One tenant's route in the fleet server: its hosts proxied to its upstreams, or a 503 in maintenance."""

    admin_url: pulumi.Output[str]
    """The admin API the route was created through."""
    server: pulumi.Output[str]
    """The server that holds the route."""
    route_id: pulumi.Output[str]
    """The route's Caddy `@id`."""
    hosts: pulumi.Output[list[str]]
    """Hostnames the route answers for."""
    upstreams: pulumi.Output[list[str]]
    """Dial addresses the route proxies to."""
    maintenance: pulumi.Output[bool]
    """Whether the route answers 503 maintenance."""

    def __init__(self, name: str, args: CaddyRouteArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            "admin_url": args.admin_url,
            "server": args.server,
            "route_id": args.route_id,
            "hosts": args.hosts,
            "upstreams": args.upstreams,
            "maintenance": args.maintenance,
            RESOURCE_NAME_KEY: name,
        }
        super().__init__(CaddyRouteProvider(), name, props, opts)
