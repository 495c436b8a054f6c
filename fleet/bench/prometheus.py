"""A real Prometheus on loopback for tests: temp config and storage, short scrape and evaluation intervals.

Beside fleet.bench.servers (PostgreSQL, Caddy, Redis): the binary is Debian's `prometheus` package, which
./scripts/setup installs; everything it writes lives in its temp folder, removed on `stop()`.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any, Optional

import yaml

from fleet.bench.servers import LOOPBACK, MissingServerBinary, ServerStartError, _log_tail, end_process, free_port


def find_prometheus() -> Path:
    """The prometheus binary on PATH (Debian's `prometheus` package)."""
    found = shutil.which("prometheus")
    if found is None:
        raise MissingServerBinary("the prometheus binary was not found on PATH. Install it with: apt-get install prometheus")
    return Path(found)


class PrometheusServerProcess:
    """`prometheus` scraping the given targets every `interval` seconds and evaluating the rule files as often."""

    def __init__(self, targets: list[str], rule_files: list[Path], *, interval: float = 1.0, startup_timeout: float = 30.0) -> None:
        self.targets = list(targets)
        """`host:port` of each exporter to scrape (loopback)."""
        self.rule_files = [Path(path) for path in rule_files]
        self.interval = interval
        self.startup_timeout = startup_timeout
        self.port: Optional[int] = None
        self.base_dir: Optional[Path] = None
        self._process: Optional[subprocess.Popen] = None
        self._log_file: Optional[IO[bytes]] = None

    @property
    def url(self) -> str:
        assert self.port is not None, "prometheus not started"
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None, "prometheus not started"
        return self.base_dir / "prometheus.log"

    def start(self) -> "PrometheusServerProcess":
        """Write the config, start the server and wait until it is ready; returns self."""
        binary = find_prometheus()
        self.base_dir = Path(tempfile.mkdtemp(prefix="fleet-prometheus-"))
        atexit.register(self.stop)
        seconds = f"{self.interval:g}s"
        config = {
            "global": {"scrape_interval": seconds, "scrape_timeout": seconds, "evaluation_interval": seconds},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [{"job_name": "tenant-fleet", "static_configs": [{"targets": self.targets}]}],
        }
        (self.base_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        for _attempt in range(5):
            self.port = free_port()
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - Prometheus writes to it until stop() closes it
            self._process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={self.base_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.base_dir / 'data'}",
                    f"--web.listen-address={LOOPBACK}:{self.port}",
                    "--log.level=warn",
                ],
                cwd=self.base_dir, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )
            if self._wait_ready():
                return self
            self._terminate()
            if "address already in use" not in _log_tail(self.log_path):
                break
        log = _log_tail(self.log_path)
        self.stop()
        raise ServerStartError(f"prometheus did not become ready within {self.startup_timeout}s; log:\n{log}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        return False

    def api(self, path: str, **params: str) -> Any:
        """GET `/api/v1/<path>` and return its `data`."""
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            document = json.loads(response.read())
        if document.get("status") != "success":
            raise RuntimeError(f"prometheus /api/v1/{path}: {document}")
        return document["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (`/api/v1/alerts`); an inactive alert is not listed."""
        return self.api("alerts")["alerts"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        return self.api("query", query=expression)["result"]

    def _terminate(self) -> None:
        process, self._process = self._process, None
        end_process(process, grace=15)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        """Stop Prometheus and remove its folder (config, storage, log). Safe to call twice."""
        atexit.unregister(self.stop)
        self._terminate()
        base_dir, self.base_dir = self.base_dir, None
        if base_dir is not None:
            shutil.rmtree(base_dir, ignore_errors=True)

    def __enter__(self) -> "PrometheusServerProcess":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
