"""A Caddy that labels its metrics by host (2.9+, `apps.http.metrics.per_host`), for the per-tenant HTTP figures.

Debian's Caddy 2.6.2 has no host label on its HTTP metrics, so the tests that need one use an installed
Caddy of CADDY_VERSION or build it once from its Go module into .cache/tools/ (about 2 minutes cold on
2 cores, seconds with Go's build cache warm), as tests/integration/test_workflow_lint.py does for actionlint.
Everything else keeps using Debian's Caddy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fleet.paths import PROJECT_ROOT

CADDY_VERSION = "2.10.2"


def _version_of(binary: str) -> str:
    try:
        result = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return result.stdout.split()[0].lstrip("v") if result.returncode == 0 and result.stdout.strip() else ""


def caddy_with_host_metrics() -> Path:
    """A caddy binary of CADDY_VERSION: $FLEET_CADDY_METRICS_BIN, one on PATH, or built from its Go module."""
    for candidate in (os.environ.get("FLEET_CADDY_METRICS_BIN"), shutil.which("caddy")):
        if candidate and _version_of(candidate) == CADDY_VERSION:
            return Path(candidate)
    tools = PROJECT_ROOT / ".cache" / "tools" / f"caddy-v{CADDY_VERSION}"
    binary = tools / "caddy"
    stamp = tools / "VERSION"  # `caddy version` says "unknown" when built by `go install`: the stamp is written after a good build
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == CADDY_VERSION:
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"Caddy {CADDY_VERSION} (per-host metrics) is not installed and there is no Go to build it", pytrace=False)
    tools.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "install", f"github.com/caddyserver/caddy/v2/cmd/caddy@v{CADDY_VERSION}"],
        env={**os.environ, "GOBIN": str(tools), "GOFLAGS": "-mod=mod -buildvcs=false"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"building caddy {CADDY_VERSION} failed:\n{result.stderr[-3000:]}"
    stamp.write_text(CADDY_VERSION + "\n")
    return binary
