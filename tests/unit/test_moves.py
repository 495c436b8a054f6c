"""How a move will copy, from the stack config; the names and markers a live move leaves (pure functions)."""

from __future__ import annotations

from components.providers.postgres import declared_dump_reason
from fleet.model.moves import planned_move
from fleet.model.spec import Environment
from fleet.postgres import replication


def environment(**logical: bool) -> Environment:
    servers = {
        key: {"host": "127.0.0.1", "port": 5432 + index, "max_connections": 100, "logical_replication": logical.get(key.replace("-", "_"), True)}
        for index, key in enumerate(("shared-1", "dedicated-1"))
    }
    return Environment.model_validate(
        {
            "base_domain": "fleet.localhost",
            "servers": servers,
            "docker_host": {"memory_mb": 1024, "cpus": 1},
            "images": {"backend": "example/backend:1", "frontend": "example/frontend:1"},
        }
    )


def test_servers_that_replicate_plan_a_live_copy():
    planned = planned_move(environment(), "shared-1", "dedicated-1")
    assert planned.method == "logical" and planned.words == "data copy by logical replication, writes refused under a second"


def test_a_server_that_does_not_replicate_plans_a_dump_naming_it():
    planned = planned_move(environment(dedicated_1=False), "shared-1", "dedicated-1")
    assert planned.method == "dump" and planned.reason == "server dedicated-1 declares logical_replication: false"
    assert planned.words.startswith("data copy by dump and restore, writes refused throughout: server dedicated-1")
    both = planned_move(environment(shared_1=False, dedicated_1=False), "shared-1", "dedicated-1")
    assert both.reason == "server shared-1 and server dedicated-1 declare logical_replication: false"


def test_the_placement_reads_the_same_setting_from_its_servers_input():
    servers = {"a": {"logical_replication": True}, "b": {"logical_replication": False}, "legacy": {}}
    assert declared_dump_reason(servers, "a", "b") == "server b declares logical_replication: false"
    assert declared_dump_reason(servers, "a", "legacy") is None  # deployed before the setting: the servers decide


def test_move_object_names_are_recognisable_bounded_and_distinct():
    long = "tenant_" + "é" * 40
    assert replication.move_object_name("tenant_gurupi").startswith("fleet_move_tenant_gurupi_")
    assert len(replication.move_object_name(long).encode()) <= 63 and replication.move_object_name(long).isascii()
    assert replication.move_object_name("tenant_a-b") != replication.move_object_name("tenant_a_b")


def test_the_replica_identity_record_round_trips_and_ignores_other_comments():
    comment = replication.IDENTITY_MARKER + '{"public.audit": "d"}'
    assert replication.parse_identity_comment(comment) == {"public.audit": "d"}
    assert replication.parse_identity_comment("someone else's publication") == {}
    assert replication.parse_identity_comment(replication.IDENTITY_MARKER + "not json") == {}
