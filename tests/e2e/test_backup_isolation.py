"""Backups can't be read across tenants: real backups of two tenants, then another local user tries to read them.

A tenant's scheduled job mounts only its own backups folder (tests/unit/test_ops_units.py, under mocks: Docker
doesn't run here). What runs here is the rest of the attack surface on the backup host: every dump, manifest and
volume archive is 0600 in a 0700 tenant folder, so a process of any other uid (another service, a job whose
container runs as its own uid) can't list or read them, and `fleet verify` notices a folder opened by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fleet.bench.servers import PostgresCluster
from fleet.model.spec import Retention
from fleet.ops import backups
from tests.support.fixtures import running
from tests.support.tenant_db import cluster_access, provision_tenant_database

NOBODY = 65534
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


@contextmanager
def _removed(folder: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def as_nobody(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command], capture_output=True, text=True, errors="replace")


@pytest.fixture(scope="module")
def backed_up():
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another uid (setpriv); CI runs as root")
    # Outside pytest's own 0700 temp folder, and itself listable: only the tenant folders may stand in the way.
    folder = Path(tempfile.mkdtemp(prefix="fleet-backup-isolation-"))
    folder.chmod(0o755)
    assert as_nobody("ls", str(folder)).returncode == 0
    with running(PostgresCluster("backup-isolation-secret")) as (cluster,), _removed(folder):
        access = cluster_access(cluster)
        for tenant in ("alpha", "beta"):
            provision_tenant_database(access, f"tenant_{tenant}", f"tenant_{tenant}_app", f"pw-{tenant}-0000000000000")
            with cluster.connect(f"tenant_{tenant}") as admin:
                admin.execute("create table secrets_of_the_customer (id int, body text)")
                admin.execute(f"insert into secrets_of_the_customer values (1, '{tenant} private')")
            target = backups.BackupTarget(tenant, f"tenant_{tenant}", access, Retention(daily=7), "shared-1")
            result = backups.backup_one(target, folder, clock=lambda: T0)
            assert result.ok, result.error
        yield folder


def test_another_uid_cannot_list_or_read_a_tenants_backups(backed_up):
    for tenant in ("alpha", "beta"):
        dump = backups.backup_path(backed_up, tenant, T0)
        listing = as_nobody("ls", str(dump.parent))
        assert listing.returncode != 0 and "Permission denied" in listing.stderr
        for path in (dump, backups.manifest_path(dump)):
            read = as_nobody("cat", str(path))
            assert read.returncode != 0 and "Permission denied" in read.stderr, path
            assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert oct(dump.parent.stat().st_mode & 0o777) == "0o700"


def test_a_folder_opened_by_hand_is_readable_and_that_is_what_verify_flags(backed_up):
    from types import SimpleNamespace

    from fleet.ops.verify import verify_backup_folders

    tenants = [SimpleNamespace(name="alpha"), SimpleNamespace(name="beta")]
    assert all(check.outcome == "pass" for check in verify_backup_folders(backed_up, tenants))
    dump = backups.backup_path(backed_up, "beta", T0)
    dump.parent.chmod(0o755)
    dump.chmod(0o644)
    try:
        assert as_nobody("cat", str(dump)).returncode == 0  # the attack works once the modes are gone
        failed = [check.line() for check in verify_backup_folders(backed_up, tenants) if check.outcome == "fail"]
        assert failed == [f"beta: backup files: readable by others: beta (755), beta/{dump.name} (644)"]
    finally:
        dump.parent.chmod(0o700)
        dump.chmod(0o600)
