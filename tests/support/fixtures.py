"""Fixtures that start real PostgreSQL and Caddy servers on loopback, and always stop them.

A missing binary fails the test with the package to install: these tests are the proof that the
providers work against real servers, so silently skipping them would hide a broken setup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Protocol, Self, TypeVar, TypeVarTuple, cast

import pytest

from fleet.bench.servers import (
    CaddyServerProcess,
    MissingServerBinary,
    PostgresCluster,
    UpstreamHTTPServer,
)


class _Server(Protocol):
    """What `running` needs of a server: the servers of fleet.bench.servers and fleet.bench.prometheus."""

    def start(self) -> Self: ...

    def stop(self) -> object: ...


Servers = TypeVarTuple("Servers")
StartedServer = TypeVar("StartedServer", bound=_Server)


def _start_or_fail(server: StartedServer) -> StartedServer:
    try:
        return server.start()
    except MissingServerBinary as error:
        pytest.fail(str(error), pytrace=False)


@contextmanager
def running(*servers: *Servers) -> Iterator[tuple[*Servers]]:
    """Start these servers in order (a missing binary fails the test, naming its package) and stop every one
    that started on the way out, also when a later one fails to start. For fixtures of any scope:
    `with running(PostgresCluster("secret")) as (cluster,): yield cluster`."""
    with ExitStack() as started:
        # A TypeVarTuple can't be bounded, so the servers are seen as `_Server`s here: each caller gets
        # back its own types, in order, e.g. `(cluster, caddy)` as `(PostgresCluster, CaddyServerProcess)`.
        for server in cast(tuple[_Server, ...], servers):
            _start_or_fail(server)
            started.callback(server.stop)
        yield servers


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster shared by the session; superuser `postgres` with `admin_password`."""
    with running(PostgresCluster("fleet-session-superuser")) as (cluster,):
        yield cluster


@pytest.fixture
def postgres_cluster_factory() -> Iterator[Callable[..., PostgresCluster]]:
    """Start extra clusters for one test (e.g. two servers for a move): `factory(admin_password=..., **kw)`."""
    started: list[PostgresCluster] = []

    def factory(admin_password: str = "fleet-test-superuser", **kwargs) -> PostgresCluster:
        cluster = PostgresCluster(admin_password, **kwargs)
        started.append(cluster)
        return _start_or_fail(cluster)

    try:
        yield factory
    finally:
        for cluster in started:
            cluster.stop()


@pytest.fixture(scope="module")
def caddy_process() -> Iterator[CaddyServerProcess]:
    """A Caddy process for the module (admin API on a free loopback port)."""
    with running(CaddyServerProcess()) as (caddy,):
        yield caddy


@pytest.fixture
def caddy(caddy_process: CaddyServerProcess) -> CaddyServerProcess:
    """The module's Caddy, running (a test may have stopped it) and with no apps configured."""
    if not caddy_process.running:
        caddy_process.start(resume=False)
    caddy_process.reset()
    return caddy_process


@pytest.fixture
def upstream_factory() -> Iterator[Callable[[str], UpstreamHTTPServer]]:
    """Start tiny upstream HTTP servers for one test: `factory(name)` answers `<name> host=... path=...`."""
    started: list[UpstreamHTTPServer] = []

    def factory(name: str) -> UpstreamHTTPServer:
        upstream = UpstreamHTTPServer(name).start()
        started.append(upstream)
        return upstream

    try:
        yield factory
    finally:
        for upstream in started:
            upstream.stop()


def require_engine() -> None:
    """Fail the test (not skip it) when the engine is not built: `./scripts/setup` builds it."""
    from fleet.engine import driver as engine

    try:
        engine.check_engine()
    except engine.EngineMissing as exc:
        pytest.fail(str(exc), pytrace=False)
