"""The fleet-size benchmark runs (10 tenants, a few seconds), and what makes the plan fast changes nothing it shows.

The benchmark itself (`python -m fleet bench`, 10/100/1,000 tenants) is not part of the test tier. Here:
its smoke run; a sharded plan equals a single run (resources, outputs, specs, and the problems of a bad
spec). The SDK replacements that make it fast are tested in test_sdk_internals.py.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pulumi
import pytest
import yaml

from fleet.bench import offline as bench
from fleet.errors import SpecError
from fleet.offline import shards
from fleet.offline.mocks import REDACTED
from fleet.offline.plan import evaluate, stack_config
from fleet.offline.shards import merge_evaluations, shard_names
from fleet.paths import PROJECT_ROOT
from tests.unit.graph import plan_fingerprint


def test_bench_smoke_run_at_10_tenants():
    result = subprocess.run(
        [sys.executable, "-m", "fleet", "bench", "--sizes", "10", "--json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    (figures,) = document["plan"]
    assert figures["tenants"] == 10 and figures["size"] == 10
    assert figures["resources"] > figures["custom_resources"] > 10 * 5
    assert figures["plan_s"] > 0 and figures["per_tenant_ms"] > 0 and figures["peak_rss_mb"] > 0
    assert figures["heavy_imports"] == []  # dns: none never imports pulumi_cloudflare
    if figures["policy_s"] is not None:  # the policy pack is measured once the policy pack is there
        assert figures["violations"] == {"mandatory": 0, "advisory": 0}  # the synthetic fleet is a clean one
    assert document["targets"]["no_heavy_imports"] is True


def test_synthetic_fleet_spreads_over_plans_servers_and_options(tmp_path):
    config = bench.write_fleet(tmp_path, 40)
    tenants = [yaml.safe_load(path.read_text()) for path in sorted((tmp_path / "tenants").glob("t*.yaml"))]
    assert len(tenants) == 40
    assert {t["plan"] for t in tenants} == {"basic", "pro", "enterprise"}
    assert len({t["database"]["server"] for t in tenants}) >= 4 and set(config["servers"]) >= {t["database"]["server"] for t in tenants}
    assert any(t["status"] == "suspended" for t in tenants) and any(t.get("domains") for t in tenants) and any(t.get("overrides") for t in tenants)
    stack_file = yaml.safe_load((tmp_path / f"Pulumi.{bench.BENCH_STACK}.yaml").read_text())
    assert stack_file["config"]["fleet:servers"] == config["servers"]


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of 3 to 5 tenants, so that a fleet of a dozen is sharded."""
    monkeypatch.setattr(shards, "SHARD_TENANTS", 5)
    monkeypatch.setattr(shards, "MIN_SHARD_TENANTS", 3)


def test_a_sharded_plan_is_the_single_run_plan(tmp_path, small_shards):
    config = bench.write_fleet(tmp_path, 12)
    single = evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", workers=1)
    sharded = evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", workers=2)
    assert len(shard_names(sorted(single.specs), 2)) == 4
    assert plan_fingerprint(sharded) == plan_fingerprint(single)
    # A selection is sharded too.
    chosen = [bench.tenant_name(index) for index in range(1, 12, 2)]
    assert plan_fingerprint(evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", selection=chosen, workers=2)) == plan_fingerprint(
        evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", selection=chosen, workers=1)
    )


@pytest.mark.parametrize(
    "changes",
    [
        {2: {"plan": "platinum"}, 9: {"domains": ["precos.t00000.example.gov.br"]}},  # a shard's own problem, and one across shards
        {10: {"domains": ["precos.t00000.example.gov.br"]}},  # only across shards: each shard alone is valid
    ],
)
def test_a_sharded_plan_reports_every_problem_of_the_whole_fleet(tmp_path, small_shards, changes):
    config = bench.write_fleet(tmp_path, 12)
    for index, change in changes.items():
        path = tmp_path / "tenants" / f"{bench.tenant_name(index)}.yaml"
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **change}))
    problems = {}
    for workers in (1, 2):
        with pytest.raises(SpecError) as error:
            evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", workers=workers)
        problems[workers] = [str(problem) for problem in error.value.problems]
    assert problems[2] == problems[1] and len(problems[1]) == len(changes)


def test_a_sharded_selection_reports_a_problem_in_a_tenant_it_does_not_declare(tmp_path, small_shards):
    # Shards read only the selected tenants' files; the whole folder is still validated, as a single run does.
    config = bench.write_fleet(tmp_path, 12)
    path = tmp_path / "tenants" / f"{bench.tenant_name(11)}.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "domains": ["precos.t00000.example.gov.br"]}))
    chosen = [bench.tenant_name(index) for index in range(10)]
    problems = {}
    for workers in (1, 2):
        with pytest.raises(SpecError) as error:
            evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", selection=chosen, workers=workers)
        problems[workers] = [str(problem) for problem in error.value.problems]
    assert problems[2] == problems[1] and len(problems[1]) == 1 and "t00011" in problems[1][0]


