"""The PostgreSQL state backend (`pulumi login postgres://...`) shared by laptops and CI runners, for real.

Two `python -m fleet up` processes on different tenants at once both succeed; on the same tenant, the one
that finds the stack locked fails cleanly, naming the lock (both do when they lock at the same instant), and
the next run completes. The ledger reads
every stack's fingerprint from the backend's table in one query.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from fleet.bench.servers import PostgresCluster, UpstreamHTTPServer
from fleet.engine import fanout
from fleet.paths import PROJECT_ROOT
from tests.e2e.test_fleet_stacks import ENV, TENANTS, StacksProject
from tests.support.fixtures import running

TABLE = "fleet_state"
PASSWORD = "state-backend-password"


@pytest.fixture(scope="module")
def shared(tmp_path_factory, caddy_process):
    upstreams = {role: UpstreamHTTPServer(role) for role in ("backend", "frontend")}
    with running(PostgresCluster(PASSWORD), *upstreams.values()) as (server, *_):
        project = StacksProject(tmp_path_factory.mktemp("pgstate"), caddy_process, upstreams)
        url = f"postgres://postgres:{PASSWORD}@{server.host}:{server.port}/postgres?table={TABLE}&sslmode=disable"
        yield project, url, server


def fleet_cli(project: StacksProject, url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fleet", *args, "--stack", ENV, "--root", str(project.root), "--json", "--yes"],
        env={**os.environ, "PULUMI_BACKEND_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )


def finish(process: subprocess.Popen) -> tuple[int, dict, str]:
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, json.loads(stdout) if stdout.strip() else {}, stderr


def test_the_fleet_deploys_into_a_postgres_backend_and_reads_it_back(shared):
    project, url, server = shared
    code, document, stderr = finish(fleet_cli(project, url, "up"))
    assert code == 0, stderr
    assert len(document["results"]) == 1 + len(TENANTS)
    stacks = fanout.deployed_stacks(url)
    assert set(stacks) == {ENV, *(f"{ENV}.{tenant}" for tenant in TENANTS)} and all(stacks.values())
    with psycopg.connect(server.dsn("postgres", user="postgres", password=PASSWORD)) as connection:
        keys = [row[0] for row in connection.execute(sql.SQL("select key from {}").format(sql.Identifier(TABLE)))]
    assert f"postgres/.pulumi/stacks/tenant-fleet/{ENV}.gurupi.json" in keys  # under the database's name
    assert not (project.root / "state").exists()  # nothing went to a local folder


def test_two_ups_on_different_tenants_at_once_both_succeed(shared):
    project, url, _server = shared
    project.workspace.edit("gurupi", domains=["precos.gurupi.example.gov.br"])
    project.workspace.edit("novaroma", domains=["precos.novaroma.example.gov.br"])
    first, second = fleet_cli(project, url, "up", "--tenant", "gurupi"), fleet_cli(project, url, "up", "--tenant", "novaroma")
    (code_a, doc_a, err_a), (code_b, doc_b, err_b) = finish(first), finish(second)
    assert (code_a, code_b) == (0, 0), err_a + err_b
    assert [r["stack"] for r in doc_a["results"]] == [f"{ENV}.gurupi"] and [r["stack"] for r in doc_b["results"]] == [f"{ENV}.novaroma"]
    assert project.status("precos.gurupi.example.gov.br") == 200 and project.status("precos.novaroma.example.gov.br") == 200


def test_a_stack_locked_by_another_run_fails_cleanly_and_the_next_run_completes(shared):
    project, url, server = shared
    project.workspace.edit("pirapora", domains=["precos.pirapora.example.gov.br"])
    lock_key = f"postgres/.pulumi/locks/organization/tenant-fleet/{ENV}.pirapora/{uuid.uuid4()}.json"
    holder = {"pid": 4242, "username": "ci", "hostname": "runner-7", "timestamp": "2026-11-29T21:00:00Z"}
    blob = json.dumps({"data": base64.b64encode(json.dumps(holder).encode()).decode()})
    with psycopg.connect(server.dsn("postgres", user="postgres", password=PASSWORD), autocommit=True) as connection:
        table = sql.Identifier(TABLE)
        connection.execute(sql.SQL("insert into {} (key, data) values (%s, %s)").format(table), (lock_key, blob))
        try:
            code, document, stderr = finish(fleet_cli(project, url, "up"))
            assert code == 1 and document["failed"] == [f"{ENV}.pirapora"]
            (result,) = document["results"]
            assert "locked" in result["error"]
            assert project.status("precos.pirapora.example.gov.br") == 404
        finally:
            connection.execute(sql.SQL("delete from {} where key = %s").format(table), (lock_key,))
    code, document, stderr = finish(fleet_cli(project, url, "up"))
    assert code == 0, stderr
    assert [r["stack"] for r in document["results"]] == [f"{ENV}.pirapora"]
    assert project.status("precos.pirapora.example.gov.br") == 200


def test_two_ups_on_the_same_tenant_at_once_never_both_change_it(shared):
    project, url, _server = shared
    project.workspace.edit("santarita", domains=["precos.santarita.example.gov.br"])
    runs = [fleet_cli(project, url, "up", "--tenant", "santarita") for _ in range(2)]
    outcomes = [finish(run) for run in runs]
    codes = sorted(code for code, _, _ in outcomes)
    # [0, 1]: one found the other's lock. [0, 0]: the second started after the first had finished. [1, 1]: both
    # wrote their lock at the same instant; the engine's diy Lock() writes, checks again, and backs off when it
    # sees another lock, so both back off (pkg/backend/diy/lock.go): neither changed the stack.
    assert codes in ([0, 0], [0, 1], [1, 1]), outcomes
    for code, document, _ in outcomes:
        if code == 1:  # one that found the stack locked says so
            assert "locked" in document["results"][0]["error"]
    final, document, stderr = finish(fleet_cli(project, url, "up"))
    assert final == 0 and document["results"] == [], stderr
    assert project.status("precos.santarita.example.gov.br") == 200
