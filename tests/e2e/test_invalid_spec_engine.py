"""Under the real engine, an invalid spec fails the run with every problem listed, no traceback, nothing declared."""

from __future__ import annotations

import pytest

from fleet.engine import driver as engine
from fleet.program import fleet_program
from tests.unit.graph import FleetWorkspace


def test_invalid_spec_fails_the_preview_with_every_problem_and_declares_nothing(tmp_path):
    workspace = FleetWorkspace(tmp_path / "fleet")
    workspace.edit("gurupi", plan="platinum")
    workspace.edit("novaroma", brandig={"color": "#000000"})
    config = {f"fleet:{key}": value for key, value in workspace.config.items() if key != "server_passwords"}
    config["fleet:layers"] = ["proxy"]
    config["fleet:proxy"] = {"admin_url": "http://127.0.0.1:9", "listen": ["127.0.0.1:9"], "automatic_https": False, "external_upstreams": {"backend": "127.0.0.1:9"}}

    def program() -> None:
        fleet_program(None, workspace.tenants_dir)  # the engine ignores a program's result

    stack = engine.stack_for("invalid", program, backend_dir=tmp_path / "state", config=config)
    with pytest.raises(engine.EngineError) as failure:
        engine.run("up", stack, on_output=None)
    message = str(failure.value)
    assert "tenants/gurupi.yaml: tenant gurupi: plan: unknown plan 'platinum'" in message
    assert "tenants/novaroma.yaml: tenant novaroma: brandig: unknown key (check its spelling)" in message
    assert "Traceback" not in failure.value.stdout + failure.value.stderr
    deployment = stack.export_stack().deployment
    assert deployment is not None
    resources = deployment.get("resources") or []
    assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == []
