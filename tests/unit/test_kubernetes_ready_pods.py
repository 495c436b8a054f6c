"""ReadyPods' own logic without a cluster: which pods count as ready, how a kubeconfig is read, when `diff` reads again.

Against a real API server it runs in tests/kubernetes/test_runtime_engine.py."""

from __future__ import annotations

import ssl

import pytest
import yaml

from components.providers.kube_pods import ReadyPodsProvider, api_client, ready_addresses


def pod(ip, phase="Running", ready="True", terminating=False):
    metadata = {"name": f"pod-{ip}", **({"deletionTimestamp": "2026-11-30T03:00:00Z"} if terminating else {})}
    return {"metadata": metadata, "status": {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": ready}]}}


def test_only_running_ready_pods_that_are_not_terminating_count():
    pods = [pod("10.244.0.7"), pod("10.244.0.5"), pod("10.244.0.6", ready="False"), pod("10.244.0.8", phase="Pending"), pod("10.244.0.9", terminating=True)]
    assert ready_addresses(pods, 8080) == ["10.244.0.5:8080", "10.244.0.7:8080"]
    assert ready_addresses([{"metadata": {}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}], 80) == []


def kubeconfig(**user):
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fleet",
            "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": user}],
            "contexts": [{"name": "fleet", "context": {"cluster": "local", "user": "admin"}}],
        }
    )


def test_a_kubeconfig_is_read_from_its_text_or_its_file(tmp_path):
    client = api_client(kubeconfig(token="abc"))
    assert client.server == "https://127.0.0.1:6443" and client.headers == {"Authorization": "Bearer abc"}
    assert client.context.verify_mode == ssl.CERT_NONE
    path = tmp_path / "config"
    path.write_text(kubeconfig(username="fleet", password="pw"))
    assert api_client(str(path)).headers["Authorization"].startswith("Basic ")
    with pytest.raises(ValueError, match="kubeconfig has no context 'other' \\(it has: fleet\\)"):
        api_client(str(path), "other")


def test_diff_reports_a_rollout_without_reading_and_never_replaces():
    olds = {"namespace": "tenant-a", "selector": {"tenant": "a"}, "port": 80, "revision": 1, "expected": 1, "addresses": ["10.244.0.5:80"], "kubeconfig": "x"}
    result = ReadyPodsProvider().diff("id", olds, {**olds, "revision": 2})
    assert result.changes is True and result.replaces == []
    result = ReadyPodsProvider().diff("id", olds, {**olds, "expected": 0})
    assert result.changes is True


def test_a_read_failure_names_the_resource():
    from components.providers import ProviderError

    props = {"resource_name": "a-backend-pods", "kubeconfig": kubeconfig(token="t"), "namespace": "tenant-a", "selector": {}, "port": 80, "expected": 1}
    props["kubeconfig"] = props["kubeconfig"].replace("https://127.0.0.1:6443", "https://127.0.0.1:1")  # nothing listens there
    with pytest.raises(ProviderError, match="ReadyPods 'a-backend-pods': read pods failed"):
        ReadyPodsProvider().create(props)
