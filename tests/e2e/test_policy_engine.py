"""The CrossGuard pack, run by the real engine, gives the offline plan's verdict on the project's own resources.

A code change that slipped a stray hostname into one tenant's Caddy route (simulated by a stack
transformation around the real program) must be stopped by `preview` with the policy pack, with
the same policy and message that `fleet plan` reports offline; the clean program passes both.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pulumi
import pytest

from fleet import program as program_module
from fleet.bench.servers import free_port
from fleet.engine import driver as engine
from fleet.model.load import load_fleet
from fleet.offline import mocks as offline_mocks
from fleet.offline.plan import evaluate
from fleet.offline.policies import check, has_mandatory, policy_config
from fleet.paths import PROJECT_ROOT
from tests.unit.graph import FleetWorkspace

ROUTE_TYPE = "pulumi-python:dynamic/caddy:CaddyRoute"
STRAY = "stray.example.org"


def _stray_host(args: pulumi.ResourceTransformationArgs):
    if args.type_ == ROUTE_TYPE and args.name == "gurupi-route-frontend":
        props = cast(dict[str, Any], args.props)  # a dict at run time; the SDK annotates it as a read-only Mapping
        props["hosts"] = [*props["hosts"], STRAY]
        return pulumi.ResourceTransformationResult(props, args.opts)
    return None


def _with_stray_host(original):
    def run(selection=None, tenants_dir=None, **options):
        pulumi.runtime.register_stack_transformation(_stray_host)
        return original(selection, tenants_dir, **options)

    return run


@pytest.fixture(scope="module")
def setup(tmp_path_factory, caddy_process):
    workspace = FleetWorkspace(tmp_path_factory.mktemp("fleet"))
    config = copy.deepcopy(workspace.config)
    config["layers"] = ["proxy"]
    config["proxy"] = {
        "admin_url": caddy_process.admin_url,
        "server": "fleet",
        "listen": [f"127.0.0.1:{free_port()}"],
        "automatic_https": False,
        "external_upstreams": {"backend": "127.0.0.1:9", "frontend": "127.0.0.1:9"},
    }
    fleet = load_fleet(workspace.tenants_dir, config)
    config_file = tmp_path_factory.mktemp("policy") / "policy-config.json"
    config_file.write_text(json.dumps(policy_config(fleet, evaluate(config, stack="policy", tenants_dir=workspace.tenants_dir))))
    return workspace, config, fleet, config_file, tmp_path_factory.mktemp("state")


def _preview(setup, program):
    workspace, config, _fleet, config_file, backend = setup
    settings = {f"fleet:{key}": value for key, value in config.items() if key != "server_passwords"}
    stack = engine.stack_for("policy", lambda: program(None, workspace.tenants_dir), backend_dir=backend, config=settings)
    return engine.run("preview", stack, on_output=None, policy_packs=[PROJECT_ROOT / "policies"], policy_pack_configs=[str(config_file)])


def test_clean_program_passes_offline_and_under_the_engine(setup):
    workspace, config, fleet, _config_file, _backend = setup
    assert not has_mandatory(check(evaluate(config, stack="policy", tenants_dir=workspace.tenants_dir), fleet))
    summary = _preview(setup, program_module.fleet_program)
    assert summary["changes"].get("create", 0) > 0


def test_a_stray_hostname_is_stopped_with_the_same_verdict_both_ways(setup, monkeypatch):
    workspace, config, fleet, _config_file, _backend = setup
    original = program_module.fleet_program
    monkeypatch.setattr(offline_mocks, "fleet_program", _with_stray_host(original))  # the program the offline plan runs
    offline = [v for v in check(evaluate(config, stack="policy", tenants_dir=workspace.tenants_dir), fleet) if v.mandatory]
    assert [(v.policy, v.tenant) for v in offline] == [("hostnames-allowed", "gurupi")]
    assert STRAY in offline[0].message

    with pytest.raises(engine.EngineError) as blocked:
        _preview(setup, _with_stray_host(original))
    assert blocked.value.reason == "policy-violation"
    text = str(blocked.value) + blocked.value.stdout
    assert "hostnames-allowed" in text
    assert offline[0].message in text
