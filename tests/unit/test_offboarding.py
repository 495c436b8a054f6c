"""The offboarding timer: its arithmetic on injected dates, the spec's rules, what an offboarded tenant declares,
and the pull-request preview that proposes (never runs) the purge once the retention is over."""

from __future__ import annotations

from datetime import date

import pytest

from fleet.errors import SpecError
from fleet.model.offboarding import OffboardingTimer, offboarding_timer, purge_proposal
from fleet.model.spec import DatabaseRef, Plan, TenantSpec
from tests.unit.graph import of_type
from tests.unit.test_preview import Repo, warnings_of

CONTAINER = "docker:index/container:Container"
SIZE = {"cpu": 0.25, "memory_mb": 256, "replicas": 1}
PLAN = Plan.model_validate(
    {
        "backend": SIZE, "frontend": SIZE, "user_limit": 3, "connections_limit": 2, "db_connections": 5, "backup_retention_days": 7,
        "offboarding": {"retain_days": 30}, "max": {"backend": SIZE, "frontend": SIZE},
    }
)


def offboarded(on: date, **extra) -> TenantSpec:
    return TenantSpec(name="itabira", display_name="Itabira", plan="basic", database=DatabaseRef(server="shared-1"), status="offboarded", offboarded_on=on, **extra)


def test_the_timer_counts_the_plans_days_from_the_offboarding_day():
    timer = offboarding_timer(offboarded(date(2026, 11, 1)), PLAN)
    assert timer == OffboardingTimer("itabira", date(2026, 11, 1), 30)
    assert timer.ends == date(2026, 12, 1)
    assert [timer.days_left(day) for day in (date(2026, 11, 1), date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2))] == [30, 1, 0, -1]
    assert not timer.ended(date(2026, 12, 1)) and timer.ended(date(2026, 12, 2))  # the last day is still kept
    assert timer.describe(date(2026, 11, 30)) == "offboarded 2026-11-01, kept until 2026-12-01 (1 day left)"
    assert timer.describe(date(2026, 12, 4)) == "offboarded 2026-11-01, retention ended on 2026-12-01 (3 days ago): purge proposed"


def test_a_timer_crosses_years_and_leap_days():
    timer = OffboardingTimer("x", date(2027, 12, 20), 70)
    assert timer.ends == date(2028, 2, 28)
    assert OffboardingTimer("x", date(2028, 2, 1), 29).ends == date(2028, 3, 1)  # 2028 is a leap year


def test_only_an_offboarded_tenant_without_a_purge_has_a_timer():
    assert offboarding_timer(TenantSpec(name="itabira", display_name="I", plan="basic", database=DatabaseRef(server="s")), PLAN) is None
    assert offboarding_timer(offboarded(date(2026, 1, 1), purge={"confirm": "itabira"}), PLAN) is None


def test_the_proposal_is_the_exact_line_to_add_and_only_after_the_retention():
    timer = OffboardingTimer("itabira", date(2026, 11, 1), 30)
    assert purge_proposal(timer, date(2026, 12, 1)) is None
    assert purge_proposal(timer, date(2026, 12, 2)) == (
        "⚠ itabira: retention ended on 2026-12-01 (offboarded 2026-11-01, 30 days): add "
        '`purge: {confirm: itabira, reason: "offboarded; retention ended on 2026-12-01"}` to tenants/itabira.yaml to remove the data '
        "(a final backup is taken and verified first); the fleet never purges by itself"
    )


def test_offboarded_needs_its_day_and_only_offboarded_may_have_one(workspace):
    workspace.edit("gurupi", status="offboarded")
    workspace.edit("novaroma", offboarded_on="2026-11-01")
    with pytest.raises(SpecError) as caught:
        workspace.evaluate()
    problems = [str(problem) for problem in caught.value.problems]
    assert len(problems) == 2
    assert "tenants/gurupi.yaml: tenant gurupi:" in problems[0] and "status offboarded needs offboarded_on: YYYY-MM-DD" in problems[0]
    assert "tenants/novaroma.yaml: tenant novaroma:" in problems[1] and "offboarded_on is only for status offboarded (status is active)" in problems[1]


