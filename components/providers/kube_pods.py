"""ReadyPods: the `podIP:port` of a tenant service's ready pods, read through the Kubernetes API server, for Caddy to dial.

Used with `routing: pods` (a cluster without a service proxy where Caddy runs). The official provider's objects
don't carry pod addresses, so this small resource lists the pods of a Deployment's selector in its namespace and
keeps those that are Running, Ready and not terminating. It is declared after its Deployment (which the official
provider awaits until the rollout is complete), so a route switches to new pods only once they are ready; `diff`
reads the live pods again, so an `up` after a pod moved brings the route up to date and a second preview with
nothing moved shows no change. It writes nothing to the cluster; delete is a no-op.

The kubeconfig arrives as an input (a path, or the kubeconfig itself as a secret); no client is kept.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pulumi
import yaml
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.providers import RESOURCE_NAME_KEY, FleetDynamicResource, failure_context, is_unknown, resource_label

__all__ = ["ReadyPods", "ReadyPodsArgs", "ReadyPodsProvider", "ready_addresses", "api_client"]

API_TIMEOUT_SECONDS = 15
IDENTITY_KEYS = ("namespace", "selector", "port", "revision", "expected")
"""Inputs whose change means the pods must be read again (the Deployment rolled, was resized or moved)."""


@dataclass(frozen=True)
class ApiClient:
    """Where and how to reach an API server (built per call from the kubeconfig; never stored)."""

    server: str
    context: ssl.SSLContext
    headers: dict[str, str]

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.server.rstrip("/") + path, headers={"Accept": "application/json", **self.headers})
        with urllib.request.urlopen(request, timeout=API_TIMEOUT_SECONDS, context=self.context) as response:  # noqa: S310 - the kubeconfig's server
            return json.loads(response.read())


def _data_or_file(entry: dict[str, Any], key: str) -> Optional[bytes]:
    """A kubeconfig credential given inline (`<key>-data`, base64) or as a file (`<key>`)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return Path(os.path.expanduser(entry[key])).read_bytes()
    return None


def api_client(kubeconfig: str, context_name: Optional[str] = None) -> ApiClient:
    """An API client from a kubeconfig (its text, or the path of a file) and a context (default: its current one)."""
    text = kubeconfig
    if "\n" not in kubeconfig and Path(os.path.expanduser(kubeconfig)).is_file():
        text = Path(os.path.expanduser(kubeconfig)).read_text()
    config = yaml.safe_load(text) or {}
    wanted = context_name or config.get("current-context")
    contexts = {item["name"]: item["context"] for item in config.get("contexts") or []}
    if wanted not in contexts:
        raise ValueError(f"kubeconfig has no context {wanted!r} (it has: {', '.join(sorted(contexts)) or 'none'})")
    cluster = {item["name"]: item["cluster"] for item in config.get("clusters") or []}[contexts[wanted]["cluster"]]
    user = {item["name"]: item.get("user") or {} for item in config.get("users") or []}.get(contexts[wanted].get("user"), {})
    tls = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    authority = _data_or_file(cluster, "certificate-authority")
    if authority is not None:
        tls.load_verify_locations(cadata=authority.decode())
    headers: dict[str, str] = {}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        headers["Authorization"] = f"Bearer {Path(user['tokenFile']).read_text().strip()}"
    elif user.get("username"):
        basic = base64.b64encode(f"{user['username']}:{user.get('password', '')}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    certificate, key = _data_or_file(user, "client-certificate"), _data_or_file(user, "client-key")
    if certificate is not None and key is not None:
        # ssl loads a client certificate only from files: a private folder that is gone when this returns.
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder, "client.crt"), Path(folder, "client.key")
            for path, content in ((cert_file, certificate), (key_file, key)):
                path.touch(mode=0o600)
                path.write_bytes(content)
            tls.load_cert_chain(str(cert_file), str(key_file))
    return ApiClient(cluster["server"], tls, headers)


def ready_addresses(pods: Sequence[dict[str, Any]], port: int) -> list[str]:
    """`podIP:port` of the pods that are Running, Ready and not terminating, sorted."""
    addresses = []
    for pod in pods:
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        if metadata.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
            continue
        ready = any(condition.get("type") == "Ready" and condition.get("status") == "True" for condition in status.get("conditions") or [])
        if ready:
            addresses.append(f"{status['podIP']}:{port}")
    return sorted(addresses)


def _read(props: dict[str, Any]) -> list[str]:
    client = api_client(props["kubeconfig"], props.get("context") or None)
    selector = ",".join(f"{key}={value}" for key, value in sorted((props.get("selector") or {}).items()))
    path = f"/api/v1/namespaces/{urllib.parse.quote(props['namespace'])}/pods?labelSelector={urllib.parse.quote(selector)}"
    return ready_addresses(client.get(path).get("items") or [], int(props["port"]))


def _label(props: dict[str, Any]) -> str:
    return resource_label("ReadyPods", props)


class ReadyPodsProvider(ResourceProvider):
    """Reads ready pods' addresses; writes nothing (see the module docstring)."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in IDENTITY_KEYS if is_unknown(news.get(key)) or olds.get(key) != news.get(key)]
        if not changed and not is_unknown(news.get("kubeconfig")):
            with failure_context(_label(news), "read pods"):
                if _read(news) != list(olds.get("addresses") or []):
                    changed.append("addresses")
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with failure_context(_label(props), "read pods"):
            addresses = _read(props)
        return CreateResult(f"{props['namespace']}/{props.get(RESOURCE_NAME_KEY, 'pods')}", {**props, "addresses": addresses})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with failure_context(_label(news), "read pods"):
            return UpdateResult({**news, "addresses": _read(news)})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with failure_context(_label(props), "read pods"):
            return ReadResult(id_, {**props, "addresses": _read(props)})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # it only reads


@dataclass(frozen=True)
class ReadyPodsArgs:
    """Inputs of ReadyPods."""

    kubeconfig: pulumi.Input[str]
    """A kubeconfig file's path, or the kubeconfig itself (secret)."""
    context: Optional[str]
    """Its context (None: the current one)."""
    namespace: pulumi.Input[str]
    """The tenant's namespace."""
    selector: dict[str, str]
    """The Deployment's pod selector."""
    port: int
    """The port the service listens on in its pods."""
    revision: pulumi.Input[Any]
    """What changes when the Deployment rolls (its generation and replica count): the pods are read again then."""
    expected: int
    """How many replicas the Deployment declares (0 while suspended)."""


class ReadyPods(FleetDynamicResource, module="kube_pods", name="ReadyPods"):
    """The ready pods of one of a tenant's Deployments, as Caddy upstreams (`addresses`)."""

    addresses: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ReadyPodsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            RESOURCE_NAME_KEY: name,
            "kubeconfig": pulumi.Output.secret(args.kubeconfig),
            "context": args.context or "",
            "namespace": args.namespace,
            "selector": args.selector,
            "port": args.port,
            "revision": args.revision,
            "expected": args.expected,
            "addresses": None,
        }
        super().__init__(ReadyPodsProvider(), name, props, opts)
