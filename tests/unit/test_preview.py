"""Pull-request previews: `fleet plan --base <ref>` on throwaway git repositories (a base commit, head changes).

Each test resets one module-wide repository to its base commit, edits tenant files (or the plan catalog,
or the stack config) the way a pull request would, commits, and reads the tenant-level summary through
the real CLI: the verbs, the tenants, the ⚠ lines and the exit code.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.providers.caddy import CaddyRouteProvider, CaddyServerProvider
from fleet.cli.main import main
from fleet.model import type_tokens
from fleet.paths import PROJECT_ROOT
from fleet.preview import diff, guard

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

ITABIRA = {
    "name": "itabira",
    "display_name": "Prefeitura de Itabira",
    "plan": "basic",
    "database": {"server": "shared-1"},
    "domains": ["precos.itabira.mg.gov.br"],
    "branding": {"color": "#0E7C3A", "tab_name": "Itabira - Cesta de Preços"},
}


class Repo:
    """A git repository holding a copy of the shipped tenants and dev stack config, tagged `base`."""

    def __init__(self, root: Path):
        self.root = root
        shutil.copytree(PROJECT_ROOT / "tenants", root / "tenants")
        shutil.copy(PROJECT_ROOT / "Pulumi.dev.yaml", root / "Pulumi.dev.yaml")
        self.git("init", "-q", "-b", "main")
        self.commit("base: the shipped fleet")
        self.git("tag", "base")

    def git(self, *args: str) -> str:
        result = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, text=True, env={**os.environ, **GIT_ENV}, check=True)
        return result.stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", message)

    def reset(self) -> None:
        self.git("checkout", "-q", "-f", "--detach", "base")
        self.git("clean", "-q", "-f", "-d", "-x")

    # -- edits a pull request makes

    def tenant(self, name: str) -> dict:
        return yaml.safe_load((self.root / "tenants" / f"{name}.yaml").read_text())

    def write(self, name: str, data: dict) -> None:
        (self.root / "tenants" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def edit(self, name: str, **changes) -> None:
        self.write(name, {**self.tenant(name), **changes})

    def remove(self, name: str) -> None:
        (self.root / "tenants" / f"{name}.yaml").unlink()

    def edit_yaml(self, relative: str, change) -> None:
        path = self.root / relative
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    # -- the command a reviewer (or CI) runs

    def plan(self, *args: str, base: str = "base") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["plan", "--root", str(self.root), *(["--base", base] if base else []), *args])
        return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo(tmp_path_factory.mktemp("fleet-repo"))


@pytest.fixture
def fresh(repo: Repo) -> Repo:
    repo.reset()
    return repo


def warnings_of(output: str) -> list[str]:
    """The ⚠ lines (text output) or items (Markdown output)."""
    return [line.removeprefix("- ") for line in output.splitlines() if line.removeprefix("- ").startswith("⚠")]


# ---------------------------------------------------------------- one-tenant changes


def test_one_tenant_upgrade_is_a_short_comment(fresh):
    fresh.edit("novaroma", plan="pro")
    fresh.commit("novaroma: basic -> pro")
    code, out, _ = fresh.plan("--format", "markdown")
    assert code == 0
    assert "**1 tenant changes: changed novaroma**" in out
    assert "| ~ | **novaroma** | plan basic → pro (backend 256 → 512 MB, 0.25 → 0.5 CPU) |" in out
    # the backend container is replaced (cpus forces it), the role's connection limit changes in place
    assert "± novaroma-backend-0 (Container): replace on cpus 0.25 → 0.5" in out
    assert "~ novaroma-role-shared-1 (Role): connectionLimit 5 → 10" in out
    assert "<details>" not in out and warnings_of(out) == []
    assert "**Policies:** ✅ all" in out
    for other in ("gurupi", "pirapora", "santarita", "catasaltas"):
        assert other not in out
    assert len(out.splitlines()) < 25


def test_added_tenant_lists_plan_server_and_hostnames(fresh):
    fresh.write("itabira", ITABIRA)
    code, out, _ = fresh.plan()  # not committed: the head is the working tree
    assert code == 0
    assert "+ added itabira: plan basic, database on shared-1, hostnames api-itabira.fleet.localhost, app-itabira.fleet.localhost, precos.itabira.mg.gov.br" in out
    assert "+ itabira-db-shared-1 (Database)" in out and "+ itabira-backend-0 (Container)" in out
    (line,) = [line for line in out.splitlines() if line.startswith("+ added itabira")]
    assert re.search(r"  \[\+\d+\]$", line)  # creates only
    assert warnings_of(out) == []


def test_removed_tenant_keeps_its_database(fresh):
    fresh.remove("novaroma")
    fresh.commit("novaroma leaves")
    code, out, _ = fresh.plan()
    assert code == 0
    assert "− removed novaroma: app, routes and secrets go; database retained on shared-1" in out
    assert "− novaroma-db-shared-1 (Database): retained on the server" in out
    assert "− novaroma-role-shared-1 (Role): retained on the server" in out
    warnings = warnings_of(out)
    assert warnings and all("password" in line for line in warnings)  # the secrets go; no database or role line
    assert not any("DROP" in line or "database" in line for line in warnings)


def test_purge_is_announced_and_warned(fresh):
    fresh.edit("catasaltas", purge={"confirm": "catasaltas", "reason": "contract ended"})
    fresh.commit("purge catasaltas")
    code, out, _ = fresh.plan("--format", "markdown")
    assert code == 0
    assert "**1 tenant changes: PURGE catasaltas**" in out
    assert "| − | **catasaltas** | PURGE: data will be dropped after a final backup (reason: contract ended)" in out
    assert "⚠ catasaltas: PURGE: database and role will be dropped after a final backup" in out


def test_move_says_data_copy_and_keeps_the_old_database(fresh):
    fresh.edit("gurupi", database={"server": "dedicated-1"})
    fresh.commit("move gurupi")
    code, out, _ = fresh.plan()
    assert code == 0
    assert (
        "~ changed gurupi: moved shared-1 → dedicated-1 (data copy by logical replication, writes refused under a second); "
        "old database on shared-1 retained"
    ) in out
    assert "+ gurupi-db-dedicated-1 (Database)" in out and "− gurupi-db-shared-1 (Database): retained on the server" in out
    assert "± gurupi-backend-0 (Container): replace on envs (secret)" in out  # a new DATABASE_URL
    (warning,) = warnings_of(out)
    assert warning.startswith("⚠ gurupi: database moves shared-1 → dedicated-1: copied by logical replication while the tenant writes")


def test_a_move_off_a_server_without_logical_replication_says_dump_and_why(fresh):
    fresh.edit_yaml("Pulumi.dev.yaml", lambda data: data["config"]["fleet:servers"]["dedicated-1"].update(logical_replication=False))
    fresh.edit("gurupi", database={"server": "dedicated-1"})
    fresh.commit("move gurupi to a server without logical replication")
    code, out, _ = fresh.plan()
    assert code == 0
    assert (
        "moved shared-1 → dedicated-1 (data copy by dump and restore, writes refused throughout: "
        "server dedicated-1 declares logical_replication: false)"
    ) in out
    warning = next(line for line in warnings_of(out) if "gurupi: database moves" in line)
    assert "downtime while the data is copied by dump and restore (server dedicated-1 declares logical_replication: false)" in warning


def test_suspend_stops_the_app_and_keeps_the_data_and_resume_starts_it(fresh):
    fresh.edit("santarita", status="suspended")
    fresh.edit("catasaltas", status="active")
    fresh.commit("suspend santarita, resume catasaltas")
    code, out, _ = fresh.plan()
    assert code == 0
    assert "~ changed santarita: suspended (app stopped, logins refused; data kept)" in out
    assert "− santarita-backend-0 (Container)" in out and "− santarita-frontend-0 (Container)" in out
    assert "~ santarita-role-shared-1 (Role): login True → False" in out
    assert "maintenance False → True" in out
    assert "~ changed catasaltas: resumed" in out and "+ catasaltas-backend-0 (Container)" in out
    assert warnings_of(out) == []


def test_rotation_replaces_secrets_restarts_the_backend_and_never_prints_them(fresh):
    fresh.edit("pirapora", rotation=1)
    fresh.commit("rotate pirapora")
    code, out, _ = fresh.plan()
    assert code == 0
    assert "~ changed pirapora: secrets rotated (rotation 0 → 1)" in out
    warnings = warnings_of(out)
    assert sorted(warnings) == [
        f"⚠ pirapora: ± password `{name}` replaced (keepers): a new value, whatever uses it restarts with it"
        for name in ("pirapora-db-password", "pirapora-jwt-refresh-secret", "pirapora-jwt-secret")
    ]
    # what uses the new values changes too, as in the engine's preview: the role's password, the backends
    assert "~ pirapora-role-dedicated-1 (Role): password (secret) (new pirapora-db-password)" in out
    assert "± pirapora-backend-0 (Container): replace on envs (secret)" in out
    assert "± pirapora-backend-1 (Container): replace on envs (secret)" in out
    assert "pirapora-frontend-0" not in out  # the frontend holds no secret
    assert "mock-" not in out and "postgresql://" not in out


# ---------------------------------------------------------------- a pull request with many changes


MULTI_TENANTS = {"itabira": "added", "novaroma": "removed", "catasaltas": "purge", "gurupi": "changed", "pirapora": "changed", "santarita": "changed"}


def _many_changes(repo: Repo) -> None:
    repo.write("itabira", ITABIRA)
    repo.remove("novaroma")
    repo.edit("catasaltas", purge={"confirm": "catasaltas"})
    repo.edit("gurupi", plan="enterprise", database={"server": "dedicated-1"})
    repo.edit("pirapora", rotation=1, domains=["precos.pirapora.mg.gov.br", "licitacoes.pirapora.mg.gov.br"], branding={"color": "#000000", "tab_name": "Pirapora - Compras"})
    repo.edit("santarita", status="suspended")
    repo.commit("a busy pull request")


def test_multi_change_pr_comment_collapses_details(fresh):
    _many_changes(fresh)
    code, out, _ = fresh.plan("--format", "markdown")
    assert code == 0
    assert "**6 tenants change: added itabira; removed novaroma; PURGE catasaltas; changed gurupi, pirapora, santarita**" in out
    rows = {line.split("**")[1]: line for line in out.splitlines() if line.startswith("| ") and "**" in line}
    assert set(rows) == set(MULTI_TENANTS)
    assert rows["itabira"].startswith("| + |") and rows["novaroma"].startswith("| − |") and rows["catasaltas"].startswith("| − |")
    assert (
        "plan pro → enterprise (backend 512 → 1024 MB, 0.5 → 1 CPU, 1 → 2 replicas; frontend 256 → 512 MB, 0.25 → 0.5 CPU, 1 → 2 replicas); "
        "moved shared-1 → dedicated-1 (data copy by logical replication, writes refused under a second)"
    ) in rows["gurupi"]
    assert "database retained on shared-1" in rows["novaroma"]
    assert "PURGE: data will be dropped after a final backup" in rows["catasaltas"]
    assert (
        "secrets rotated (rotation 0 → 1); domains added: licitacoes.pirapora.mg.gov.br; domains removed: compras.pirapora.mg.gov.br; "
        "branding changed (color)"
    ) in rows["pirapora"]
    assert "suspended" in rows["santarita"]
    # the resource details are collapsed; the ⚠ lines stay visible, above them
    details = out.index("<details><summary>")
    warnings = warnings_of(out)
    assert warnings and all(out.index(line) < details for line in warnings)
    assert any(line.startswith("⚠ catasaltas: PURGE") for line in warnings)
    assert any(line.startswith("⚠ gurupi: database moves shared-1 → dedicated-1") for line in warnings)
    assert sum(line.startswith("⚠ pirapora: ± password") for line in warnings) == 3
    assert sum(line.startswith("⚠ novaroma: − password") for line in warnings) == 3


def test_multi_change_pr_as_json(fresh):
    _many_changes(fresh)
    code, out, _ = fresh.plan("--format", "json")
    document = json.loads(out)
    assert code == document["exit_code"] == 0
    assert {name: entry["change"] for name, entry in document["tenants"].items()} == MULTI_TENANTS
    novaroma = document["tenants"]["novaroma"]
    assert novaroma["counts"]["delete"] == len(novaroma["resources"]) and novaroma["counts"]["create"] == 0
    retained = {r["name"] for r in novaroma["resources"] if r.get("retained")}
    assert retained == {"novaroma-db-shared-1", "novaroma-role-shared-1", "novaroma-owner-role-shared-1"}
    assert document["policies"]["checked"] and not [v for v in document["policies"]["violations"] if v["enforcement"] == "mandatory"]
    assert "mock-" not in out


def test_tenant_filter(fresh):
    _many_changes(fresh)
    code, out, _ = fresh.plan("--tenant", "gurupi")
    assert code == 0 and "1 tenant changes: changed gurupi" in out and "itabira" not in out


# ---------------------------------------------------------------- changes outside tenant files


def test_plan_catalog_change_warns_that_it_touches_several_tenants(fresh):
    def edit(data):
        data["plans"]["pro"]["backend"].update(memory_mb=640)
        data["plans"]["basic"].update(user_limit=4)

    fresh.edit_yaml("tenants/_plans.yaml", edit)
    fresh.commit("pro backends get 640 MB, basic tenants 4 users")
    code, out, _ = fresh.plan()
    assert code == 0
    # gurupi is on pro; santarita too, but its override (768 MB) wins, so nothing changes for it
    assert "~ changed gurupi: resized: backend 512 → 640 MB (plan catalog)" in out
    assert "~ changed novaroma: plan basic changed in the plan catalog" in out  # USER_LIMIT in its backend's env
    assert "santarita" not in out
    (touch,) = [line for line in warnings_of(out) if "one change touches" in line]
    assert touch == "⚠ one change touches 2 tenants (gurupi, novaroma): plan catalog (basic, pro)"


def test_stack_config_change_replacing_databases_is_warned(fresh):
    fresh.edit_yaml("Pulumi.dev.yaml", lambda data: data["config"]["fleet:servers"]["shared-1"].update(locale="en_US.UTF-8"))
    fresh.commit("new locale on shared-1")
    code, out, _ = fresh.plan()
    warnings = warnings_of(out)
    replaced = [line for line in warnings if "database `" in line and "replaced" in line]
    assert len(replaced) == 4  # every database on shared-1
    assert all("lcCollate, lcCtype" in line and "a NEW, EMPTY database" in line for line in replaced)
    assert any(line.startswith("⚠ one change touches 4 tenants") and "stack config (fleet:servers.shared-1.locale)" in line for line in warnings)
    assert "pirapora" not in out  # on dedicated-1


def test_a_mandatory_policy_violation_exits_1(fresh):
    fresh.edit_yaml("Pulumi.dev.yaml", lambda data: data["config"]["fleet:images"].update(backend="nginx:latest"))
    fresh.commit("unpinned image")
    code, out, _ = fresh.plan("--format", "markdown")
    assert code == 1
    assert "**Policies:** ❌ a deploy would be refused" in out
    assert "- **novaroma**" in out and "**mandatory** `images-pinned`" in out
    assert "⚠ one change touches 4 tenants" in out  # every running backend is replaced

    code, out, _ = fresh.plan(base="")  # plain `fleet plan` runs the policies too, grouped by tenant
    assert code == 1
    assert "tenant novaroma\n  [mandatory] images-pinned:" in out


def test_invalid_head_exits_2_and_says_why(fresh):
    fresh.edit("gurupi", plan="platinum")
    code, out, err = fresh.plan("--format", "markdown")
    assert code == 2
    assert "❌ **The fleet spec is invalid** (1 problem(s))" in out
    assert "tenants/gurupi.yaml: tenant gurupi: plan: unknown plan 'platinum'" in out
    assert "problem(s) in the fleet spec" in err


def test_unknown_base_or_stack_is_an_error(fresh):
    code, out, err = fresh.plan(base="no-such-branch")
    assert code == 2 and out == ""
    assert "base 'no-such-branch' is not a commit" in err
    code, out, err = fresh.plan("--stack", "prod")
    assert code == 2 and "Pulumi.prod.yaml: stack config not found" in out


def test_code_changes_are_flagged(fresh):
    (fresh.root / "components").mkdir()
    (fresh.root / "components" / "app.py").write_text("# a change of the program\n")
    code, out, _ = fresh.plan()
    assert code == 0 and "no tenant changes" in out
    (warning,) = warnings_of(out)
    assert "edits program code (components/app.py)" in warning and "engine preview" in warning


def test_base_without_the_stack_is_a_new_stack(fresh):
    (fresh.root / "Pulumi.dev.yaml").rename(fresh.root / "Pulumi.prod.yaml")
    fresh.commit("prod")
    (fresh.root / "Pulumi.prod.yaml").rename(fresh.root / "Pulumi.dev.yaml")  # dev appears in the working tree only
    code, out, _ = fresh.plan(base="HEAD")
    assert code == 0
    assert "5 tenants change: added catasaltas, gurupi, novaroma, pirapora, santarita" in out
    assert "Pulumi.dev.yaml is new" in out


def test_markdown_needs_a_base(fresh):
    code, _, err = fresh.plan("--format", "markdown", base="")
    assert code == 2 and "needs --base" in err


# ---------------------------------------------------------------- the replace table and the engine guard


def test_replace_table_agrees_with_the_projects_own_providers():
    assert diff.REPLACE_RULES[type_tokens.CADDY_ROUTE].replace == frozenset(CaddyRouteProvider._REPLACE)
    assert diff.REPLACE_RULES[type_tokens.CADDY_SERVER].replace == frozenset(CaddyServerProvider._REPLACE)
    from components.providers.postgres import DatabasePlacementProvider

    placement = diff.REPLACE_RULES[type_tokens.PLACEMENT]
    assert placement.compared == frozenset(DatabasePlacementProvider._TRACKED) and not placement.forces_replace("server")
    assert diff.REPLACE_RULES[type_tokens.PURGE].compared == frozenset()
    from components.providers import handover

    assert diff.REPLACE_RULES[type_tokens.HANDOVER].compared == frozenset(handover._TRACKED)
    container = diff.REPLACE_RULES[type_tokens.CONTAINER]
    assert not container.forces_replace("memory") and not container.forces_replace("restart")
    assert all(container.forces_replace(key) for key in ("envs", "labels", "networksAdvanced", "ports", "image", "cpus", "command", "healthcheck"))
    database = diff.REPLACE_RULES[type_tokens.DATABASE]
    assert database.forces_replace("lcCollate") and not database.forces_replace("owner")
    assert diff.REPLACE_RULES[type_tokens.PASSWORD].forces_replace("keepers")
    assert not diff.REPLACE_RULES[type_tokens.ROLE].forces_replace("password")


def test_engine_preview_guard_fails_on_a_database_replacement(tmp_path):
    database = "urn:pulumi:prod::tenant-fleet::tenant-fleet:index:Tenant$tenant-fleet:index:TenantDatabase$postgresql:index/database:Database::x-db-shared-1"
    container = "urn:pulumi:prod::tenant-fleet::tenant-fleet:index:Tenant$tenant-fleet:index:TenantApp$docker:index/container:Container::x-backend-0"
    clean = {"steps": [{"op": "delete", "urn": database}, {"op": "replace", "urn": container}]}
    bad = {"steps": [{"op": "create-replacement", "urn": database}, {"op": "replace", "urn": database}]}
    assert guard.unrequested_database_replacements(clean) == []
    assert guard.unrequested_database_replacements(bad) == [database]
    (tmp_path / "clean.json").write_text(json.dumps(clean))
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["guard", str(tmp_path / "clean.json")]) == 0
    assert main(["guard", str(tmp_path / "bad.json")]) == 1
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["guard", str(tmp_path / "broken.json")]) == 2


def test_the_owner_split_reaches_an_existing_fleet_as_creates_and_in_place_updates(dev_plan):
    """The program before the owner/app split, rebuilt from today's graph: the login role owned the database and
    the placement had no owner. Moving to today's program replaces nothing and deletes nothing."""
    import dataclasses

    new_types = {type_tokens.HANDOVER, type_tokens.DEFAULT_PRIVILEGES}
    before = []
    for resource in dev_plan.resources:
        if resource.type in new_types or "-owner-role-" in resource.name or "-app-database" in resource.name or "-app-schema" in resource.name:
            continue
        if resource.name.startswith("pg-") and "-lockdown" in resource.name:
            continue
        inputs = dict(resource.raw_inputs)
        if resource.type == type_tokens.DATABASE:
            inputs["owner"] = inputs["owner"].removesuffix("_dbo") + "_app"
        if resource.type == type_tokens.PLACEMENT:
            inputs.pop("owner")
        before.append(dataclasses.replace(resource, raw_inputs=inputs))
    changes = diff.compare_resources(dataclasses.replace(dev_plan, resources=before), dev_plan)
    by_op: dict[str, set] = {}
    for change in changes:
        by_op.setdefault(change.op, set()).add(change.type)
    assert set(by_op) == {"create", "update"}
    assert by_op["update"] == {type_tokens.DATABASE, type_tokens.PLACEMENT}
    assert by_op["create"] == {type_tokens.ROLE, type_tokens.HANDOVER, type_tokens.GRANT, type_tokens.DEFAULT_PRIVILEGES}
    databases = [change for change in changes if change.type == type_tokens.DATABASE]
    assert len(databases) == 5 and all(change.keys == ("owner",) and not change.replace_keys for change in databases)


