"""A real single-node Kubernetes cluster on loopback, for the tests/kubernetes tier.

`KubeCluster(scratch).start()` runs etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, containerd and kubelet as child processes, all bound to 127.0.0.1 on
free ports, with their files in `scratch`. Pods get addresses on a `cni0` bridge that
the cluster creates (bridge + host-local CNI plugins, no gateway, no masquerade, so
ip_forward and iptables stay untouched). The host holds 10.244.0.1 on that bridge,
so the API server's pod proxy and the kubelet's probes reach pods directly.

Network rule: traffic goes only to loopback, or to pod addresses inside `POD_CIDR`,
whose network namespaces this cluster's containerd created. The node's address is
pinned to 127.0.0.1 (`--node-ip`), never one that the kubelet detected on its own.

`stop()` removes everything the cluster wrote to the host, also after a failed test:
its pods' processes, mounts and network namespaces, the cgroups `kubepods` and
`k8s.io`, the bridge, and the fixed paths kubelet and containerd write to (HOST_PATHS)
that did not exist before it started. Binaries and images come from
`./scripts/setup-kubernetes` (see docs/kubernetes.md); without them `KubeMissing`
says so, and the `kube_cluster` fixture skips with that reason.

Only one such cluster can run on a machine at a time (the bridge, the cgroups and
the kubelet's fixed paths are machine-wide): `start()` waits for a machine-wide lock.
"""

from __future__ import annotations

import base64
import fcntl
import http.client
import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleet.paths import PROJECT_ROOT
from tests.support import kube_router

KUBE_DIR = PROJECT_ROOT / ".cache" / "kubernetes"
KUBE_BIN = KUBE_DIR / "bin"
KUBE_IMAGES = KUBE_DIR / "images"
KUBE_VERSION = (PROJECT_ROOT / "kubernetes" / "VERSION").read_text().strip()
SETUP_COMMAND = "./scripts/setup-kubernetes (or ./scripts/setup --kubernetes)"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "pulumi-resource-kubernetes", "kube-router")
HOST_TOOLS = {  # tool -> Debian package
    "etcd": "etcd-server",
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "ip": "iproute2",
    "iptables": "iptables",  # iptables, iptables-save/-restore and ipset: kube-router's policy controller
    "iptables-save": "iptables",
    "iptables-restore": "iptables",
    "ipset": "ipset",
    "openssl": "openssl",
}
CNI_DIR = Path("/usr/lib/cni")
BRIDGE = "cni0"
POD_CIDR = ipaddress.ip_network("10.244.0.0/24")
#: The host's address on the bridge: on the pods' subnet, so no route or forwarding is needed.
BRIDGE_ADDRESS = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/24"
#: Fixed host paths kubelet and containerd write to whatever their flags say; removed on stop
#: when they did not exist before start.
HOST_PATHS = (
    Path("/var/log/pods"),
    Path("/var/log/containers"),
    Path("/var/lib/kubelet"),
    Path("/var/lib/cni"),
    Path("/run/containerd"),
    Path("/run/netns"),
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAMES = ("kubepods", "k8s.io")
MACHINE_LOCK = Path("/tmp/tenant-fleet-kubernetes.lock")
ADMIN_USER = "fleet-admin"


class KubeMissing(RuntimeError):
    """The binaries, images or host tools the cluster needs are not installed."""


class KubeError(RuntimeError):
    """The cluster did not start, or an API call failed."""


class ApiError(KubeError):
    """The API server answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)[:500]
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.body = body


def missing_parts() -> list[str]:
    """What `./scripts/setup-kubernetes` (or the OS) still has to provide; empty when all is there."""
    problems = [f"{KUBE_BIN / name} (run {SETUP_COMMAND})" for name in BINARIES if not os.access(KUBE_BIN / name, os.X_OK)]
    if not (KUBE_IMAGES / "images.json").is_file():
        problems.append(f"{KUBE_IMAGES / 'images.json'} (run {SETUP_COMMAND})")
    problems += [f"{tool} (apt-get install {package}, or run {SETUP_COMMAND})" for tool, package in HOST_TOOLS.items() if not shutil.which(tool)]
    problems += [f"{CNI_DIR / plugin} (apt-get install containernetworking-plugins)" for plugin in ("bridge", "host-local", "loopback") if not (CNI_DIR / plugin).exists()]
    if importlib.util.find_spec("pulumi_kubernetes") is None:
        problems.append(f"the Python SDK pulumi-kubernetes in the venv (run {SETUP_COMMAND})")
    if os.geteuid() != 0:
        problems.append("root (kubelet and containerd need it)")
    return problems


def images() -> dict[str, dict[str, str]]:
    """The images setup-kubernetes packed: {"pause": {"ref", "id", "archive"}, "fleet-app": {...}}."""
    return json.loads((KUBE_IMAGES / "images.json").read_text())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*command: str | Path, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise KubeError(f"{' '.join(str(part) for part in command)} failed ({result.returncode}): {result.stderr.strip()[-1000:]}")
    return result


def _wait(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5, diagnose: Callable[[], str] | None = None) -> Any:
    """Poll `check` until it returns something truthy; KubeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, KubeError, http.client.HTTPException) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    extra = f"\n{diagnose()}" if diagnose else ""
    raise KubeError(f"timed out after {timeout:.0f} s waiting for {what}{detail}{extra}")


