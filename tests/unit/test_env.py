"""Env vars and secrets declared in plans and tenant files: templates over derived facts, validated, secret where they must be."""

from __future__ import annotations

import pytest
import yaml

from fleet.errors import SpecError
from fleet.model import env_template
from tests.unit.graph import CONTAINER, PASSWORD, env_of, of_type


def backend(evaluation, tenant: str):
    return next(c for c in of_type(evaluation, CONTAINER, tenant) if c.name == f"{tenant}-backend-0")


def frontend(evaluation, tenant: str):
    return next(c for c in of_type(evaluation, CONTAINER, tenant) if c.name == f"{tenant}-frontend-0")


def edit_plan(workspace, plan: str, **changes) -> None:
    path = workspace.tenants_dir / "_plans.yaml"
    data = yaml.safe_load(path.read_text())
    data["plans"][plan].update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def problems_of(workspace) -> list[str]:
    with pytest.raises(SpecError) as raised:
        workspace.evaluate()
    return [str(problem) for problem in raised.value.problems]


def test_templates_render_facts_and_a_tenant_wins_over_its_plan(workspace):
    edit_plan(workspace, "pro", env={"backend": {"SITE_NAME": "Plan default", "DB_HOST": "${db.host}", "DB_NAME": "${db.name}"}})
    workspace.edit("gurupi", env={"backend": {"SITE_NAME": "${tenant.display_name} ($$5/mo)"}, "frontend": {"PUBLIC_API": "${urls.api}/v1"}})
    evaluation = workspace.evaluate()
    env = env_of(backend(evaluation, "gurupi"))
    assert env["SITE_NAME"] == "Prefeitura de Gurupi ($5/mo)"
    assert env["DB_HOST"] == "127.0.0.1" and env["DB_NAME"] == "tenant_gurupi"
    assert env_of(frontend(evaluation, "gurupi"))["PUBLIC_API"] == "http://api-gurupi.fleet.localhost/v1"
    assert env_of(backend(evaluation, "santarita"))["SITE_NAME"] == "Plan default"  # same plan, no override
    assert "SITE_NAME" not in env_of(backend(evaluation, "novaroma"))  # another plan


def test_a_value_built_from_a_secret_fact_is_a_secret_and_separate_db_variables_are_possible(workspace):
    workspace.edit("gurupi", env={"backend": {"DB_USER": "${db.user}", "DB_PASS": "${db.password}", "DIRECT_URL": "${db.url}"}})
    evaluation = workspace.evaluate()
    container = backend(evaluation, "gurupi")
    env = env_of(container)
    assert env["DB_USER"] == "tenant_gurupi_app"
    assert env["DIRECT_URL"] == env["DATABASE_URL"] and env["DB_PASS"] in env["DATABASE_URL"]
    assert "envs" in container.secret_inputs and container.inputs["envs"] == "[secret]"


def test_generated_and_config_secrets_are_per_tenant_secrets_that_rotate(workspace):
    edit_plan(workspace, "pro", secrets={"backend": {"NEXTAUTH_SECRET": {"generate": 48}}})
    workspace.config["app_secrets"] = {"smtp_password": "[secret]"}
    workspace.edit("gurupi", secrets={"backend": {"SMTP_PASSWORD": {"config": "smtp_password"}}}, rotation=3)
    evaluation = workspace.evaluate()
    generated = {p.name: p for p in of_type(evaluation, PASSWORD) if "-secret-" in p.name}
    assert set(generated) == {"gurupi-secret-NEXTAUTH_SECRET", "santarita-secret-NEXTAUTH_SECRET"}
    assert generated["gurupi-secret-NEXTAUTH_SECRET"].raw_inputs["length"] == 48
    assert generated["gurupi-secret-NEXTAUTH_SECRET"].raw_inputs["keepers"] == {"rotation": "3"}
    env = env_of(backend(evaluation, "gurupi"))
    assert "NEXTAUTH_SECRET" in env and env["SMTP_PASSWORD"] == "[secret]"
    assert "SMTP_PASSWORD" not in env_of(backend(evaluation, "santarita"))


