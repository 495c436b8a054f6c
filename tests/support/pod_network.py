"""Connections that start inside a pod's network namespace, for tests of what the cluster's network lets through.

containerd (through the CNI plugins) gives every pod sandbox a network namespace, mounted at /run/netns/cni-<uuid>.
`pod_netns(ip)` finds the one holding a pod's address; `connect_from_pod(source_ip, target_ip, port)` runs a small
HTTP client there (`ip netns exec`), so the packets leave from the pod's own interface, cross the cni0 bridge, and meet
whatever filters the node applies (kube-router's NetworkPolicy rules), as a request made by that pod would.

Network rule: both ends must be pod addresses of the test cluster (POD_CIDR), and the source namespace must be one of
the cni-* namespaces its containerd created; anything else is refused before a packet is sent.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PodCIDR = ipaddress.IPv4Network | ipaddress.IPv6Network

# Runs inside the pod's network namespace: one GET, and what happened, as JSON on stdout.
_CLIENT = """
import http.client, json, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
connection = http.client.HTTPConnection(host, port, timeout=timeout)
try:
    connection.request("GET", "/")
    response = connection.getresponse()
    print(json.dumps({"status": response.status, "body": response.read().decode("utf-8", "replace")[:500]}))
except OSError as exc:
    print(json.dumps({"error": type(exc).__name__, "detail": str(exc)}))
finally:
    connection.close()
"""


@dataclass(frozen=True)
class Outcome:
    """What a GET from one pod to another came to: an HTTP status and body, or the error (ConnectionRefusedError, TimeoutError...)."""

    status: int | None = None
    body: str = ""
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.status == 200

    @property
    def refused(self) -> bool:
        return self.error == "ConnectionRefusedError"

    def __str__(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else f"{self.error}"


def _check_pod_address(address: str, pod_cidr: PodCIDR) -> None:
    if ipaddress.ip_address(address) not in pod_cidr:
        raise ValueError(f"{address} is not a pod address in {pod_cidr}: test traffic goes only to loopback or this cluster's pods")


def pod_netns(pod_ip: str, pod_cidr: PodCIDR) -> str:
    """The name of the network namespace (under /run/netns, made by containerd's CNI call) that holds `pod_ip`."""
    _check_pod_address(pod_ip, pod_cidr)
    for entry in sorted(NETNS_DIR.glob("cni-*")) if NETNS_DIR.is_dir() else []:
        listed = subprocess.run(["ip", "-n", entry.name, "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10)
        addresses = {field.split("/")[0] for line in listed.stdout.splitlines() for field in line.split()[3:4]}
        if pod_ip in addresses:
            return entry.name
    raise LookupError(f"no network namespace under {NETNS_DIR} holds {pod_ip}")


def connect_from_pod(source_ip: str, target_ip: str, port: int, pod_cidr: PodCIDR, timeout: float = 3) -> Outcome:
    """GET http://target_ip:port/ from inside the network namespace of the pod whose address is `source_ip`."""
    _check_pod_address(target_ip, pod_cidr)
    netns = pod_netns(source_ip, pod_cidr)
    ran = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", _CLIENT, target_ip, str(port), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 20,
    )
    if ran.returncode != 0 or not ran.stdout.strip():
        raise RuntimeError(f"the client in {netns} ({source_ip}) failed ({ran.returncode}): {ran.stderr.strip()[-500:]}")
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    return Outcome(status=result.get("status"), body=result.get("body", ""), error=result.get("error"))
