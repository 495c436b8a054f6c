"""The GitHub Actions workflows are wired the way docs/pr-previews.md says (actionlint runs in the integration tier)."""

from __future__ import annotations

import yaml

from fleet.cli.main import build_parser
from fleet.paths import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"

# Inputs of pulumi/actions v7 (its action.yml); actionlint doesn't know this action's inputs, so check them here.
PULUMI_ACTIONS_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr", "comment-on-pr-number",
    "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel", "message", "config-map",
    "expect-no-changes", "diff", "replace", "target", "target-dependents", "policyPacks", "policyPackConfigs", "refresh",
    "upsert", "remove", "edit-pr-comment", "color", "exclude-protected", "plan", "suppress-outputs", "suppress-progress",
    "always-include-summary",
}


def _workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _steps(workflow: dict):
    for job_name, job in workflow["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            yield job_name, index, step


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
    action = next(i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("pulumi/actions") and "command" in step.get("with", {}))
    assert setup_python < install < action, names
    inputs = steps[action]["with"]
    assert inputs["command"] == "preview" and inputs["policyPacks"] == "policies" and inputs["policyPackConfigs"]
    assert inputs["comment-on-pr"] is True and inputs["edit-pr-comment"] is True and inputs["diff"] is True
    assert any("python -m fleet policy-config" in step.get("run", "") for step in steps[:action])
    # An environment with a stack per tenant previews its changed stacks only, through the front door.
    fleet_preview = next(step for step in steps if "python -m fleet preview --stack" in step.get("run", ""))
    assert "per_tenant == 'true'" in fleet_preview["if"] and "per_tenant != 'true'" in steps[action]["if"]


def test_deploy_fleet_workflow_runs_the_changed_stacks_as_a_matrix():
    workflow = _workflow("deploy-fleet.yml")
    jobs = workflow["jobs"]
    assert "python -m fleet changed" in " ".join(step.get("run", "") for step in jobs["changed"]["steps"])
    assert any("--platform" in step.get("run", "") for step in jobs["platform"]["steps"])
    tenants = jobs["tenants"]
    assert tenants["needs"] == ["changed", "platform"]
    assert tenants["strategy"]["fail-fast"] is False and "needs.changed.outputs.stacks" in tenants["strategy"]["matrix"]["stack"]
    assert tenants["concurrency"] == {"group": "deploy-${{ matrix.stack }}", "cancel-in-progress": False}
    # a tenant stack on a cluster gets its kubeconfig from the secret, through `fleet` (fleet.engine.kubeconfigs)
    assert workflow["env"]["FLEET_KUBECONFIGS"] == "${{ secrets.FLEET_KUBECONFIGS }}"


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
