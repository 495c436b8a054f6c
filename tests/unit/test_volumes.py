"""Tenant volumes under mocks: a kept folder per tenant, mounted into its backend and into its backup job."""

from __future__ import annotations

import json

import pytest
import yaml

from fleet.errors import SpecError
from tests.unit.graph import CONTAINER, of_type

VOLUME = "pulumi-python:dynamic/volume:TenantVolume"


@pytest.fixture
def with_uploads(workspace, tmp_path):
    """Plan `pro` (gurupi, santarita) gives each tenant an uploads folder, and the stack says where they live."""
    workspace.config["volumes"] = {"root": str(tmp_path / "volumes")}
    workspace.config["images"]["ops"] = "ghcr.io/acme/tenant-fleet-ops:1.4.0"
    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["volumes"] = {"uploads": {"mount": "/app/uploads", "uid": 1000}}
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    return workspace, tmp_path / "volumes"


def test_each_tenant_on_the_plan_gets_a_kept_folder_mounted_into_its_backend(with_uploads):
    workspace, root = with_uploads
    evaluation = workspace.evaluate()
    volumes = {volume.tenant: volume for volume in of_type(evaluation, VOLUME)}
    assert set(volumes) == {"gurupi", "santarita"}
    gurupi = volumes["gurupi"]
    assert gurupi.name == "gurupi-volume-uploads" and gurupi.options["retainOnDelete"]
    assert {key: value for key, value in gurupi.raw_inputs.items() if key != "resource_name"} == {
        "tenant": "gurupi", "volume": "uploads", "path": str(root / "gurupi" / "uploads"), "uid": 1000,
    }
    containers = {c.name: c for c in of_type(evaluation, CONTAINER, "gurupi")}
    assert containers["gurupi-backend-0"].raw_inputs["mounts"] == [{"type": "bind", "source": str(root / "gurupi" / "uploads"), "target": "/app/uploads"}]
    assert "mounts" not in containers["gurupi-frontend-0"].raw_inputs
    assert "mounts" not in next(c for c in of_type(evaluation, CONTAINER, "novaroma") if c.name == "novaroma-backend-0").raw_inputs


def test_the_backup_job_sees_the_volumes_read_only_and_archives_them(with_uploads):
    workspace, root = with_uploads
    evaluation = workspace.evaluate()
    job = next(c for c in of_type(evaluation, CONTAINER, "gurupi") if c.name.endswith("backup"))
    assert {"type": "bind", "source": str(root / "gurupi" / "uploads"), "target": "/volumes/uploads", "readOnly": True} in job.raw_inputs["mounts"]
    target = next(line for line in job.raw_inputs["envs"] if line.startswith("FLEET_BACKUP_TARGET="))
    assert json.loads(target.split("=", 1)[1])["volumes"] == {"uploads": "/volumes/uploads"}
    other = next(c for c in of_type(evaluation, CONTAINER, "novaroma") if c.name.endswith("backup"))
    assert "volumes" not in json.loads(next(line for line in other.raw_inputs["envs"] if line.startswith("FLEET_BACKUP_TARGET=")).split("=", 1)[1])


def test_a_database_move_leaves_the_volume_alone(with_uploads):
    workspace, _ = with_uploads
    before = {v.name: v.raw_inputs for v in of_type(workspace.evaluate(), VOLUME)}
    workspace.edit("gurupi", database={"server": "dedicated-1"})
    assert {v.name: v.raw_inputs for v in of_type(workspace.evaluate(), VOLUME)} == before


def test_volumes_need_a_root_and_a_local_docker_and_sane_names(with_uploads):
    workspace, _ = with_uploads
    del workspace.config["volumes"]
    workspace.config["docker_host"]["url"] = "ssh://deploy@app-1"
    with pytest.raises(SpecError) as raised:
        workspace.evaluate()
    text = str(raised.value)
    assert "tenants/gurupi.yaml: tenant gurupi: plan: plan pro has volumes (uploads), but the stack config sets no fleet:volumes" in text
    assert "they need a local Docker (app host default is ssh://deploy@app-1)" in text
    path = workspace.tenants_dir / "_plans.yaml"
    plans = yaml.safe_load(path.read_text())
    plans["plans"]["pro"]["volumes"] = {"Up Loads": {"mount": "/app/uploads"}, "cache": {"mount": "relative/dir"}, "etc": {"mount": "/app/../etc"}}
    path.write_text(yaml.safe_dump(plans, sort_keys=False))
    with pytest.raises(SpecError) as raised:
        workspace.evaluate()
    text = str(raised.value)
    assert "volume names are lowercase words with -" in text
    assert "'relative/dir' must be an absolute path inside the container" in text and "'/app/../etc' must be an absolute path" in text


def test_the_provider_updates_in_place_and_compares_the_uid_as_a_number():
    from components.providers.volume import TenantVolumeProvider

    provider = TenantVolumeProvider()
    olds = {"tenant": "a", "volume": "uploads", "path": "/v/a/uploads", "uid": 1000}
    assert not provider.diff("id", olds, {**olds, "uid": 1000.0}).changes  # the engine sends numbers as doubles
    for change in ({"uid": 1001}, {"path": "/v/a/other"}):
        result = provider.diff("id", olds, {**olds, **change})
        assert result.changes and not result.replaces
    assert provider.check({}, {**olds, "path": "relative/uploads"}).failures