# Collection paths for the kinds tests create through KubeAPI.create(); anything else: KubeAPI.post(path, body).
_KINDS = {
    "Namespace": ("/api/v1", False, "namespaces"),
    "Pod": ("/api/v1", True, "pods"),
    "Service": ("/api/v1", True, "services"),
    "Secret": ("/api/v1", True, "secrets"),
    "ConfigMap": ("/api/v1", True, "configmaps"),
    "ServiceAccount": ("/api/v1", True, "serviceaccounts"),
    "ResourceQuota": ("/api/v1", True, "resourcequotas"),
    "LimitRange": ("/api/v1", True, "limitranges"),
    "Deployment": ("/apis/apps/v1", True, "deployments"),
    "ReplicaSet": ("/apis/apps/v1", True, "replicasets"),
    "Job": ("/apis/batch/v1", True, "jobs"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", True, "networkpolicies"),
    "PodDisruptionBudget": ("/apis/policy/v1", True, "poddisruptionbudgets"),
}


@dataclass
class KubeAPI:
    """Plain HTTPS to the API server with a bearer token: enough for tests, no client library needed."""

    port: int
    token: str
    ca_file: Path
    timeout: float = 30.0

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json", raw: bool = False) -> Any:
        """`method path` (path from /api or /apis, query included); the decoded JSON, or the text when `raw`."""
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self._context(), timeout=self.timeout)
        try:
            payload = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = content_type
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        if response.status >= 400:
            try:
                decoded: Any = json.loads(text)
            except ValueError:
                decoded = text
            raise ApiError(method, path, response.status, decoded)
        if raw:
            return text
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str, missing_ok: bool = True) -> Any:
        try:
            return self.request("DELETE", path)
        except ApiError as exc:
            if exc.status == 404 and missing_ok:
                return None
            raise

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    @staticmethod
    def path_of(kind: str, name: str | None = None, namespace: str | None = None) -> str:
        """The REST path of a kind's collection (no name) or of one object."""
        try:
            prefix, namespaced, plural = _KINDS[kind]
        except KeyError:
            raise KeyError(f"KubeAPI.path_of knows {', '.join(sorted(_KINDS))}, not {kind!r}: use post(path, body)") from None
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
        return f"{path}/{name}" if name else path

    def create(self, manifest: dict[str, Any]) -> Any:
        """POST one object (Namespace, Pod, Deployment, ResourceQuota, ...; see _KINDS)."""
        metadata = manifest.get("metadata", {})
        return self.post(self.path_of(manifest["kind"], namespace=metadata.get("namespace")), manifest)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 90, interval: float = 0.5) -> Any:
        """Poll `check` (which may call this API) until truthy; KubeError naming `what` after `timeout`."""
        return _wait(what, check, timeout, interval)

    def pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        query = f"?labelSelector={urllib.parse.quote(selector)}" if selector else ""
        return list(self.get(f"/api/v1/namespaces/{namespace}/pods{query}")["items"])

    def wait_for_service_account(self, namespace: str, name: str = "default", timeout: float = 60) -> None:
        """Pods are refused until the namespace's service account exists (the controller makes it)."""
        self.wait_for(f"service account {namespace}/{name}", lambda: self.exists(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"), timeout)

    def wait_for_running_pods(self, namespace: str, selector: str, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        """`count` pods matching `selector` Running with every container ready."""

        def ready() -> list[dict[str, Any]] | None:
            pods = [pod for pod in self.pods(namespace, selector) if not pod["metadata"].get("deletionTimestamp")]
            good = [
                pod
                for pod in pods
                if pod.get("status", {}).get("phase") == "Running"
                and all(status.get("ready") for status in pod["status"].get("containerStatuses", []) or [{}])
            ]
            return good if len(good) >= count else None

        return list(_wait(f"{count} running pod(s) {selector} in {namespace}", ready, timeout, diagnose=lambda: self.describe_pods(namespace)))

    def describe_pods(self, namespace: str) -> str:
        """One line per pod with its phase, conditions and container states: for failure messages."""
        try:
            pods = self.pods(namespace)
            events = self.get(f"/api/v1/namespaces/{namespace}/events")["items"]
        except (OSError, KubeError) as exc:
            return f"(could not list pods in {namespace}: {exc})"
        lines = []
        for pod in pods:
            status = pod.get("status", {})
            states = [json.dumps(container.get("state")) for container in status.get("containerStatuses", []) or []]
            conditions = [f"{c['type']}={c['status']}" for c in status.get("conditions", []) or []]
            lines.append(f"pod {pod['metadata']['name']}: {status.get('phase')} {' '.join(conditions)} {' '.join(states)}")
        lines += [f"event {e.get('reason')}: {e.get('message')}" for e in events[-15:]]
        return "\n".join(lines) or f"(no pods in {namespace})"

    def pod_proxy_get(self, namespace: str, pod: str, port: int, path: str = "/") -> str:
        """GET `path` on a pod's port through the API server's pod proxy; the body as text."""
        return str(self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}", raw=True))


def pod_http_get(pod_ip: str, port: int, path: str = "/", timeout: float = 10) -> tuple[int, str]:
    """GET a pod's HTTP endpoint straight over the bridge: (status, body). Refuses any address outside POD_CIDR."""
    if ipaddress.ip_address(pod_ip) not in POD_CIDR:
        raise ValueError(f"{pod_ip} is not a pod address in {POD_CIDR}: test traffic goes only to loopback or this cluster's pods")
    connection = http.client.HTTPConnection(pod_ip, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class KubeCluster:
    """A single-node cluster in `scratch`; `start()`, then `api`, `kubeconfig`, `stop()`."""

    scratch: Path
    processes: list[_Process] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    token: str = ""
    _preexisting: set[Path] = field(default_factory=set)
    _lock_file: Any = None
    _bridge_created: bool = False
    _firewall: kube_router.HostFirewall = field(default_factory=kube_router.HostFirewall)

    # --- paths -------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.scratch / "pki"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for the admin user (cluster-admin through system:masters)."""
        return self.scratch / "admin.kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.scratch / "containerd" / "containerd.sock"

    @property
    def api(self) -> KubeAPI:
        return KubeAPI(self.ports["apiserver"], self.token, self.pki / "ca.crt")

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def kubeconfig_text(self) -> str:
        return self.kubeconfig.read_text()

    def images(self) -> dict[str, dict[str, str]]:
        return images()

    @property
    def app_image(self) -> str:
        """The tenant app image reference, e.g. localhost/fleet-app:1.0.0 (use imagePullPolicy: Never)."""
        return images()["fleet-app"]["ref"]

    def log(self, name: str, lines: int = 40) -> str:
        """The last lines of a component's log (etcd, kube-apiserver, kubelet, containerd, ...)."""
        path = self.scratch / "logs" / f"{name}.log"
        if not path.exists():
            return f"(no log for {name})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- start -------------------------------------------------------------------
    def start(self, lock_timeout: float = 900) -> KubeCluster:
        """Start every component and wait for the node to be Ready; stops what started if anything fails."""
        problems = missing_parts()
        if problems:
            raise KubeMissing("the Kubernetes tier needs: " + "; ".join(problems))
        self._lock(lock_timeout)
        try:
            self._preexisting = {path for path in HOST_PATHS if path.exists()} | {
                directory for directory in self._cgroup_dirs() if directory.exists()
            }
            self._firewall.snapshot()  # before kube-router runs: its clean-up removes only what appears after
            self.scratch.mkdir(parents=True, exist_ok=True)
            (self.scratch / "logs").mkdir(exist_ok=True)
            for name in ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kubelet", "kubelet_healthz"):
                self.ports[name] = free_port()
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._start_scheduler()
            self._setup_bridge()
            self._start_containerd()
            self._import_images()
            self._start_kubelet()
            self._wait_node_ready()
            self._start_policy_controller()
        except BaseException:
            self.stop()
            raise
        return self

    def _lock(self, timeout: float) -> None:
        self._lock_file = MACHINE_LOCK.open("a+")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock_file.close()
                    self._lock_file = None
                    raise KubeError(f"another test cluster holds {MACHINE_LOCK} (one per machine: cni0, cgroups and /var/lib/kubelet are shared)") from None
                time.sleep(2)
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"{os.getpid()} {self.scratch}\n")
        self._lock_file.flush()

    def _spawn(self, name: str, command: list[str | Path], env: dict[str, str] | None = None) -> _Process:
        log = self.scratch / "logs" / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [str(part) for part in command],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group, so stop() ends it and only it
            )
        process = _Process(name, popen, log)
        self.processes.append(process)
        return process

    def _check_alive(self, process: _Process) -> bool:
        """Raise when `process` has exited; False otherwise, so that `_check_alive(p) or ready()` waits on `ready()`."""
        if process.popen.poll() is not None:
            raise KubeError(f"{process.name} exited with {process.popen.returncode}; its log ends:\n{self.log(process.name)}")
        return False

    def _write_pki(self) -> None:
        """A CA, the API server's serving certificate (127.0.0.1, localhost, the service IP), the service-account key pair, tokens."""
        self.pki.mkdir(parents=True, exist_ok=True)
        pki = self.pki
        _run("openssl", "genrsa", "-out", pki / "ca.key", "2048")
        _run("openssl", "req", "-x509", "-new", "-key", pki / "ca.key", "-subj", "/CN=tenant-fleet-test-ca", "-days", "2", "-out", pki / "ca.crt")
        _run("openssl", "genrsa", "-out", pki / "apiserver.key", "2048")
        _run("openssl", "req", "-new", "-key", pki / "apiserver.key", "-subj", "/CN=kube-apiserver", "-out", pki / "apiserver.csr")
        (pki / "apiserver.ext").write_text(
            "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
            "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
        )
        _run(
            "openssl", "x509", "-req", "-in", pki / "apiserver.csr", "-CA", pki / "ca.crt", "-CAkey", pki / "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", pki / "apiserver.ext", "-out", pki / "apiserver.crt",
        )
        _run("openssl", "genrsa", "-out", pki / "sa.key", "2048")
        _run("openssl", "rsa", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub")
        self.token = base64.b32encode(os.urandom(20)).decode().lower()
        # Every component acts as a member of system:masters: this is a throwaway single-user cluster.
        users = {ADMIN_USER: self.token, "system:kube-controller-manager": _token(), "system:kube-scheduler": _token(), "system:node:localhost": _token()}
        (pki / "tokens.csv").write_text("".join(f'{token},{user},{user},"system:masters"\n' for user, token in users.items()))
        (pki / "tokens.csv").chmod(0o600)
        for user, token in users.items():
            name = "admin" if user == ADMIN_USER else user.split(":")[-1]
            self._write_kubeconfig(self.scratch / f"{name}.kubeconfig", user, token)

    def _write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        ca_data = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "tenant-fleet-test", "cluster": {"server": f"https://127.0.0.1:{self.ports['apiserver']}", "certificate-authority-data": ca_data}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "tenant-fleet-test", "context": {"cluster": "tenant-fleet-test", "user": user}}],
            "current-context": "tenant-fleet-test",
        }
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        path.chmod(0o600)

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        process = self._spawn("etcd", [
            "etcd", "--name", "fleet", "--data-dir", self.scratch / "etcd",
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"fleet={peer}", "--listen-metrics-urls", "",
            "--log-level", "warn",
        ])
        _wait("etcd", lambda: self._check_alive(process) or _http_ok(f"{client}/health"), 30)

    def _start_apiserver(self) -> None:
        pki = self.pki
        process = self._spawn("kube-apiserver", [
            KUBE_BIN / "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--cert-dir={pki}",
            f"--token-auth-file={pki / 'tokens.csv'}", "--authorization-mode=RBAC", "--anonymous-auth=false",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--allow-privileged=false",
            "--profiling=false",
            "--v=1",
        ])
        _wait("kube-apiserver /readyz", lambda: self._check_alive(process) or self.api.request("GET", "/readyz", raw=True) == "ok", 90,
              diagnose=lambda: self.log("kube-apiserver"))

    def _start_controller_manager(self) -> None:
        process = self._spawn("kube-controller-manager", [
            KUBE_BIN / "kube-controller-manager",
            f"--kubeconfig={self.scratch / 'kube-controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['controller_manager']}",
            # All default controllers: namespaces and garbage collection (deletes finish),
            # deployments, replica sets, jobs, endpoints, service accounts and their tokens,
            # the kube-root-ca.crt publisher (pods mount it), resource quotas (admission needs
            # their status), disruption budgets.
            "--controllers=*",
            "--leader-elect=false",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=false",
            "--profiling=false",
            "--v=1",
        ])
        self._check_alive(process)

    def _start_scheduler(self) -> None:
        process = self._spawn("kube-scheduler", [
            KUBE_BIN / "kube-scheduler",
            f"--kubeconfig={self.scratch / 'kube-scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={self.scratch / 'kube-scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={self.scratch / 'kube-scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['scheduler']}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ])
        self._check_alive(process)

    def _setup_bridge(self) -> None:
        """cni0 with the host's address on the pods' subnet; the bridge plugin (isGateway false) attaches pods to it."""
        if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            raise KubeError(f"a {BRIDGE} bridge already exists on this host: another cluster is running or a run did not clean up (ip link delete {BRIDGE})")
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        self._bridge_created = True
        _run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/{POD_CIDR.prefixlen}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        net_d = self.scratch / "cni" / "net.d"
        net_d.mkdir(parents=True, exist_ok=True)
        (net_d / "10-tenant-fleet.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0",
            "name": "tenant-fleet",
            "plugins": [{
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(POD_CIDR), "gateway": BRIDGE_ADDRESS}]],
                    "dataDir": str(self.scratch / "cni" / "ipam"),
                },
            }],
        }, indent=2))

    def _start_containerd(self) -> None:
        base = self.scratch / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        pause = images()["pause"]["ref"]
        config = f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{base / 'containerd.ttrpc.sock'}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # The VM lacks CAP_SYS_RESOURCE: without this every sandbox fails with
  # "runc create failed: ... can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{base / 'runc'}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_DIR}"
    conf_dir = "{self.scratch / 'cni' / 'net.d'}"
