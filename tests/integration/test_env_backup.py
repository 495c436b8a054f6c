"""The app env sealed beside real backups: written by the scheduled job's CLI mode against a real PostgreSQL, listed
in the manifest, unreadable without the private key, opened by `fleet open-env`, and pruned with its dump."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from fleet.bench.servers import PostgresCluster
from fleet.cli.main import main
from fleet.model.spec import Retention
from fleet.ops import backups, env_backup
from tests.support.fixtures import running
from tests.support.tenant_db import cluster_access, provision_tenant_database

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
SECRET = "JWT_SECRET=never-in-clear-7f3a9c"
APP_ENV = {"backend": [SECRET, "DATABASE_URL=postgresql://tenant_acme_app:pw@db/tenant_acme", "TENANT=acme"], "frontend": ["TENANT=acme"]}


@pytest.fixture(scope="module")
def cluster():
    with running(PostgresCluster("env-backup")) as (server,):
        provision_tenant_database(cluster_access(server), "tenant_acme", "tenant_acme_app", "pw-acme-app-0000000000")
        yield server


@pytest.fixture(scope="module")
def keys():
    return env_backup.new_keypair()


def test_the_scheduled_job_seals_the_env_beside_its_dump(cluster, keys, tmp_path, monkeypatch, capsys):
    public, private = keys
    access = cluster_access(cluster)
    target = {"tenant": "acme", "server": "shared-1", "host": access.host, "port": access.port, "user": access.admin_user,
              "database": "tenant_acme", "env_recipient": public}
    monkeypatch.setenv("FLEET_BACKUP_TARGET", json.dumps(target))
    monkeypatch.setenv("FLEET_BACKUP_PASSWORD", access.admin_password)
    monkeypatch.setenv("FLEET_BACKUP_APP_ENV", json.dumps(APP_ENV))
    folder = tmp_path / "backups"
    assert main(["backup", "--tenant", "acme", "--target-env", "--dir", str(folder), "--retention-days", "7", "--json"]) == 0
    (dump,) = sorted(folder.glob("acme/*.dump"))
    sealed = env_backup.env_file_path(dump)
    manifest = backups.read_manifest(dump)
    assert manifest is not None and manifest["env"]["file"] == sealed.name and manifest["env"]["services"] == ["backend", "frontend"]
    assert manifest["env"]["recipient"] == env_backup.fingerprint(public) and manifest["env"]["sha256"] == backups.dumps.sha256_of(sealed)
    for path in folder.rglob("*"):  # the secret is in no file of the backup folder, only inside the sealed box
        assert not path.is_file() or b"never-in-clear-7f3a9c" not in path.read_bytes(), path
    assert oct(sealed.stat().st_mode & 0o777) == "0o600"

    key_file = tmp_path / "backup.key"
    key_file.write_text(private + "\n")
    capsys.readouterr()
    assert main(["open-env", str(dump), "--key", str(key_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["services"] == APP_ENV


def test_a_backup_without_the_env_says_so_and_pruning_removes_the_sealed_file(cluster, keys, tmp_path):
    public, _ = keys
    folder = tmp_path / "backups"
    target = backups.BackupTarget("acme", "tenant_acme", cluster_access(cluster), Retention(daily=1), "shared-1", app_env=APP_ENV, env_recipient=public)
    first = backups.backup_one(target, folder, clock=lambda: T0)
    assert first.ok, first.error
    dump = backups.backup_path(folder, "acme", T0)
    assert env_backup.env_file_path(dump).exists()
    unknown = backups.BackupTarget("acme", "tenant_acme", cluster_access(cluster), Retention(daily=1), "shared-1", env_recipient=public)
    later = backups.backup_one(unknown, folder, clock=lambda: T0 + timedelta(days=5))
    assert later.ok and later.pruned == [str(dump)] and not env_backup.env_file_path(dump).exists()
    manifest = backups.read_manifest(backups.backup_path(folder, "acme", T0 + timedelta(days=5)))
    assert manifest is not None and manifest["env"] == {"absent": True}


def test_a_new_key_never_overwrites_an_old_one(tmp_path, capsys):
    key_file = tmp_path / "backup.key"
    assert main(["backup-key", "--out", str(key_file)]) == 0
    public = capsys.readouterr().out.split("env_recipient: ")[1].strip()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    sealed = env_backup.seal({"backend": ["A=1"]}, public)
    path = tmp_path / "x.env.sealed"
    path.write_bytes(sealed)
    assert env_backup.open_sealed_env(path, key_file.read_text()) == {"backend": ["A=1"]}
    assert main(["backup-key", "--out", str(key_file)]) == 2
    assert "exists" in capsys.readouterr().err
