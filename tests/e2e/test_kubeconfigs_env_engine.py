"""Under the real engine: $FLEET_KUBECONFIGS reaches the program as the secret fleet:kubeconfigs.<key>, next
to one the stack file holds, and only as ciphertext in the run's scratch stack file."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
from pulumi import automation as auto

from fleet.engine import driver
from fleet.engine.kubeconfigs import set_run_kubeconfigs
from fleet.offline.kubeconfigs_env import KUBECONFIGS_ENV

MARK = "token-from-ci-7f3a"
KUBECONFIG = f"apiVersion: v1\nkind: Config\nusers: [{{name: ci, user: {{token: {MARK}}}}}]\n"


def _program() -> None:
    kubeconfigs = pulumi.Config("fleet").require_secret_object("kubeconfigs")
    pulumi.export("keys", kubeconfigs.apply(lambda value: sorted(value)))
    pulumi.export("k8s_1_has_the_token", kubeconfigs.apply(lambda value: MARK in value["k8s-1"]))


def test_the_runs_kubeconfigs_are_secret_config_beside_the_files_own(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    stack = driver.stack_for("kubeconfigs", _program, work_dir=work, backend_dir=tmp_path / "state")
    # the stack file already holds one cluster's kubeconfig (as `pulumi config set --secret --path` writes it)
    stack.set_config("fleet:kubeconfigs.k8s-0", auto.ConfigValue(value="apiVersion: v1\nkind: Config\n", secret=True), path=True)

    keys = set_run_kubeconfigs(stack, {KUBECONFIGS_ENV: json.dumps({"k8s-1": KUBECONFIG, "k8s-2": KUBECONFIG})})
    assert keys == ["k8s-1", "k8s-2"]
    stack_file = (work / "Pulumi.kubeconfigs.yaml").read_text()
    assert MARK not in stack_file and stack_file.count("secure:") == 3  # encrypted with the stack's passphrase

    summary = driver.run("up", stack, on_output=None)
    outputs = stack.outputs()
    assert outputs["keys"].value == ["k8s-0", "k8s-1", "k8s-2"] and outputs["keys"].secret
    assert outputs["k8s_1_has_the_token"].value is True
    assert summary["outputs"]["keys"] == "[secret]"


def test_nothing_is_set_without_the_variable(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    stack = driver.stack_for("no-kubeconfigs", lambda: None, work_dir=work, backend_dir=tmp_path / "state")
    assert set_run_kubeconfigs(stack, {}) == []
    assert "fleet:kubeconfigs" not in stack.get_all_config()