"""
        (base / "config.toml").write_text(config)
        process = self._spawn("containerd", ["containerd", "--config", base / "config.toml", "--log-level", "warn"])
        _wait(
            "containerd",
            lambda: self._check_alive(process) or _run("ctr", "--address", self.containerd_socket, "version", check=False).returncode == 0,
            30,
            diagnose=lambda: self.log("containerd"),
        )

    def ctr(self, *args: str, timeout: float = 120) -> str:
        """Run `ctr -n k8s.io <args>` against this cluster's containerd; its stdout."""
        return _run("ctr", "--address", self.containerd_socket, "-n", "k8s.io", *args, timeout=timeout).stdout

    def _import_images(self) -> None:
        for image in images().values():
            self.ctr("images", "import", "--no-unpack=false", str(KUBE_IMAGES / image["archive"]))
        listed = self.ctr("images", "ls", "-q")
        missing = [image["ref"] for image in images().values() if image["ref"] not in listed.split()]
        if missing:
            raise KubeError(f"images not in containerd after import: {missing}")

    def _start_kubelet(self) -> None:
        kubelet_dir = self.scratch / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": self.ports["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.ports["kubelet_healthz"],
            # The API server reaches the kubelet on loopback only; anyone there is trusted.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",  # no systemd; cgroups v1 (hybrid)
            "failSwapOn": False,
            "failCgroupV1": False,
            "makeIPTablesUtilChains": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "podLogsDir": str(self.scratch / "pod-logs"),
            "resolvConf": "",
            "clusterDomain": "cluster.local",
            "registerNode": True,
            "maxPods": 40,
            "serializeImagePulls": False,
            # The images exist only in containerd: never let image GC or disk pressure remove them or evict pods.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "enableDebuggingHandlers": True,
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
        }
        (kubelet_dir / "config.json").write_text(json.dumps(config, indent=2))
        process = self._spawn("kubelet", [
            KUBE_BIN / "kubelet",
            f"--config={kubelet_dir / 'config.json'}",
            f"--kubeconfig={self.scratch / 'localhost.kubeconfig'}",
            "--hostname-override=localhost",  # the API server reaches the kubelet on loopback for logs and exec
            "--node-ip=127.0.0.1",  # never advertise an address the kubelet detected by itself
            f"--root-dir={kubelet_dir / 'root'}",
            f"--cert-dir={kubelet_dir / 'pki'}",
            "--v=1",
        ])
        self._check_alive(process)

    def node(self) -> dict[str, Any]:
        return dict(self.api.get("/api/v1/nodes/localhost"))

    def _wait_node_ready(self) -> None:
        kubelet = next(process for process in self.processes if process.name == "kubelet")

        def ready() -> bool:
            self._check_alive(kubelet)
            conditions = self.node().get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        _wait("node localhost to be Ready", ready, 120, diagnose=lambda: self.log("kubelet"))
        # The kubelet refuses a loopback node IP for its status ("nodeIP can't be loopback
        # address") and publishes no address at all. Its status updates leave alone the
        # addresses it failed to compute, so publishing loopback here sticks: the API server
        # reaches the kubelet on 127.0.0.1 (logs, exec), and the node never advertises an
        # address it detected by itself.
        self.api.request(
            "PATCH",
            "/api/v1/nodes/localhost/status",
            {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}]}},
            content_type="application/strategic-merge-patch+json",
        )
        addresses = self.advertised_addresses()
        if addresses != {"127.0.0.1", "localhost"}:
            raise KubeError(f"node advertises {sorted(addresses)}: only 127.0.0.1 and localhost may be")

    def _start_policy_controller(self) -> None:
        """kube-router's network policy controller (tests/support/kube_router.py); ready once its jump rules are in place."""
        process = self._spawn("kube-router", [KUBE_BIN / "kube-router", *kube_router.arguments(self.kubeconfig, SERVICE_CIDR)])

        def synced() -> bool:
            self._check_alive(process)
            return len(kube_router.FilterState.read().jump_rules()) == len(kube_router.BUILTIN_CHAINS)

        _wait("kube-router's first sync (its jump rules in INPUT, FORWARD and OUTPUT)", synced, 60, diagnose=lambda: self.log("kube-router"))

    def advertised_addresses(self) -> set[str]:
        """Every address the node object publishes: 127.0.0.1 and localhost only."""
        return {address["address"] for address in self.node()["status"].get("addresses", []) or []}

    def pod_log(self, pod: dict[str, Any], container: str, attempt: int = 0) -> str:
        """A container's log, read from the kubelet's podLogsDir (also while the container is not running)."""
        meta = pod["metadata"]
        path = self.scratch / "pod-logs" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / container / f"{attempt}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- pods ----------------------------------------------------------------------
    def pod_cgroup(self, pod: dict[str, Any], container: str | None = None) -> dict[str, Path]:
        """The container's cgroup directory per v1 controller ("cpu", "memory"), found on the host by pod UID and container ID."""
        uid = pod["metadata"]["uid"]
        statuses = pod["status"]["containerStatuses"]
        status = next(s for s in statuses if container is None or s["name"] == container)
        container_id = status["containerID"].split("://", 1)[1]
        found: dict[str, Path] = {}
        for controller in ("cpu", "memory"):
            base = CGROUP_ROOT / controller / "kubepods"
            for candidate in base.rglob(container_id):
                if f"pod{uid}" in str(candidate):
                    found[controller] = candidate
        if set(found) != {"cpu", "memory"}:
            raise KubeError(f"cgroups of container {container_id} (pod {uid}) not found under {CGROUP_ROOT}/{{cpu,memory}}/kubepods")
        return found

    # --- stop ----------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop everything and remove what the cluster wrote to the host; returns what could not be removed."""
        leftovers: list[str] = []
        # No new pods from here on (a Deployment would replace each pod the drain deletes).
        for process in [p for p in self.processes if p.name in ("kube-scheduler", "kube-controller-manager")]:
            _terminate(process.popen)
        if any(p.name == "kubelet" and p.popen.poll() is None for p in self.processes):
            self._drain_pods()
        # Reverse start order: kubelet before containerd, the control plane last.
        for process in reversed(self.processes):
            _terminate(process.popen)
        self.processes.clear()
        leftovers += self._firewall.remove()  # kube-router has stopped: nothing writes them back
        self._kill_shims()
        leftovers += self._remove_cgroups()
        leftovers += self._unmount_under(self.scratch)
        leftovers += self._remove_netns()
        if self._bridge_created:
            if _run("ip", "link", "delete", BRIDGE, check=False).returncode != 0:
                leftovers.append(f"bridge {BRIDGE}")
            self._bridge_created = False
        for path in HOST_PATHS:
            if path in self._preexisting or not path.exists():
                continue
            leftovers += self._unmount_under(path)
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                leftovers.append(str(path))
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
        return leftovers

    def _drain_pods(self) -> None:
        """Delete every pod, and wait (bounded) for containerd to have no task left, so that no container outlives the kubelet."""
        try:
            pods = self.api.get("/api/v1/pods")["items"]
            for pod in pods:
                meta = pod["metadata"]
                self.api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", {"gracePeriodSeconds": 0})
            _wait("containerd to stop every pod", lambda: not self.ctr("tasks", "ls", "-q").split(), 60)
        except (OSError, KubeError, ValueError, KeyError, subprocess.SubprocessError):
            pass  # best effort: the steps after this one kill and unmount what is left

    def _kill_shims(self) -> None:
        """containerd-shim processes of this cluster's containerd (they outlive it by design), and their containers."""
        marker = str(self.scratch / "containerd")
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "containerd-shim" in cmdline and marker in cmdline:
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _cgroup_dirs(self) -> list[Path]:
        if not CGROUP_ROOT.is_dir():
            return []
        return [controller / name for controller in CGROUP_ROOT.iterdir() if controller.is_dir() for name in CGROUP_NAMES]

    def _remove_cgroups(self) -> list[str]:
        leftovers = []
        for top in self._cgroup_dirs():
            if top in self._preexisting or not top.is_dir():
                continue
            # Deepest first; kill any process still in a cgroup before removing it.
            for directory in sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True) + [top]:
                for _attempt in range(20):
                    try:
                        pids = [int(pid) for pid in (directory / "cgroup.procs").read_text().split()]
                    except OSError:
                        pids = []
                    for pid in pids:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    try:
                        directory.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)
            if top.exists():
                leftovers.append(str(top))
        return leftovers

    @staticmethod
    def _unmount_under(root: Path) -> list[str]:
        """Unmount every mount point at or below `root`, deepest first (lazily, so busy mounts go too)."""
        prefix = str(root.resolve()) if root.exists() else str(root)
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                mounts.append(point)
        failed = []
        for point in sorted(set(mounts), key=len, reverse=True):
            if _run("umount", "-l", point, check=False).returncode != 0 and os.path.ismount(point):
                failed.append(f"mount {point}")
        return failed

    def _remove_netns(self) -> list[str]:
        """The pods' network namespaces (containerd names them cni-<uuid> under /run/netns)."""
        netns = Path("/run/netns")
        if not netns.is_dir():
            return []
        leftovers = []
        for entry in netns.glob("cni-*"):
            _run("umount", "-l", entry, check=False)
            try:
                entry.unlink()
            except OSError:
                leftovers.append(str(entry))
        return leftovers


