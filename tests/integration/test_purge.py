"""The purge against real PostgreSQL: a final backup that restores, then the drop; a failed backup drops nothing.

The TenantPurge provider is called as the engine calls it. Copies left on a former server by a move
(marked by the move's COMMENT) are purged too; anything else is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.providers import ProviderError
from components.providers.postgres import TenantPurgeProvider, move_database
from fleet.bench.servers import free_port
from fleet.postgres import catalog, dumps
from tests.integration.test_move import (  # noqa: F401 - clusters is a fixture
    TenantOnServers,
    admin_scalar,
    clusters,
    fresh_tenant,
    login_error,
)
from tests.support.dynamic import outs_of


@pytest.fixture
def tenant(clusters) -> TenantOnServers:  # noqa: F811 - the imported fixture, by name
    """A fresh tenant provisioned on both servers, with sample data on `old`."""
    return fresh_tenant(clusters, "pg")


def purge_props(tenant: TenantOnServers, server: str, backup_dir: Path, **changes) -> dict:
    props = {
        "resource_name": f"{tenant.name}-purge",
        "tenant": tenant.name,
        "confirm": tenant.name,
        "database": tenant.database,
        "role": tenant.role,
        "owner": tenant.owner,
        "server": server,
        "servers": tenant.servers(),
        "backup_dir": str(backup_dir),
        "reason": "contract ended",
        "pg_bin": None,
    }
    props.update(changes)
    return props


def restored_counts(tenant: TenantOnServers, key: str, dump_path: str) -> dict[str, int]:
    """Restore a dump into a fresh database on `key` and count its rows."""
    access = tenant.access(key)
    fresh = f"restored_{tenant.name}_{key}"
    with access.connect() as admin:
        admin.execute(f"create database {fresh}")
    dumps.restore(access, fresh, dump_path, owner_role=access.admin_user)
    return catalog.table_counts(access, fresh)


def test_purge_backs_up_every_copy_then_drops_the_databases_and_roles(tenant, tmp_path):
    # The tenant moved from old to new (old keeps a marked, blocked copy), then wrote more on new.
    move_database(tenant.access("old"), tenant.access("new"), tenant.database, tenant.role, source_key="old", target_key="new", owner=tenant.owner)
    with tenant.connect("new") as app:
        app.execute("insert into events (payload) select 'after the move' from generate_series(1, 25)")
    counts = {key: catalog.table_counts(tenant.access(key), tenant.database) for key in ("old", "new")}
    assert counts["new"]["public.events"] == counts["old"]["public.events"] + 25

    provider = TenantPurgeProvider()
    props = purge_props(tenant, "new", tmp_path)
    assert provider.check({}, props).failures == []
    result = provider.create(props)
    outs = outs_of(result)

    assert outs["dropped_databases"] == ["old", "new"] and outs["dropped_roles"] == ["old", "new"] and outs["kept"] == []
    assert outs["dropped_owner_roles"] == ["old", "new"]
    backups = {entry["server"]: entry for entry in outs["backups"]}
    stamp = outs["purged_at"].replace("-", "").replace(":", "")
    assert Path(backups["new"]["path"]) == tmp_path / tenant.name / f"{tenant.name}-final-{stamp}.dump"
    assert Path(backups["old"]["path"]) == tmp_path / tenant.name / f"{tenant.name}-final-old-{stamp}.dump"
    for key, entry in backups.items():
        path = Path(entry["path"])
        assert path.stat().st_size == entry["bytes"] > 0 and dumps.sha256_of(path) == entry["sha256"]
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["reason"] == "contract ended" and sidecar["counts"] == counts[key] and sidecar["tenant"] == tenant.name
        assert {table.qualified for table in dumps.verify_dump(path) if table.has_data} == set(counts[key])
    for key in ("old", "new"):
        assert not catalog.database_exists(tenant.access(key), tenant.database)
        assert not catalog.role_exists(tenant.access(key), tenant.role)
        assert not catalog.role_exists(tenant.access(key), tenant.owner)

    # Each backup restores into a fresh database with the same row counts.
    for key in ("old", "new"):
        assert restored_counts(tenant, key, backups[key]["path"]) == counts[key]

    # Removing the purge resource later, or running it again, changes nothing.
    provider.delete(result.id, outs)
    assert not provider.diff(result.id, outs, purge_props(tenant, "new", tmp_path, reason="edited")).changes
    again = outs_of(provider.create(props))
    assert again["dropped_databases"] == [] and again["backups"] == [{"server": "new", "absent": True}]


def test_a_backup_that_cannot_be_written_drops_nothing_and_reopens_the_database(tenant, tmp_path):
    old = tenant.clusters["old"]
    with old.connect() as admin:
        admin.execute(f"alter database {tenant.database} connection limit 9")
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    with pytest.raises(ProviderError, match=rf"TenantPurge '{tenant.name}-purge'.*final backup failed, nothing was dropped"):
        TenantPurgeProvider().create(purge_props(tenant, "old", blocker))
    assert_untouched(tenant, counts, connection_limit=9)


def test_a_corrupt_backup_is_caught_and_nothing_is_dropped(tenant, tmp_path, monkeypatch):
    real_dump = dumps.dump

    def truncating_dump(access, database, path, **options):
        dump_file = real_dump(access, database, path, **options)
        with open(dump_file.path, "r+b") as handle:  # the disk filled up, say
            handle.truncate(dump_file.bytes // 2)
        return dump_file

    monkeypatch.setattr(dumps, "dump", truncating_dump)
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    with pytest.raises(ProviderError, match="final backup failed, nothing was dropped.*pg_restore"):
        TenantPurgeProvider().create(purge_props(tenant, "old", tmp_path))
    assert_untouched(tenant, counts)
    assert list((tmp_path / tenant.name).glob("*.dump")) == [], "a backup that failed its check must not look like a backup"


def test_an_unreachable_server_stops_the_purge_before_anything_happens(tenant, tmp_path):
    counts = catalog.table_counts(tenant.access("old"), tenant.database)
    servers = {**tenant.servers(), "gone": {**tenant.servers()["new"], "port": free_port(), "connect_timeout": 2}}
    with pytest.raises(ProviderError, match="cannot check server gone .* nothing was dropped"):
        TenantPurgeProvider().create(purge_props(tenant, "old", tmp_path, servers=servers))
    assert_untouched(tenant, counts)
    assert not (tmp_path / tenant.name).exists()


def test_the_purge_refuses_without_the_typed_confirmation(tenant, tmp_path):
    props = purge_props(tenant, "old", tmp_path, confirm="someone-else")
    failures = TenantPurgeProvider().check({}, props).failures
    assert [failure.property for failure in failures] == ["confirm"]
    assert TenantPurgeProvider().check({}, purge_props(tenant, "old", Path("relative"))).failures[0].property == "backup_dir"
    with pytest.raises(ProviderError, match="confirm does not match"):
        TenantPurgeProvider().create(props)
    assert catalog.database_exists(tenant.access("old"), tenant.database)


def test_a_same_named_database_elsewhere_without_the_move_marker_is_left_alone(tenant, tmp_path):
    with tenant.connect("new") as connection:
        connection.execute("create table unrelated (id int)")
    outs = outs_of(TenantPurgeProvider().create(purge_props(tenant, "old", tmp_path)))
    assert outs["dropped_databases"] == ["old"] and outs["dropped_roles"] == ["old"]
    assert len(outs["kept"]) == 1 and outs["kept"][0].startswith("new: database")
    assert catalog.database_exists(tenant.access("new"), tenant.database) and catalog.role_exists(tenant.access("new"), tenant.role)
    assert not catalog.database_exists(tenant.access("old"), tenant.database)


def assert_untouched(tenant: TenantOnServers, counts: dict[str, int], connection_limit: int = -1) -> None:
    """The database and role still exist, the app logs in, the connection limit is as before, the rows are all there."""
    assert login_error(tenant, "old") is None
    assert admin_scalar(tenant.clusters["old"], "select datconnlimit from pg_database where datname = %s", [tenant.database]) == connection_limit
    assert catalog.table_counts(tenant.access("old"), tenant.database) == counts
    assert catalog.database_comment(tenant.access("old"), tenant.database) is None  # the purge's blocked marker is gone
