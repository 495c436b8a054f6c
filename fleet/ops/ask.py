"""The `ask` endpoint of Caddy's on-demand TLS: 200 for a hostname of an active tenant, 4xx for anything else.

Caddy calls `GET <ask>?domain=<name>` before it obtains a certificate for a name first seen in a TLS handshake;
only a 200 lets it go on. The answer comes from the tenant registry (`fleet:registry`: rows that are `active` with
status `active`, by `hostnames` or `custom_domains`) or, when the stack has no registry, from the tenant files.
Suspended, removed (inactive row) and purged tenants' names are refused. Answers are kept `cache_seconds`, so
a flood of handshakes for one name costs one lookup (docs/on-demand-tls.md).
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import psycopg
from psycopg import sql

from fleet.errors import FleetError
from fleet.model.hostnames import active_hostnames, normalised_hostname
from fleet.model.load import load_fleet
from fleet.model.spec import Fleet

LOG = logging.getLogger("fleet.ask")
ASK_PATH = "/ask"
HEALTH_PATH = "/healthz"
DEFAULT_CACHE_SECONDS = 10.0


class SourceUnavailable(FleetError):
    """The registry (or the tenant files) could not be read: the name is refused, and the next ask tries again."""


class HostnameSource(Protocol):
    """Where the ask endpoint learns which names belong to active tenants."""

    description: str

    def tenant_of(self, hostname: str) -> Optional[str]:
        """The active tenant serving this (normalised) hostname, or None."""


class FileSource:
    """Active tenants' hostnames from the tenant files, re-read at most every `reload_seconds`.

    A reload that fails (a file being edited, an invalid spec) keeps the last good set and is logged.
    """

    def __init__(self, load: Callable[[], Fleet], description: str, reload_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.description = description
        self._load = load
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._hostnames: Optional[dict[str, str]] = None
        self._loaded_at = 0.0

    @classmethod
    def from_files(cls, tenants_dir: Path, config: dict, display: str, reload_seconds: float = 30.0) -> "FileSource":
        def load() -> Fleet:
            fleet = load_fleet(tenants_dir, dict(config), root=tenants_dir.parent, environment_display=display)
            return fleet.select(set(fleet.environment.tenants)) if fleet.environment.tenants is not None else fleet

        return cls(load, f"tenant files in {tenants_dir}", reload_seconds)

    def tenant_of(self, hostname: str) -> Optional[str]:
        with self._lock:
            if self._hostnames is None or self._clock() - self._loaded_at >= self._reload_seconds:
                try:
                    self._hostnames = active_hostnames(self._load())
                except FleetError as error:
                    if self._hostnames is None:
                        raise SourceUnavailable(f"{self.description}: {str(error).splitlines()[0]}") from None
                    LOG.warning("keeping the last good tenant files: %s", str(error).splitlines()[0])
                self._loaded_at = self._clock()
            return self._hostnames.get(hostname)


class RegistrySource:
    """Active tenants' hostnames from the registry table, one indexed query per (uncached) name."""

    def __init__(self, connect: Callable[[], psycopg.Connection], table: str, description: str):
        self.description = description
        self._connect = connect
        self._query = sql.SQL(
            "SELECT name FROM {} WHERE active AND status = 'active' AND (%(host)s = ANY(hostnames) OR %(host)s = ANY(custom_domains)) LIMIT 1"
        ).format(sql.Identifier(table))

    @classmethod
    def from_inventory(cls, inventory) -> "RegistrySource":
        registry = inventory.environment.registry
        if registry is None:
            raise FleetError("the stack config sets no fleet:registry: answer from the tenant files (--source files)")
        access = inventory.admin_access(registry.server)
        return cls(lambda: access.connect(registry.database), registry.table, f"registry {registry.database}.{registry.table} on {access.label}")

    def tenant_of(self, hostname: str) -> Optional[str]:
        try:
            with self._connect() as connection:
                row = connection.execute(self._query, {"host": hostname}).fetchone()
        except psycopg.Error as error:
            raise SourceUnavailable(f"{self.description}: {str(error).strip().splitlines()[0] if str(error).strip() else error}") from None
        return None if row is None else str(row[0])


@dataclass(frozen=True)
class Answer:
    """What the endpoint says about one name: an HTTP status and a one-line reason."""

    status: int
    reason: str
    hostname: Optional[str] = None
    tenant: Optional[str] = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


class AskService:
    """Decides on names, with a small cache of recent answers (refusals included) in front of the source."""

    def __init__(self, source: HostnameSource, cache_seconds: float = DEFAULT_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.source = source
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Answer]] = {}
        self._lock = threading.Lock()

    def answer(self, raw: Optional[str]) -> Answer:
        """200 for an active tenant's hostname; 400 malformed; 403 not an active tenant's; 503 the source is down."""
        hostname = normalised_hostname(raw)
        if hostname is None:
            return Answer(400, f"not a hostname: {raw!r}" if raw else "no domain given (?domain=<hostname>)")
        now = self._clock()
        with self._lock:
            cached = self._cache.get(hostname)
            if cached is not None and now - cached[0] < self._cache_seconds:
                return cached[1]
        try:
            tenant = self.source.tenant_of(hostname)
        except SourceUnavailable as error:
            return Answer(503, f"can't tell: {error}", hostname)  # not cached: the next handshake asks again
        answer = (
            Answer(200, f"{hostname}: tenant {tenant}", hostname, tenant)
            if tenant is not None
            else Answer(403, f"{hostname}: not a hostname of an active tenant", hostname)
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[hostname] = (now, answer)
        return answer


def _handler(service: AskService) -> type[http.server.BaseHTTPRequestHandler]:
    class AskHandler(http.server.BaseHTTPRequestHandler):
        server_version = "tenant-fleet-ask"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            parts = urllib.parse.urlsplit(self.path)
            if parts.path == HEALTH_PATH:
                self._reply(200, {"ok": True, "source": service.source.description})
                return
            if parts.path != ASK_PATH:
                self._reply(404, {"error": f"no such path; ask at {ASK_PATH}?domain=<hostname>"})
                return
            domains = urllib.parse.parse_qs(parts.query, keep_blank_values=True).get("domain", [])
            answer = service.answer(domains[0] if len(domains) == 1 else None) if len(domains) <= 1 else Answer(400, "one domain per ask")
            LOG.info("ask %s -> %s (%s)", domains[0] if domains else "-", answer.status, answer.reason)
            self._reply(answer.status, {"allowed": answer.allowed, "hostname": answer.hostname, "tenant": answer.tenant, "reason": answer.reason})

        def do_POST(self) -> None:  # noqa: N802
            self._reply(405, {"error": "GET only"})

        def _reply(self, status: int, document: dict) -> None:
            body = (json.dumps(document) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
            LOG.debug(format, *args)

    return AskHandler


class AskServer:
    """The ask endpoint on `host:port` (a thread per request, stdlib only); `port` 0 picks a free one."""

    def __init__(self, service: AskService, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self._server = http.server.ThreadingHTTPServer((host, port), _handler(service))
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}{ASK_PATH}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> "AskServer":
        """Serve in a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="fleet-ask", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "AskServer":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def parse_listen(value: str) -> tuple[str, int]:
    """`127.0.0.1:9123` -> ('127.0.0.1', 9123); `[::1]:9123` too."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise FleetError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9123")
    return host, int(port)
