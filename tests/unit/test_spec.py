"""Validation: bad input gets every problem at once, naming file, tenant and field, and nothing is declared."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleet.errors import SpecError
from fleet.paths import PROJECT_ROOT


def problems_of(workspace) -> list[str]:
    with pytest.raises(SpecError) as caught:
        workspace.evaluate()
    return [str(problem) for problem in caught.value.problems]


def test_shipped_tenants_are_valid(dev_plan):
    assert set(dev_plan.specs) == {"santarita", "novaroma", "pirapora", "catasaltas", "gurupi"}
    assert {spec.plan for spec in dev_plan.specs.values()} == {"basic", "pro", "enterprise"}


def test_unknown_key_is_an_error_naming_file_tenant_and_field(workspace):
    data = workspace.read("gurupi")
    data["brandig"] = {"color": "#000000"}
    workspace.write("gurupi", data)
    assert problems_of(workspace) == ["tenants/gurupi.yaml: tenant gurupi: brandig: unknown key (check its spelling)"]


def test_every_problem_is_reported_at_once(workspace):
    workspace.edit("gurupi", plan="platinum")
    workspace.edit("novaroma", database={"server": "shared-9"}, branding={"color": "purple"})
    workspace.edit("santarita", overrides={"backend": {"memory_mb": 4096}})
    problems = problems_of(workspace)
    assert "tenants/gurupi.yaml: tenant gurupi: plan: unknown plan 'platinum'; plans: basic, enterprise, pro" in problems
    assert any(p.startswith("tenants/novaroma.yaml: tenant novaroma: branding.color:") and "hex color" in p for p in problems)
    assert len(problems) == 4, problems
    assert "tenants/novaroma.yaml: tenant novaroma: database.server: unknown server 'shared-9'; servers: dedicated-1, shared-1" in problems
    assert "tenants/santarita.yaml: tenant santarita: overrides.backend.memory_mb: 4096 exceeds plan pro's max 1024" in problems


def test_name_must_match_file_and_be_a_safe_label(workspace):
    workspace.edit("gurupi", name="gurupi2")
    data = workspace.read("novaroma")
    data["name"] = "Nova_Roma"
    workspace.write("novaroma", data)
    problems = problems_of(workspace)
    assert "tenants/gurupi.yaml: tenant gurupi2: name: must equal the file name ('gurupi')" in problems
    assert any(p.startswith("tenants/novaroma.yaml: tenant Nova_Roma: name:") and "DNS label" in p for p in problems)


@pytest.mark.parametrize("name", ["www", "api", "admin", "app"])
def test_reserved_names_are_refused(workspace, name):
    data = workspace.read("gurupi")
    data["name"] = name
    workspace.tenant_file("gurupi").unlink()
    workspace.write(name, data)
    assert problems_of(workspace) == [f"tenants/{name}.yaml: tenant {name}: name: '{name}' is reserved for the platform"]


def test_derived_identifiers_must_fit_postgres_limit(workspace):
    name = "a" + "b" * 55  # a valid DNS label whose role name tenant_<name>_app exceeds 63 bytes
    data = workspace.read("gurupi")
    data["name"] = name
    workspace.write(name, data)
    problems = problems_of(workspace)
    assert any(f"tenant {name}: name: derived role name" in p and "exceeds 63 bytes" in p for p in problems), problems


def test_hostnames_are_unique_across_the_fleet_case_insensitive(workspace):
    workspace.edit("gurupi", domains=["PRECOS.santarita.mg.gov.br"])
    problems = problems_of(workspace)
    assert any("domains: hostname precos.santarita.mg.gov.br is already used by tenant" in p for p in problems), problems


def test_a_custom_domain_cannot_take_another_tenants_generated_hostname(workspace):
    workspace.edit("gurupi", domains=["app-santarita.fleet.localhost"])
    assert any("app-santarita.fleet.localhost is already used" in p for p in problems_of(workspace))


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        ("name: gurupi\nplan: [pro\n", "malformed YAML"),
        ("name: gurupi\nplan: pro\nplan: basic\n", "duplicate key 'plan'"),
        ("- a list\n", "must be a mapping of keys"),
    ],
)
def test_broken_yaml_is_reported_with_the_file(workspace, content, message):
    workspace.tenant_file("gurupi").write_text(content)
    problems = problems_of(workspace)
    assert len(problems) == 1 and problems[0].startswith("tenants/gurupi.yaml: tenant gurupi:") and message in problems[0], problems


def test_wrong_types_are_reported(workspace):
    workspace.edit("gurupi", rotation="soon", domains="gurupi.to.gov.br")
    problems = problems_of(workspace)
    assert any("tenant gurupi: rotation:" in p for p in problems) and any("tenant gurupi: domains:" in p for p in problems), problems


def test_invalid_stack_config_names_the_stack_file(workspace):
    workspace.config["servers"]["shared-1"]["port"] = "five"
    workspace.config["docker_host"].pop("cpus")
    problems = problems_of(workspace)
    assert any(p.startswith("Pulumi.dev.yaml: fleet:servers.shared-1.port:") for p in problems), problems
    assert "Pulumi.dev.yaml: fleet:docker_host.cpus: required" in problems


def test_plan_catalog_bounds_must_cover_the_plan(workspace):
    catalog = workspace.tenants_dir / "_plans.yaml"
    catalog.write_text(
        catalog.read_text().replace(
            "backend: {cpu: 0.5, memory_mb: 512, replicas: 1}\n      frontend: {cpu: 0.25",
            "backend: {cpu: 0.1, memory_mb: 512, replicas: 1}\n      frontend: {cpu: 0.25",
            1,
        )
    )
    assert any(p.startswith("tenants/_plans.yaml: plans.basic:") and "exceeds its own max" in p for p in problems_of(workspace))


def test_nothing_is_declared_when_the_spec_is_invalid(workspace):
    workspace.edit("gurupi", plan="platinum")
    from fleet.offline import mocks as plan_module

    recorded = []
    original = plan_module.RecordingMonitor.RegisterResource

    def spy(self, request):
        recorded.append(request.type)
        return original(self, request)

    plan_module.RecordingMonitor.RegisterResource = spy  # type: ignore[method-assign]  # the spy stands in for one run
    try:
        with pytest.raises(SpecError):
            workspace.evaluate()
    finally:
        plan_module.RecordingMonitor.RegisterResource = original  # type: ignore[method-assign]  # restored
    assert [t for t in recorded if t != "pulumi:pulumi:Stack"] == []


def test_cli_reports_invalid_spec_without_traceback_and_exits_2(workspace):
    workspace.edit("gurupi", plan="platinum", status="paused")
    result = subprocess.run(
        [sys.executable, "-m", "fleet", "plan", "--tenants", str(workspace.tenants_dir)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "gurupi.yaml: tenant gurupi: status:" in result.stderr
    assert "gurupi.yaml: tenant gurupi: plan: unknown plan 'platinum'" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------- hostile and careless input (hardening)


@pytest.mark.parametrize("domain", ["fleet.localhost", "evil.fleet.localhost", "x.app-gurupi.fleet.localhost", "app-itabira.fleet.localhost"])
def test_a_custom_domain_under_the_base_domain_is_refused(workspace, domain):
    # The base domain itself, any name under it, and a future tenant's app-/api- name: all the platform's.
    workspace.edit("santarita", domains=[domain])
    problems = problems_of(workspace)
    assert any(
        p.startswith("tenants/santarita.yaml: tenant santarita: domains: custom domain") and f"{domain} lies under the base domain fleet.localhost" in p
        for p in problems
    ), problems


def test_a_squatted_name_is_pinned_on_the_squatter_not_on_the_tenant_that_comes_later(workspace):
    workspace.edit("santarita", domains=["app-itabira.fleet.localhost"])
    workspace.write("itabira", {"name": "itabira", "display_name": "Itabira", "plan": "basic", "database": {"server": "shared-1"}})
    problems = problems_of(workspace)
    assert problems and all(p.startswith("tenants/santarita.yaml") or "already used" in p for p in problems), problems
    assert any(p.startswith("tenants/santarita.yaml: tenant santarita: domains: custom domain") for p in problems)


def test_a_file_that_is_not_utf8_is_a_problem_naming_it(workspace):
    workspace.tenant_file("gurupi").write_bytes("name: gurupi\ndisplay_name: Prefeitura de Gurupi \xe9\n".encode("latin-1"))
    assert problems_of(workspace) == ["tenants/gurupi.yaml: tenant gurupi: not UTF-8 text (byte 48): save the file as UTF-8"]


def test_an_oversized_file_is_refused_before_it_is_parsed(workspace):
    workspace.tenant_file("gurupi").write_text("name: gurupi\n" + "# padding\n" * 40000)
    (problem,) = problems_of(workspace)
    assert problem.startswith("tenants/gurupi.yaml: tenant gurupi: the file is") and "at most 262,144 are read" in problem


def test_a_hostile_file_gets_a_bounded_list_of_problems(workspace):
    data = workspace.read("gurupi")
    data.update({f"junk{index}": index for index in range(2000)})
    workspace.write("gurupi", data)
    problems = problems_of(workspace)
    assert len(problems) == 21
    assert problems[-1] == "tenants/gurupi.yaml: tenant gurupi: ... and 1980 more problem(s) in this file"


@pytest.mark.parametrize(
    ("admin_url", "accepted"),
    [
        ("http://127.0.0.1:2019", True),
        ("http://localhost:2019", True),
        ("http://[::1]:2019", True),
        ("https://fleet:s3cret@proxy.internal:2019", True),
        ("http://10.0.0.5:2019", False),
        ("http://proxy.internal:2019", False),
        ("https://proxy.internal:2019", False),  # https, but anyone may call it
    ],
)
def test_the_proxy_admin_endpoint_must_be_loopback_or_authenticated(workspace, admin_url, accepted):
    workspace.config["proxy"] = {**workspace.config.get("proxy", {}), "admin_url": admin_url}
    if accepted:
        workspace.evaluate()
    else:
        problems = problems_of(workspace)
        assert any("fleet:proxy.admin_url" in p and "would expose Caddy's admin API" in p for p in problems), problems
