"""The tenant's app env in its backups: sealed to the stack's public key, handed to the backup job as a secret, and
exported for operators' backups; nothing changes for a stack that doesn't set `fleet:backups.env_recipient`."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime import rpc

from fleet.ops import env_backup
from tests.unit.graph import CONTAINER, env_of, of_type
from tests.unit.test_env import problems_of

OPS = "ghcr.io/acme/tenant-fleet-ops:1.4.0"


def backup_job(evaluation, tenant: str):
    return next(c for c in of_type(evaluation, CONTAINER, tenant) if c.name == f"{tenant}-backup")


def test_a_sealed_env_opens_only_with_its_private_key(tmp_path):
    public, private = env_backup.new_keypair()
    _, other_private = env_backup.new_keypair()
    dump = tmp_path / "acme-20261101T020000Z.dump"
    entry = env_backup.write_sealed_env(dump, {"backend": ["JWT_SECRET=s3cr3t-value", "TENANT=acme"]}, public)
    sealed = env_backup.env_file_path(dump)
    assert entry["file"] == sealed.name and entry["services"] == ["backend"] and entry["recipient"] == env_backup.fingerprint(public)
    assert oct(sealed.stat().st_mode & 0o777) == "0o600" and b"s3cr3t-value" not in sealed.read_bytes()
    assert env_backup.open_sealed_env(sealed, private) == {"backend": ["JWT_SECRET=s3cr3t-value", "TENANT=acme"]}
    with pytest.raises(env_backup.EnvBackupError, match="does not open with this key"):
        env_backup.open_sealed_env(sealed, other_private)
    with pytest.raises(FileExistsError):  # never over an earlier backup's file
        env_backup.write_sealed_env(dump, {"backend": []}, public)


def test_the_backup_job_gets_the_tenants_env_as_a_secret_only_when_a_recipient_is_set(workspace):
    workspace.config["images"]["ops"] = OPS
    before = workspace.evaluate()
    assert "FLEET_BACKUP_APP_ENV" not in env_of(backup_job(before, "gurupi"))
    assert "app_envs" not in before.outputs

    public, _ = env_backup.new_keypair()
    workspace.config["backups"] = {**workspace.config.get("backups", {}), "env_recipient": public}
    after = workspace.evaluate()
    job = backup_job(after, "gurupi")
    env = env_of(job)
    app_env = json.loads(env["FLEET_BACKUP_APP_ENV"])
    backend = next(c for c in of_type(after, CONTAINER, "gurupi") if c.name == "gurupi-backend-0")
    assert app_env["backend"] == sorted(backend.raw_inputs["envs"]) and set(app_env) == {"backend", "frontend"}
    assert any(line.startswith("JWT_SECRET=") for line in app_env["backend"])
    assert json.loads(env["FLEET_BACKUP_TARGET"])["env_recipient"] == public
    assert "envs" in job.secret_inputs and job.inputs["envs"] == "[secret]"
    exported = rpc.unwrap_rpc_secret(after.outputs["app_envs"])
    assert set(exported) >= {"gurupi", "santarita"} and exported["gurupi"]["backend"] == app_env["backend"]
    # only the backup jobs change: the apps' containers keep their inputs
    changed = {r.name for r in after.resources if r.type == CONTAINER} - {
        r.name for r in after.resources if r.type == CONTAINER and repr(r.raw_inputs) == repr(next(b for b in before.resources if b.name == r.name).raw_inputs)
    }
    assert changed and all(name.endswith("-backup") for name in changed)


def test_a_recipient_that_is_no_public_key_is_named(workspace):
    workspace.config["backups"] = {**workspace.config.get("backups", {}), "env_recipient": "not-a-key"}
    problems = "\n".join(problems_of(workspace))
    assert "fleet:backups.env_recipient" in problems or "backups.env_recipient" in problems
    assert "not base64" in problems