def _token() -> str:
    return base64.b32encode(os.urandom(20)).decode().lower()


def _http_ok(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=5)
    try:
        connection.request("GET", parsed.path or "/")
        return connection.getresponse().status == 200
    finally:
        connection.close()


def _terminate(popen: subprocess.Popen[bytes], grace: float = 10) -> None:
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        popen.wait(timeout=10)


@contextmanager
def running_cluster(scratch: Path) -> Iterator[KubeCluster]:
    """Start a cluster in `scratch` and always stop it; a leftover on the host fails loudly."""
    cluster = KubeCluster(scratch)
    cluster.start()
    try:
        yield cluster
    finally:
        leftovers = cluster.stop()
        if leftovers:
            raise KubeError(f"the test cluster left these on the host: {', '.join(leftovers)}")


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """One real single-node cluster for the session (skips, naming the set-up command, when it isn't built).

    While it runs, the official provider plugin (pulumi-resource-kubernetes, built by
    setup-kubernetes) is first on PATH, where the engine looks for it.
    """
    problems = missing_parts()
    if problems:
        pytest.skip("Kubernetes tier not set up: " + "; ".join(problems))
    scratch = tmp_path_factory.mktemp("kube")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{KUBE_BIN}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
        with running_cluster(scratch) as cluster:
            yield cluster