def test_a_downgrade_under_the_reported_usage_is_flagged(fresh, tmp_path):
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps({"gurupi": {"user_limit": 8, "connections_limit": 1}, "santarita": {"user_limit": 3}}))
    fresh.edit("gurupi", plan="basic")  # pro (10 users, 5 connections) -> basic (3 users, 2 connections)
    code, out, _ = fresh.plan("--usage", str(usage))
    assert code == 0
    flagged = [line for line in warnings_of(out) if "below its usage" in line]
    assert flagged == [f"⚠ gurupi: user_limit goes 10 → 3, below its usage of 8 (usage in {usage}): the app may refuse it work"]
    code, out, _ = fresh.plan()  # no usage given: no such warning (a PR preview can't reach the registry)
    assert not [line for line in warnings_of(out) if "below its usage" in line]


def test_bad_usage_is_an_error_naming_the_file_and_the_entry(fresh, tmp_path):
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps({"gurupi": {"user_limit": "lots"}, "santarita": 5}))
    code, _, err = fresh.plan("--usage", str(usage))
    assert code == 2 and "gurupi.user_limit: 'lots' is not a count" in err and "santarita: not an object" in err and "Traceback" not in err


def test_the_summary_shows_the_waves_of_a_declared_rollout(fresh):
    def per_tenant(data):
        data["config"]["fleet:stacks"] = "per-tenant"
        data["config"]["fleet:rollout"] = {"canary": ["gurupi"], "batch": "50%"}

    fresh.edit_yaml("Pulumi.dev.yaml", per_tenant)
    fresh.commit("per-tenant stacks with a rollout")
    fresh.edit_yaml("tenants/_plans.yaml", lambda data: data["plans"]["pro"]["backend"].update(memory_mb=640))
    fresh.edit("pirapora", rotation=1)
    fresh.edit("novaroma", rotation=1)
    code, out, _ = fresh.plan(base="HEAD")
    assert code == 0
    (line,) = [line for line in out.splitlines() if "rollout in waves" in line]
    assert line.endswith("wave 1 (canary): gurupi; wave 2: novaroma; wave 3: pirapora")
