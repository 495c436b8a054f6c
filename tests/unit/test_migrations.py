"""A tenant's SQL migrations and modules under mocks: one job per tenant, with a digest per source, before its containers."""

from __future__ import annotations

import pytest
import yaml

from fleet.errors import SpecError
from tests.support.dynamic import outs_of
from tests.unit.graph import CONTAINER, of_type

JOB = "pulumi-python:dynamic/postgres:TenantMigrations"


@pytest.fixture
def repo(workspace):
    root = workspace.tenants_dir.parent
    (root / "migrations" / "app").mkdir(parents=True)
    (root / "migrations" / "app" / "0001_customers.sql").write_text("create table customers (id bigserial primary key);")
    (root / "modules" / "price_basket").mkdir(parents=True)
    (root / "modules" / "price_basket" / "0001_cp_baskets.sql").write_text("create table cp_baskets (id bigserial primary key);")
    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["migrations"] = "migrations/app"
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    workspace.edit("gurupi", modules=["price_basket"])
    return workspace, root


def test_each_tenant_gets_one_job_with_its_sources_in_order_and_its_containers_wait_for_it(repo):
    workspace, root = repo
    evaluation = workspace.evaluate()
    jobs = {job.tenant: job for job in of_type(evaluation, JOB)}
    assert set(jobs) == {"gurupi", "santarita"}  # plan pro; novaroma's basic plan has no migrations
    sources = jobs["gurupi"].raw_inputs["sources"]
    assert [(s["name"], s["folder"]) for s in sources] == [("app", str(root / "migrations" / "app")), ("price_basket", str(root / "modules" / "price_basket"))]
    assert all(len(s["digest"]) == 64 for s in sources)
    assert (jobs["gurupi"].raw_inputs["owner"], jobs["gurupi"].raw_inputs["role"]) == ("tenant_gurupi_dbo", "tenant_gurupi_app")
    for container in of_type(evaluation, CONTAINER, "gurupi"):
        assert jobs["gurupi"].urn in container.options["dependencies"], container.name


def test_a_new_file_changes_the_digest_and_nothing_else_does(repo):
    workspace, root = repo
    before = {job.tenant: job.raw_inputs["sources"] for job in of_type(workspace.evaluate(), JOB)}
    assert {job.tenant: job.raw_inputs["sources"] for job in of_type(workspace.evaluate(), JOB)} == before
    (root / "migrations" / "app" / "0002_email.sql").write_text("alter table customers add column email text;")
    after = {job.tenant: job.raw_inputs["sources"] for job in of_type(workspace.evaluate(), JOB)}
    assert after["gurupi"][0]["digest"] != before["gurupi"][0]["digest"] and after["gurupi"][1] == before["gurupi"][1]


def test_a_missing_module_an_empty_folder_or_a_role_switch_is_named(repo):
    workspace, root = repo
    workspace.edit("santarita", modules=["nope"])
    (root / "migrations" / "app" / "0002_sneaky.sql").write_text("reset role;\ndrop database tenant_santarita;")
    with pytest.raises(SpecError) as raised:
        workspace.evaluate()
    text = str(raised.value)
    assert "tenants/_plans.yaml: plans.pro.migrations: 0002_sneaky.sql switches roles ('reset role')" in text
    assert "tenants/santarita.yaml: tenant santarita: modules: nope:" in text and "is not a folder" in text


def test_the_app_version_is_set_per_plan_and_pinned_per_tenant(workspace):
    from fleet.model import derive

    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["app_version"] = "1.28.0"
    plans["plans"]["pro"]["workers"] = {"queue": {"command": ["worker"], "cpu": 0.25, "memory_mb": 128}}
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    workspace.edit("santarita", app_version="1.27.9")  # held back
    evaluation = workspace.evaluate()
    images = {c.name: c.raw_inputs["image"] for c in of_type(evaluation, CONTAINER) if not c.name.endswith("backup")}
    assert images["gurupi-backend-0"] == images["gurupi-frontend-0"] == images["gurupi-worker-queue-0"] == "nginx:1.28.0"
    assert images["santarita-backend-0"] == "nginx:1.27.9"
    assert images["novaroma-backend-0"] == "nginx:1.27.3-alpine"  # basic: fleet:images as given
    assert derive.with_tag("ghcr.io:5000/acme/app@sha256:" + "a" * 64, "2.0.1") == "ghcr.io:5000/acme/app:2.0.1"
    assert derive.with_tag("registry.local:5000/app", "3") == "registry.local:5000/app:3"
    workspace.edit("santarita", app_version="latest")
    with pytest.raises(SpecError, match="'latest' is not a pinned image tag"):
        workspace.evaluate()