def test_an_offboarded_tenant_runs_no_app_and_keeps_its_database(workspace, dev_plan):
    workspace.edit("gurupi", status="offboarded", offboarded_on="2026-11-01")
    after = workspace.evaluate()
    assert of_type(after, CONTAINER, "gurupi") == []
    database = "postgresql:index/database:Database"
    assert [r.raw_inputs for r in of_type(after, database, "gurupi")] == [r.raw_inputs for r in of_type(dev_plan, database, "gurupi")]
    (login,) = [r for r in of_type(after, "postgresql:index/role:Role", "gurupi") if r.raw_inputs["name"].endswith("_app")]
    assert login.raw_inputs["login"] is False
    routes = of_type(after, "pulumi-python:dynamic/caddy:CaddyRoute", "gurupi")
    assert routes and all(route.raw_inputs["maintenance"] for route in routes)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo(tmp_path_factory.mktemp("offboarding-repo"))


def test_the_preview_counts_the_days_then_proposes_the_purge(repo):
    repo.reset()
    repo.edit("novaroma", status="offboarded", offboarded_on="2026-11-01")
    repo.commit("offboard novaroma")
    # The PR that offboards it: the timer starts.
    code, out, _ = repo.plan("--today", "2026-11-02")
    assert code == 0
    assert "offboarded (app stopped, logins refused; data kept until its purge is proposed, from 2026-11-01)" in out
    assert "novaroma: offboarded 2026-11-01, kept until 2026-12-01 (29 days left)" in out
    assert not [line for line in warnings_of(out) if "retention ended" in line]
    # Any later PR, after the plan's 30 days (pro keeps the default), proposes the purge as the line to add.
    code, out, _ = repo.plan("--today", "2026-12-02", base="HEAD")
    assert code == 0
    (proposal,) = [line for line in warnings_of(out) if "retention ended" in line]
    assert proposal.startswith("⚠ novaroma: retention ended on 2026-12-01 (offboarded 2026-11-01, 30 days): add `purge: {confirm: novaroma")
    # The reviewed diff that follows the proposal is announced as a purge; nothing was purged before it.
    data = repo.tenant("novaroma")
    data["purge"] = {"confirm": "novaroma", "reason": "offboarded; retention ended on 2026-12-01"}
    repo.write("novaroma", data)
    code, out, _ = repo.plan("--today", "2026-12-02", base="HEAD")
    assert not [line for line in warnings_of(out) if "retention ended" in line]
    assert "purge" in out.lower()


def test_a_removed_file_starts_the_timer_at_its_removal_and_the_preview_says_how_to_purge(repo, monkeypatch):
    repo.reset()
    repo.remove("novaroma")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-10-01T12:00:00+00:00")
    repo.commit("remove novaroma")
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    sha = repo.git("rev-parse", "HEAD").strip()
    code, out, _ = repo.plan("--today", "2026-10-15", base="HEAD")
    assert code == 0 and "novaroma: file removed 2026-10-01, data kept until 2026-10-31 (16 days left)" in out
    code, out, _ = repo.plan("--today", "2026-11-05", base="HEAD")
    (proposal,) = [line for line in warnings_of(out) if "retention ended" in line]
    assert proposal == (
        f"⚠ novaroma: retention ended on 2026-10-31 (its file was removed on 2026-10-01 in {sha[:7]}; 30 days): restore it with "
        f"`git show {sha[:12]}^:tenants/novaroma.yaml > tenants/novaroma.yaml`, add "
        '`purge: {confirm: novaroma, reason: "offboarded; retention ended on 2026-10-31"}` to it, and open that as a PR to remove the data '
        "(a final backup is taken and verified first); the fleet never purges by itself"
    )


def test_a_file_removed_with_its_purge_keeps_nothing_to_propose(repo):
    repo.reset()
    data = repo.tenant("novaroma")
    repo.write("novaroma", {**data, "purge": {"confirm": "novaroma", "reason": "contract ended"}})
    repo.commit("purge novaroma")
    repo.remove("novaroma")
    repo.commit("remove novaroma after its purge")
    code, out, _ = repo.plan("--today", "2030-01-01", base="HEAD")
    assert code == 0 and "novaroma" not in out
