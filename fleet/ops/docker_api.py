"""The Docker Engine API as the operations read it: GET a JSON document over unix:// or tcp://.

One transport for `fleet status` (the container listing) and `fleet metrics` (per-container stats,
fleet.ops.docker_stats). Only what the standard library has: no Docker SDK to install on an exporter host.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import Any

from fleet.errors import FleetError

FLEET_CONTAINERS = "managed-by=tenant-fleet"
"""The label filter that selects the fleet's containers (fleet.model.derive.labels sets it on every one)."""


class DockerAPIError(FleetError):
    """Docker answered, but not with 200: `status` is its HTTP status (404: no such container)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def docker_connection(url: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to the Docker daemon at `url` (unix:///path or tcp://host:port); ValueError for other schemes."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "unix":
        return _UnixHTTPConnection(parsed.path, timeout)
    if parsed.scheme in ("tcp", "http"):
        return http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 2375, timeout=timeout)
    raise ValueError(f"docker host {url!r}: only unix:// and tcp:// are supported here")


def docker_get(url: str, path: str, *, timeout: float = 5.0) -> Any:
    """GET `path` (with its query) from the Docker daemon at `url`, decoded from JSON.

    ConnectionError when the daemon can't be reached (or is too slow), DockerAPIError when it refuses."""
    connection = docker_connection(url, timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except OSError as error:
        raise ConnectionError(f"no Docker at {url}: {error.strerror or error}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise DockerAPIError(response.status, f"docker API answered {response.status} to GET {path.split('?', 1)[0]}: {body[:200].decode(errors='replace')}")
    return json.loads(body)


def docker_containers(url: str, *, timeout: float = 5.0) -> list[dict]:
    """The fleet's containers (label managed-by=tenant-fleet), running or not, from the Docker Engine API at `url`."""
    filters = urllib.parse.quote(json.dumps({"label": [FLEET_CONTAINERS]}))
    return docker_get(url, f"/containers/json?all=1&filters={filters}", timeout=timeout)
