"""$FLEET_KUBECONFIGS: the deploy workflows' kubeconfigs for one run, checked without ever printing one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleet.errors import SpecError
from fleet.model.load import load_fleet
from fleet.offline.kubeconfigs_env import KUBECONFIGS_ENV, kubeconfigs_from_env
from fleet.offline.plan import stack_config
from fleet.paths import PROJECT_ROOT

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: [{name: k8s-1, cluster: {server: 'https://127.0.0.1:6443', certificate-authority-data: c2VjcmV0}}]\n"


def test_unset_or_blank_hands_nothing():
    assert kubeconfigs_from_env({}) == {}
    assert kubeconfigs_from_env({KUBECONFIGS_ENV: "  \n"}) == {}


def test_an_object_of_host_keys_gives_their_kubeconfigs():
    assert kubeconfigs_from_env({KUBECONFIGS_ENV: json.dumps({"k8s-1": KUBECONFIG, "k8s-2": KUBECONFIG})}) == {"k8s-1": KUBECONFIG, "k8s-2": KUBECONFIG}


def test_bad_json_names_the_variable_and_not_its_text():
    with pytest.raises(SpecError) as raised:
        kubeconfigs_from_env({KUBECONFIGS_ENV: '{"k8s-1": "' + "token-abc123\n"})
    (problem,) = raised.value.problems
    assert str(problem).startswith(f"{KUBECONFIGS_ENV}: is not JSON at character") and "token-abc123" not in str(raised.value)


def test_every_bad_entry_is_listed_at_once():
    with pytest.raises(SpecError) as raised:
        kubeconfigs_from_env({KUBECONFIGS_ENV: json.dumps({"K8S_1": KUBECONFIG, "default": KUBECONFIG, "k8s-2": "", "k8s-3": {"nested": True}})})
    problems = [str(problem) for problem in raised.value.problems]
    assert problems == [
        f"{KUBECONFIGS_ENV}: 'K8S_1': keys are keys of fleet:kubernetes_hosts (DNS labels other than 'default')",
        f"{KUBECONFIGS_ENV}: 'default': keys are keys of fleet:kubernetes_hosts (DNS labels other than 'default')",
        f"{KUBECONFIGS_ENV}: 'k8s-2': must be the kubeconfig's text (a non-empty string)",
        f"{KUBECONFIGS_ENV}: 'k8s-3': must be the kubeconfig's text (a non-empty string)",
    ]
    with pytest.raises(SpecError, match="must be a JSON object"):
        kubeconfigs_from_env({KUBECONFIGS_ENV: json.dumps([KUBECONFIG])})


def _example_without_kubeconfig_secret(tmp_path: Path) -> Path:
    """examples/kubernetes-runtime with no fleet:kubeconfigs in its stack file (a CI checkout: the secret comes from the run)."""
    root = tmp_path / "kubernetes-runtime"
    shutil.copytree(PROJECT_ROOT / "examples" / "kubernetes-runtime", root)
    stack_file = root / "Pulumi.prod.yaml"
    lines = stack_file.read_text().splitlines(keepends=True)
    start = next(index for index, line in enumerate(lines) if line.startswith("  fleet:kubeconfigs:"))
    del lines[start:start + 3]
    stack_file.write_text("".join(lines))
    assert "fleet:kubeconfigs" not in stack_file.read_text().replace("'fleet:kubeconfigs.k8s-1'", "").replace("fleet:kubeconfigs.k8s-1 above", "")
    return root


def test_a_cluster_without_a_kubeconfig_is_refused_unless_the_run_hands_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = _example_without_kubeconfig_secret(tmp_path)
    monkeypatch.delenv(KUBECONFIGS_ENV, raising=False)
    with pytest.raises(SpecError, match="kubernetes_hosts.k8s-1: no kubeconfig file and no secret fleet:kubeconfigs.k8s-1"):
        load_fleet(root / "tenants", stack_config("prod", root), root=root)

    monkeypatch.setenv(KUBECONFIGS_ENV, json.dumps({"k8s-1": KUBECONFIG}))
    config = stack_config("prod", root)
    assert config["kubeconfigs"] == {"k8s-1": "[secret]"}  # validation sees which cluster has one, never its text
    assert load_fleet(root / "tenants", config, root=root).environment.kubernetes_hosts["k8s-1"].kubeconfig is None
