"""The pieces of the Kubernetes tier that need no cluster: the image packer and the fixture's network rule."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

from fleet.paths import PROJECT_ROOT
from tests.support.kube import POD_CIDR, KubeAPI, pod_http_get


def load_packer():
    spec = importlib.util.spec_from_file_location("pack_image", PROJECT_ROOT / "kubernetes" / "pack_image.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_packed_image_is_a_deterministic_docker_archive(tmp_path: Path):
    binary = tmp_path / "app"
    binary.write_bytes(b"\x7fELF not really")
    packer = load_packer()
    first = packer.pack(binary, "/app", "localhost/app:1", tmp_path / "a.tar", ["PORT=8080"], 8080)
    second = packer.pack(binary, "/app", "localhost/app:1", tmp_path / "b.tar", ["PORT=8080"], 8080)
    assert first == second, "the same binary must give the same image ID"
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()

    with tarfile.open(tmp_path / "a.tar") as archive:
        (manifest,) = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest["RepoTags"] == ["localhost/app:1"]
        config_bytes = archive.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
        assert f"sha256:{hashlib.sha256(config_bytes).hexdigest()}" == first
        layer = archive.extractfile(manifest["Layers"][0]).read()  # type: ignore[union-attr]
    config = json.loads(config_bytes)
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Entrypoint"] == ["/app"] and "PORT=8080" in config["config"]["Env"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as layer_tar:
        member = layer_tar.getmember("app")
        assert member.mode == 0o755 and layer_tar.extractfile(member).read() == binary.read_bytes()  # type: ignore[union-attr]


@pytest.mark.parametrize("address", ["192.0.2.2", "8.8.8.8", "10.96.0.1", "127.0.0.1"])
def test_direct_pod_requests_go_only_to_pod_addresses(address: str):
    # Anything outside the pods' subnet (an address the node found by itself, a service IP, the internet) is refused before any traffic.
    with pytest.raises(ValueError, match="not a pod address"):
        pod_http_get(address, 8080)


def test_the_pod_subnet_is_private():
    assert POD_CIDR.is_private and POD_CIDR.prefixlen == 24


def test_rest_paths_of_the_kinds_tests_create():
    assert KubeAPI.path_of("Namespace") == "/api/v1/namespaces"
    assert KubeAPI.path_of("Deployment", "web", "acme") == "/apis/apps/v1/namespaces/acme/deployments/web"
    assert KubeAPI.path_of("ResourceQuota", namespace="acme") == "/api/v1/namespaces/acme/resourcequotas"
    with pytest.raises(KeyError, match="not 'Gizmo'"):
        KubeAPI.path_of("Gizmo")