def test_every_mistake_is_named_with_its_file_tenant_and_field_at_once(workspace):
    edit_plan(workspace, "basic", env={"backend": {"CACHE": "${redis.url}"}})  # basic has no redis
    workspace.edit(
        "gurupi",
        env={"backend": {"DB_HOST": "${db.hots}", "PRICE": "costs $5", "DATABASE_URL": "x", "9LIVES": "x"}, "frontend": {"LEAK": "${db.password}"}},
        secrets={"backend": {"TOKEN": {"generate": 8}, "BOTH": {"generate": 32, "config": "x"}}},
    )
    workspace.edit("santarita", env={"backend": {"SMTP": "x"}}, secrets={"backend": {"SMTP": {"config": "smtp_password"}, "API_KEY": {"config": "nope"}}})
    problems = "\n".join(problems_of(workspace))
    assert "tenants/gurupi.yaml: tenant gurupi: env.backend: not env var names: 9LIVES" in problems
    assert "DATABASE_URL set by the fleet itself" in problems
    assert "tenants/gurupi.yaml: tenant gurupi: env.frontend: LEAK: the frontend's env reaches every browser; db.password is a secret" in problems
    assert "secrets.backend.TOKEN.generate: Input should be greater than or equal to 16" in problems
    assert "secrets.backend.BOTH: give exactly one of generate: <length> or config: <name>" in problems
    assert "tenants/santarita.yaml: tenant santarita: secrets.backend.SMTP: also set in env.backend: keep one" in problems
    assert "secrets.backend.API_KEY: fleet:app_secrets has no 'nope' (it has: none)" in problems
    assert "tenants/novaroma.yaml: tenant novaroma: env.backend.CACHE (from plan basic): ${redis.url} needs a plan with redis: shared" in problems
    gurupi_env = next(line for line in problems_of(workspace) if "gurupi" in line and "env.backend:" in line and "unknown reference" in line)
    assert "DB_HOST: unknown reference ${db.hots}; known: db.host, db.port" in gurupi_env and "PRICE: a lone '$'" in gurupi_env


def test_the_template_language():
    assert env_template.render("a$${b}${tenant.name}", {"tenant.name": "x"}) == "a${b}x"
    assert env_template.references("${db.host}:${db.port}/${db.name}") == {"db.host", "db.port", "db.name"}
    with pytest.raises(env_template.TemplateError, match="unknown reference"):
        env_template.parse("${nope}")
    with pytest.raises(env_template.TemplateError, match="lone"):
        env_template.parse("$HOME")


def test_docs_list_every_fact():
    from fleet.paths import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs/env.md").read_text()
    assert all(f"`${{{fact}}}`" in text for fact in env_template.FACTS)


def test_branding_has_a_second_color_and_a_favicon(workspace):
    workspace.edit("gurupi", branding={"color": "#F29F05", "secondary_color": "#0A2540", "favicon_url": "https://cdn.example.org/gurupi.ico"})
    env = env_of(frontend(workspace.evaluate(), "gurupi"))
    assert env["REACT_APP_SECONDARY_COLOR"] == "#0A2540" and env["REACT_APP_FAVICON_URL"] == "https://cdn.example.org/gurupi.ico"
    workspace.edit("gurupi", branding={"secondary_color": "navy", "favicon_url": "http://x/f.ico"})
    problems = "\n".join(problems_of(workspace))
    assert "branding.secondary_color: 'navy' is not a hex color" in problems and "branding.favicon_url: favicon_url must be an https:// URL" in problems


def test_limits_reach_the_backend_as_env_vars_within_each_max(workspace):
    edit_plan(
        workspace, "pro",
        limits={"users": {"value": 10, "max": 50, "env": "USER_LIMIT"}, "properties": {"value": "unlimited"}, "whatsapp": {"value": False, "max": True}, "seats": {"value": 5}},
    )
    workspace.edit("gurupi", limits={"users": 20, "whatsapp": True})  # the client-specific USER_LIMIT 20
    evaluation = workspace.evaluate()
    gurupi, santarita = env_of(backend(evaluation, "gurupi")), env_of(backend(evaluation, "santarita"))
    assert (gurupi["USER_LIMIT"], gurupi["LIMIT_PROPERTIES"], gurupi["LIMIT_WHATSAPP"], gurupi["LIMIT_SEATS"]) == ("20", "unlimited", "true", "5")
    assert (santarita["USER_LIMIT"], santarita["LIMIT_WHATSAPP"]) == ("10", "false")
    assert env_of(backend(evaluation, "novaroma"))["USER_LIMIT"] == "3"  # basic: the plan's user_limit as before

    workspace.edit("gurupi", limits={"users": 51, "seats": 6, "properties": 1000, "whatsapp": 1, "storage": 5})
    workspace.edit("santarita", limits={"properties": "unlimited"})
    problems = "\n".join(problems_of(workspace))
    assert "tenant gurupi: limits.users: 51 is beyond plan pro's max 50" in problems
    assert "tenant gurupi: limits.seats: 6 is beyond plan pro's max 5" in problems
    assert "tenant gurupi: limits.whatsapp: 1 is beyond plan pro's max True" in problems
    assert "tenant gurupi: limits.storage: plan pro has no limit 'storage' (it has: properties, seats, users, whatsapp)" in problems
    assert "limits.properties" not in problems  # any count, or unlimited, under an unlimited plan


def test_a_plans_limits_are_checked_where_they_are_written(workspace):
    edit_plan(workspace, "pro", limits={"Users": {"value": 1}, "a": {"value": 10, "max": 5}, "b": {"value": True, "env": "PORT"}, "c": {"value": 1, "env": "LIMIT_A"}})
    problems = "\n".join(problems_of(workspace))
    assert "limit names are lowercase words with _ (at most 40 characters): 'Users'" in problems
    assert "plans.pro.limits.a: value 10 is not within max 5" in problems
    assert "plans.pro.limits.b: env PORT is set by the fleet itself" in problems


