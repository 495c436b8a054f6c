"""Rollouts in waves: which tenants each wave reaches, what the PR summary says, and how a deploy stops on a failure."""

from __future__ import annotations

import pytest

from fleet.engine import fanout, verbs
from fleet.model.spec import Rollout
from fleet.model.waves import batch_size, describe_waves, plan_waves

TENANTS = [f"t{n:02d}" for n in range(1, 11)]


def test_the_canary_goes_first_then_batches_by_name():
    waves = plan_waves(TENANTS, Rollout(canary=["t07", "t99"], batch="25%"))
    assert waves == [["t07"], ["t01", "t02", "t03"], ["t04", "t05", "t06"], ["t08", "t09", "t10"]]
    assert describe_waves(waves, ["t07"])[:2] == ["wave 1 (canary): t07", "wave 2: t01, t02, t03"]
    assert plan_waves(TENANTS, Rollout(batch="4")) == [TENANTS[:4], TENANTS[4:8], TENANTS[8:]]
    assert plan_waves(["t03"], Rollout(canary=["t07"], batch="50%")) == [["t03"]]  # the canary didn't change
    assert (batch_size("1%", 10), batch_size("100%", 10), batch_size("3", 0)) == (1, 10, 3)


def test_rollout_settings_are_validated():
    from pydantic import ValidationError

    for bad in ("0", "0%", "25 %", "-1", "all"):
        with pytest.raises(ValidationError):
            Rollout(batch=bad)


def test_a_wave_that_fails_or_is_unhealthy_stops_the_rollout_and_says_how_to_resume(monkeypatch):
    ran: list[list[str]] = []

    def run_tasks(tasks, _workers, progress=None):
        ran.append([task.stack for task in tasks])
        return [fanout.StackResult(task.stack, task.op, ok=task.stack != "prod.t05", error="container exited 1") for task in tasks]

    monkeypatch.setattr(fanout, "run_tasks", run_tasks)
    tasks = [fanout.StackTask("up", f"prod.{name}", "prod", "/r", "file://x") for name in TENANTS]
    tasks.append(fanout.StackTask("remove", "prod.gone", "prod", "/r", "file://x"))
    import io

    out = io.StringIO()
    results, stopped = verbs._run_waves(tasks, Rollout(canary=["t07"], batch="3"), "prod", 4, None, lambda wave: [], out)
    assert ran == [["prod.t07"], ["prod.t01", "prod.t02", "prod.t03"], ["prod.t04", "prod.t05", "prod.t06"]]  # no later wave, no remove
    assert stopped is not None and "stopped in wave 3: t05: container exited 1" in stopped
    assert "3 tenant(s) not reached (t08, t09, t10)" in stopped and "run the same command again" in stopped
    assert out.getvalue().splitlines() == ["wave 1 (canary): t07", "wave 2: t01, t02, t03", "wave 3: t04, t05, t06"]

    ran.clear()
    results, stopped = verbs._run_waves(tasks[:3], Rollout(batch="1"), "prod", 4, None, lambda wave: ["t02: http app-t02 503"] if "t02" in wave else [], io.StringIO())
    assert ran == [["prod.t01"], ["prod.t02"]] and "stopped in wave 2: t02: http app-t02 503" in (stopped or "")

    ran.clear()
    results, stopped = verbs._run_waves(tasks[5:], Rollout(batch="2"), "prod", 4, None, None, io.StringIO())
    assert stopped is None and ran[-1] == ["prod.gone"]  # removals after every wave went well