def test_a_first_admin_is_created_as_the_owner_after_the_migrations_with_a_secret_password(repo):
    workspace, root = repo
    (root / "migrations" / "first_admin.sql").write_text(
        "insert into users (email, password_hash) values (%(email)s, md5(%(password)s)) on conflict (email) do update set password_hash = excluded.password_hash;"
    )
    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["first_admin"] = "migrations/first_admin.sql"
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    workspace.edit("gurupi", contact={"email": "ti@gurupi.to.gov.br"}, modules=["price_basket"])
    workspace.edit("santarita", admin={"email": "admin@santarita.mg.gov.br", "rotation": 2})
    evaluation = workspace.evaluate()
    admins = {r.tenant: r for r in of_type(evaluation, "pulumi-python:dynamic/postgres:TenantFirstAdmin")}
    assert set(admins) == {"gurupi", "santarita"}
    gurupi = admins["gurupi"]
    assert gurupi.raw_inputs["email"] == "ti@gurupi.to.gov.br" and {"password", "servers"} <= gurupi.secret_inputs
    assert of_type(evaluation, JOB, "gurupi")[0].urn in gurupi.options["dependencies"]  # after the migrations
    passwords = {p.name: p for p in of_type(evaluation, "random:index/randomPassword:RandomPassword") if p.name.endswith("-admin-password")}
    assert passwords["santarita-admin-password"].raw_inputs["keepers"] == {"rotation": "2"}
    from pulumi.runtime import rpc

    output = evaluation.outputs["admin_credentials"]
    assert rpc.is_rpc_secret(output) and set(rpc.unwrap_rpc_secret(output)) == {"gurupi", "santarita"}

    workspace.edit("santarita", admin={}, contact={})
    (root / "migrations" / "first_admin.sql").write_text("insert into users (email) values (%(email)s);")
    with pytest.raises(SpecError) as raised:
        workspace.evaluate()
    text = str(raised.value)
    assert "plans.pro.first_admin: it never uses %(password)s" in text
    assert "tenants/santarita.yaml: tenant santarita: admin.email: plan pro creates a first admin: give admin.email (or contact.email)" in text