def test_shards_that_disagree_on_a_shared_resource_are_not_merged(tmp_path):
    config = bench.write_fleet(tmp_path, 2)
    first = evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", selection=[bench.tenant_name(0)], workers=1)
    second = evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", selection=[bench.tenant_name(1)], workers=1)
    merged = merge_evaluations("bench", [first, second])
    assert merged is not None and set(merged.specs) == {bench.tenant_name(0), bench.tenant_name(1)}
    assert len(merged.shared()) == len(first.shared())
    provider = next(r for r in second.resources if r.tenant is None and r.custom)
    provider.raw_inputs = {**provider.raw_inputs, "host": "elsewhere"}
    assert merge_evaluations("bench", [first, second]) is None


def test_inputs_are_kept_once_except_where_a_secret_differs(dev_plan):
    backend = next(r for r in dev_plan.resources if r.type == "docker:index/container:Container" and "envs" in r.secret_inputs)
    assert backend.inputs["envs"] == REDACTED and isinstance(backend.raw_inputs["envs"], list)
    assert backend.inputs["labels"] is backend.raw_inputs["labels"]  # no secret inside: one copy for both views
    assert backend.inputs is not backend.raw_inputs  # the top-level mappings are separate


def _shard_then_collect(config, tenants_dir, names):
    shards._evaluate_shard(config, "bench", tenants_dir, names)
    gc.collect()  # whatever the shard let go of is freed (and closed) now, before the worker exits


@pytest.mark.parametrize("workers", [1, 2])
def test_the_plan_leaves_the_event_loop_able_to_wait_for_threads(tmp_path, small_shards, workers):
    import asyncio
    import multiprocessing
    import threading
    import time

    config = bench.write_fleet(tmp_path, 12)
    evaluate(config, stack="bench", tenants_dir=tmp_path / "tenants", workers=workers)
    if workers > 1:  # a shard worker, forked from this process, that runs its garbage collection before it exits
        asyncio.get_event_loop()  # the loop it inherits
        worker = multiprocessing.get_context("fork").Process(target=_shard_then_collect, args=(config, str(tmp_path / "tenants"), [bench.tenant_name(0)]))
        worker.start()
        worker.join(60)
        assert worker.exitcode == 0

    def slow() -> str:
        time.sleep(0.2)  # the loop is asleep in its selector by then: only the self-pipe wakes it
        return threading.current_thread().name

    loop = asyncio.get_event_loop()
    # A shard worker that closed the loop it inherited would have unregistered the parent's self-pipe: the loop
    # would then sleep until the timeout's timer instead of waking up when the thread is done.
    started = time.monotonic()
    thread_name = loop.run_until_complete(asyncio.wait_for(loop.run_in_executor(None, slow), timeout=10))
    assert thread_name != threading.main_thread().name
    assert time.monotonic() - started < 5


def _dev_config():

    return stack_config("dev", PROJECT_ROOT)


def test_pulumi_is_configured_for_mocks_only_during_the_run():
    evaluate(_dev_config(), stack="dev", tenants_dir=PROJECT_ROOT / "tenants", selection=["gurupi"], workers=1)
    # The run's root stack resource is let go (its Outputs are freed with it).
    assert pulumi.runtime.settings.get_root_resource() is None


def test_the_benchmark_never_writes_over_real_tenant_files(tmp_path):
    from fleet.errors import FleetError
    from fleet.paths import PROJECT_ROOT

    before = sorted(path.name for path in (PROJECT_ROOT / "tenants").iterdir())
    with pytest.raises(FleetError, match="the project itself"):
        bench.write_fleet(PROJECT_ROOT, 3)
    assert sorted(path.name for path in (PROJECT_ROOT / "tenants").iterdir()) == before
    someone_elses = tmp_path / "checkout"
    (someone_elses / "tenants").mkdir(parents=True)
    (someone_elses / "tenants" / "acme.yaml").write_text("name: acme\n")
    with pytest.raises(FleetError, match="did not write"):
        bench.write_fleet(someone_elses, 3)
    assert (someone_elses / "tenants" / "acme.yaml").exists()
    bench.write_fleet(tmp_path / "scratch", 3)
    bench.write_fleet(tmp_path / "scratch", 4)  # its own scratch folder it may rewrite
    assert len(list((tmp_path / "scratch" / "tenants").glob("t*.yaml"))) == 4
