"""Tenants' volume folders as `pulumi up`s of the real engine, tried as a careless operator.

1. `up` makes each tenant's folder, 0700 (the tenant's folder above it 0711: enterable, not listable); a
   preview then shows no changes;
2. the app writes files; the tenant is removed from the program: `up` deletes the resource, the files stay;
3. a folder deleted by hand is made again by a refreshing `up`;
4. pointing a tenant's volume at another folder while the old one holds files fails the `up`, naming both.
"""

from __future__ import annotations

import stat

import pulumi
import pytest

from components.providers.volume import TenantVolume, TenantVolumeArgs
from fleet.engine import driver as engine
from fleet.errors import FleetError
from tests.support.fixtures import require_engine

STACK = "e2e-volumes"


class VolumeStack:
    def __init__(self, root, backend) -> None:
        self.root = root
        self.backend = backend
        self.tenants = ["alpha", "beta"]
        self.paths = {tenant: str(root / tenant / "uploads") for tenant in ("alpha", "beta")}

    def program(self) -> None:
        for tenant in self.tenants:
            volume = TenantVolume(
                f"{tenant}-volume-uploads",
                TenantVolumeArgs(tenant=tenant, volume="uploads", path=self.paths[tenant]),
                opts=pulumi.ResourceOptions(retain_on_delete=True),
            )
            pulumi.export(f"{tenant}_path", volume.path)

    def run(self, op: str, **options) -> dict:
        return engine.run(op, engine.stack_for(STACK, self.program, backend_dir=self.backend), on_output=None, **options)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    require_engine()
    return VolumeStack(tmp_path_factory.mktemp("volumes"), tmp_path_factory.mktemp("state"))


def test_up_makes_private_folders_and_a_preview_then_shows_no_changes(volumes):
    summary = volumes.run("up")
    assert summary["changes"] == {"create": 3}
    for tenant in ("alpha", "beta"):
        folder = volumes.root / tenant / "uploads"
        assert summary["outputs"][f"{tenant}_path"] == str(folder)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(folder.parent.stat().st_mode) == 0o711
    assert set(volumes.run("preview")["changes"]) == {"same"}


def test_removing_a_tenant_keeps_its_files(volumes):
    (volumes.root / "beta" / "uploads" / "contract.pdf").write_bytes(b"beta's contract")
    volumes.tenants = ["alpha"]
    assert volumes.run("up")["changes"].get("delete") == 1
    assert (volumes.root / "beta" / "uploads" / "contract.pdf").read_bytes() == b"beta's contract"


def test_a_folder_deleted_by_hand_is_made_again_by_a_refreshing_up(volumes):
    (volumes.root / "alpha" / "uploads").rmdir()
    volumes.run("up", refresh=True)
    assert (volumes.root / "alpha" / "uploads").is_dir()


def test_moving_a_volume_away_from_its_files_is_refused(volumes):
    (volumes.root / "alpha" / "uploads" / "photo.jpg").write_bytes(b"alpha's photo")
    volumes.paths["alpha"] = str(volumes.root / "elsewhere" / "alpha" / "uploads")
    with pytest.raises(FleetError) as failure:
        volumes.run("up")
    assert "holds the tenant's files: move them there by hand first" in str(failure.value)
    assert not (volumes.root / "elsewhere").exists()
    assert (volumes.root / "alpha" / "uploads" / "photo.jpg").exists()