def test_container_jobs_run_once_per_create_version_or_up_before_the_app_and_fail_it_with_their_output(workspace):
    from components.providers import ProviderError
    from components.providers.jobs import JobOutcomeProvider
    from fleet.model.load import load_fleet
    from fleet.offline.policies import check

    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["jobs"] = {
        "migrate": {"command": ["npx", "prisma", "migrate", "deploy"]},
        "seed": {"command": ["node", "seed.js"], "when": "create"},
        "warm": {"command": ["node", "warm.js"], "when": "always"},
    }
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    evaluation = workspace.evaluate()
    jobs = {c.name: c for c in of_type(evaluation, CONTAINER, "gurupi") if "-job-" in c.name}
    assert set(jobs) == {"gurupi-job-migrate", "gurupi-job-seed", "gurupi-job-warm"}
    migrate = jobs["gurupi-job-migrate"]
    assert migrate.raw_inputs["command"] == ["npx", "prisma", "migrate", "deploy"]
    assert (migrate.raw_inputs["mustRun"], migrate.raw_inputs["attach"], migrate.raw_inputs["logs"], migrate.raw_inputs["restart"]) == (False, True, True, "no")
    backend = next(c for c in of_type(evaluation, CONTAINER, "gurupi") if c.name == "gurupi-backend-0")
    assert migrate.raw_inputs["image"] == backend.raw_inputs["image"] and "envs" in migrate.secret_inputs
    assert migrate.options.get("ignoreChanges") == ["envs", "labels"]  # a new version (image) runs it again
    assert jobs["gurupi-job-seed"].options.get("ignoreChanges") == ["image", "envs", "labels"]  # once, at creation
    assert not jobs["gurupi-job-warm"].options.get("ignoreChanges")  # every up (a new run label each time)
    outcomes = {r.name: r for r in of_type(evaluation, "pulumi-python:dynamic/jobs:JobOutcome", "gurupi")}
    assert set(outcomes) == {f"{name}-outcome" for name in jobs}
    assert migrate.urn in outcomes["gurupi-job-migrate-outcome"].options["dependencies"]
    assert set(o.urn for o in outcomes.values()) <= set(backend.options["dependencies"])  # the app waits for its jobs
    fleet = load_fleet(workspace.tenants_dir, workspace.config)
    assert [v.message for v in check(evaluation, fleet) if v.enforcement == "mandatory"] == []

    # The jobs connect with their own login, which becomes the owner role at login; the app keeps its own.
    roles = {r.raw_inputs["name"]: r for r in of_type(evaluation, "postgresql:index/role:Role", "gurupi")}
    jobs_role = roles["tenant_gurupi_job"].raw_inputs
    assert (jobs_role["assumeRole"], jobs_role["roles"], jobs_role["login"], jobs_role["connectionLimit"]) == ("tenant_gurupi_dbo", ["tenant_gurupi_dbo"], True, 2)
    from tests.unit.graph import env_of

    assert env_of(migrate)["DATABASE_URL"].startswith("postgresql://tenant_gurupi_job:")
    assert env_of(backend)["DATABASE_URL"].startswith("postgresql://tenant_gurupi_app:")
    assert "tenant_novaroma_job" not in {r.raw_inputs["name"] for r in of_type(evaluation, "postgresql:index/role:Role", "novaroma")}
    # A tenant adds its own job, or changes one of its plan's.
    workspace.edit("novaroma", jobs={"import": {"command": ["node", "import-legacy.js"], "when": "create"}})
    workspace.edit("gurupi", jobs={"migrate": {"command": ["npx", "prisma", "migrate", "deploy", "--schema", "custom.prisma"]}})
    again = workspace.evaluate()
    assert [c.name for c in of_type(again, CONTAINER, "novaroma") if "-job-" in c.name] == ["novaroma-job-import"]
    assert next(c for c in of_type(again, CONTAINER, "gurupi") if c.name == "gurupi-job-migrate").raw_inputs["command"][-1] == "custom.prisma"

    provider = JobOutcomeProvider()
    assert outs_of(provider.create({"tenant": "gurupi", "job": "migrate", "exit_code": 0.0, "output": "done"}))["exit_code"] == 0.0
    output = "\n".join(f"line {n}" for n in range(40)) + "\nError: P3009 migrate found failed migrations"
    with pytest.raises(ProviderError) as failure:
        provider.create({"tenant": "gurupi", "job": "migrate", "exit_code": 1.0, "output": output})
    message = str(failure.value)
    assert "job migrate of tenant gurupi exited 1; its last 20 line(s):" in message and "P3009" in message and "line 20" not in message


def test_a_jobs_db_facts_are_its_own_login_so_an_orms_direct_url_creates_owner_tables(workspace):
    """Prisma migrates through DIRECT_URL when the schema sets `directUrl`: in a job, `${db.url}` and the other db.*
    facts are the jobs login (which becomes the owner role), never the app's."""
    from tests.unit.graph import env_of

    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["jobs"] = {"migrate": {"command": ["npx", "prisma", "migrate", "deploy"]}}
    plans["plans"]["pro"]["env"] = {"backend": {"DIRECT_URL": "${db.url}", "DB_USER": "${db.user}", "DB_PASS": "${db.password}", "DB_NAME": "${db.name}"}}
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    evaluation = workspace.evaluate()
    containers = {c.name: c for c in of_type(evaluation, CONTAINER, "gurupi")}
    job, app = env_of(containers["gurupi-job-migrate"]), env_of(containers["gurupi-backend-0"])
    assert job["DIRECT_URL"] == job["DATABASE_URL"] and job["DIRECT_URL"].startswith("postgresql://tenant_gurupi_job:")
    assert (job["DB_USER"], job["DB_NAME"]) == ("tenant_gurupi_job", "tenant_gurupi") and job["DB_PASS"] != app["DB_PASS"]
    assert app["DIRECT_URL"] == app["DATABASE_URL"] and app["DIRECT_URL"].startswith("postgresql://tenant_gurupi_app:")
    assert app["DB_USER"] == "tenant_gurupi_app"
    assert "envs" in containers["gurupi-job-migrate"].secret_inputs
