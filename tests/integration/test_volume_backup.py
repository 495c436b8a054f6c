"""A tenant's volume in its backups: archived beside the dump (0600, in the manifest), pruned with it, restored
into a fresh folder only after its checksum matches, and a hostile archive can't write outside that folder."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from fleet.bench.servers import PostgresCluster
from fleet.model.spec import Retention
from fleet.ops import backups, restore
from tests.support.fixtures import running
from tests.support.tenant_db import cluster_access, provision_tenant_database

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def cluster():
    with running(PostgresCluster("volume-backup-secret")) as (server,):
        provision_tenant_database(cluster_access(server), "tenant_acme", "tenant_acme_app", "pw-acme-app-0000000000")
        yield server


@pytest.fixture
def uploads(tmp_path):
    folder = tmp_path / "volumes" / "acme" / "uploads"
    (folder / "2026" / "11").mkdir(parents=True)
    (folder / "2026" / "11" / "invoice.pdf").write_bytes(b"%PDF-1.7 acme invoice")
    (folder / "logo.png").write_bytes(b"\x89PNG acme")
    return folder


ONE_DAY = Retention(daily=1)


def target(cluster, uploads) -> backups.BackupTarget:
    return backups.BackupTarget("acme", "tenant_acme", cluster_access(cluster), ONE_DAY, "shared-1", {"uploads": str(uploads)})


def test_a_backup_archives_the_volume_beside_the_dump_and_pruning_removes_both(cluster, uploads, tmp_path):
    folder = tmp_path / "backups"
    first = backups.backup_one(target(cluster, uploads), folder, clock=lambda: T0)
    assert first.ok, first.error
    dump = backups.backup_path(folder, "acme", T0)
    archive = backups.volume_archive_path(dump, "uploads")
    manifest = json.loads(backups.manifest_path(dump).read_text())
    assert manifest["volumes"]["uploads"]["file"] == archive.name and manifest["volumes"]["uploads"]["files"] == 2
    assert manifest["volumes"]["uploads"]["sha256"] == backups.dumps.sha256_of(archive)
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["2026", "2026/11", "2026/11/invoice.pdf", "logo.png"]

    later = backups.backup_one(target(cluster, uploads), folder, clock=lambda: T0 + timedelta(days=5))
    assert later.ok and later.pruned == [str(dump)]
    assert not archive.exists() and not backups.manifest_path(dump).exists()


def test_a_restore_puts_the_files_in_a_fresh_folder_after_checking_the_archive(cluster, uploads, tmp_path):
    folder = tmp_path / "backups"
    backups.backup_one(target(cluster, uploads), folder, clock=lambda: T0)
    dump = backups.backup_path(folder, "acme", T0)
    manifest = backups.read_manifest(dump)
    entry = SimpleNamespace(name="acme", volumes={"uploads": str(uploads)})
    (uploads / "logo.png").write_bytes(b"changed after the backup")

    restored = restore.restore_volumes(entry, dump, manifest, T0 + timedelta(hours=1))
    new = restored["uploads"]
    assert new == f"{uploads}.restored-20261101T030000Z"
    assert (uploads.parent / "uploads.restored-20261101T030000Z" / "2026" / "11" / "invoice.pdf").read_bytes() == b"%PDF-1.7 acme invoice"
    assert (uploads.parent / "uploads.restored-20261101T030000Z" / "logo.png").read_bytes() == b"\x89PNG acme"
    assert (uploads / "logo.png").read_bytes() == b"changed after the backup"  # the live folder is untouched
    with pytest.raises(backups.BackupError, match="already exists"):
        restore.restore_volumes(entry, dump, manifest, T0 + timedelta(hours=1))

    archive = backups.volume_archive_path(dump, "uploads")
    archive.write_bytes(archive.read_bytes() + b"tampered")
    with pytest.raises(backups.BackupError, match="differs from the backup's manifest"):
        restore.restore_volumes(entry, dump, manifest, T0 + timedelta(hours=2))


def test_a_hostile_archive_cannot_write_outside_its_folder(uploads, tmp_path):
    dump = tmp_path / "acme-20261101T020000Z.dump"
    archive = backups.volume_archive_path(dump, "uploads")
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"owned"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    manifest = {"volumes": {"uploads": {"file": archive.name, "sha256": backups.dumps.sha256_of(archive)}}}
    entry = SimpleNamespace(name="acme", volumes={"uploads": str(uploads)})
    with pytest.raises(backups.BackupError, match="could not restore volume uploads .* is outside the destination"):
        restore.restore_volumes(entry, dump, manifest, T0)
    assert not (uploads.parent / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