def test_a_full_stack_app_is_a_backend_with_no_frontend_and_serves_every_hostname(workspace):
    from tests.unit.graph import ROUTE

    edit_plan(workspace, "pro", frontend={"cpu": 0.25, "memory_mb": 256, "replicas": 0}, env={"frontend": {"PUBLIC_API": "${urls.api}/v1"}})
    evaluation = workspace.evaluate()
    assert [c.name for c in of_type(evaluation, CONTAINER, "gurupi") if "frontend" in c.name] == []
    routes = {route.name: route.raw_inputs for route in of_type(evaluation, ROUTE, "gurupi")}
    backend_route, frontend_route = routes["gurupi-route-backend"], routes["gurupi-route-frontend"]
    assert frontend_route["upstreams"] == backend_route["upstreams"] and frontend_route["upstreams"]
    assert "app-gurupi.fleet.localhost" in frontend_route["hosts"]
    assert of_type(evaluation, CONTAINER, "novaroma")  # another plan keeps both
    backend_env = env_of(backend(evaluation, "gurupi"))
    assert backend_env["REACT_APP_COLOR"] == "#F29F05" and backend_env["PORT"] == "80"  # the branding, and its own values win
    assert backend_env["PUBLIC_API"] == "http://api-gurupi.fleet.localhost/v1"  # the frontend's env, rendered

    edit_plan(workspace, "pro", backend={"cpu": 0.5, "memory_mb": 512, "replicas": 0})
    workspace.edit("santarita", overrides={"backend": {"replicas": 0}})
    problems = "\n".join(problems_of(workspace))
    assert "backend.replicas must be at least 1 (a full-stack app is a backend with frontend.replicas 0)" in problems
    assert "overrides.backend: replicas 0 is for a frontend only" in problems


def test_a_plans_workers_run_the_backends_image_and_env_with_no_port_and_are_checked_by_the_policies(workspace):
    from fleet.model.load import load_fleet
    from fleet.offline.policies import check

    edit_plan(workspace, "pro", workers={"queue": {"command": ["node", "dist/worker.js"], "cpu": 0.25, "memory_mb": 256, "replicas": 2}})
    evaluation = workspace.evaluate()
    workers = {c.name: c for c in of_type(evaluation, CONTAINER, "gurupi") if "-worker-" in c.name}
    assert set(workers) == {"gurupi-worker-queue-0", "gurupi-worker-queue-1"}
    worker = workers["gurupi-worker-queue-0"].raw_inputs
    assert worker["command"] == ["node", "dist/worker.js"] and worker["image"] == backend(evaluation, "gurupi").raw_inputs["image"]
    assert "ports" not in worker and "healthcheck" not in worker and (worker["memory"], worker["cpus"]) == (256, "0.25")
    assert env_of(workers["gurupi-worker-queue-0"]) == env_of(backend(evaluation, "gurupi"))  # DATABASE_URL and secrets included
    assert "envs" in workers["gurupi-worker-queue-0"].secret_inputs
    assert {label["label"]: label["value"] for label in worker["labels"]}["worker"] == "queue"
    fleet = load_fleet(workspace.tenants_dir, workspace.config)
    assert [v for v in check(evaluation, fleet) if v.enforcement == "mandatory"] == []
    from tests.unit.test_policies import mutated

    drifted = mutated(evaluation, "gurupi-worker-queue-1", inputs={"memory": 4096})
    messages = [v.message for v in check(drifted, fleet) if v.enforcement == "mandatory"]
    assert messages == ["tenant gurupi: worker container gurupi-worker-queue-1 has memory 4096 MB, but its plan gives 256 MB."]

    workspace.edit("gurupi", status="suspended")
    assert not [c for c in of_type(workspace.evaluate(), CONTAINER, "gurupi") if "-worker-" in c.name]


def test_a_custom_domain_can_be_routed_to_the_backend(workspace):
    from tests.unit.graph import ROUTE

    workspace.edit("gurupi", domains=["precos.gurupi.to.gov.br"], api_domains=["api.precos.gurupi.to.gov.br"])
    evaluation = workspace.evaluate()
    routes = {route.name: route.raw_inputs for route in of_type(evaluation, ROUTE, "gurupi")}
    assert routes["gurupi-route-backend"]["hosts"] == ["api-gurupi.fleet.localhost", "api.precos.gurupi.to.gov.br"]
    assert "api.precos.gurupi.to.gov.br" not in routes["gurupi-route-frontend"]["hosts"]
    assert evaluation.outputs["tenants"]["gurupi"]["urls"]["api.precos.gurupi.to.gov.br"] == "http://api.precos.gurupi.to.gov.br"
    workspace.edit("gurupi", domains=["x.example.org"], api_domains=["x.example.org", "api-santarita.fleet.localhost"])
    problems = "\n".join(problems_of(workspace))
    assert "x.example.org in both domains and api_domains" in problems
    workspace.edit("gurupi", domains=[], api_domains=["api-santarita.fleet.localhost"])
    assert "lies under the base domain" in "\n".join(problems_of(workspace))
