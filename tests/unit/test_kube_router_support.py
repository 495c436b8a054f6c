"""The test cluster's clean-up of kube-router's iptables rules and ipsets, against a host firewall held in memory.

The real clean-up runs after every session of the tests/kubernetes tier (tests/support/kube.py stops the cluster and
fails naming any leftover); here the same code meets a host whose own rules, chains and sets must survive it, and a
chain that won't go, which must be named.
"""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
from dataclasses import dataclass, field

import pytest

from tests.support import kube_router
from tests.support.kube_router import FirewallError, HostFirewall
from tests.support.pod_network import connect_from_pod, pod_netns

POD_CIDR = ipaddress.ip_network("10.244.0.0/24")


@dataclass
class FakeHost:
    """iptables-save/-D/-F/-X and ipset list/destroy over an in-memory filter table."""

    chains: list[str] = field(default_factory=lambda: ["INPUT", "FORWARD", "OUTPUT"])
    rules: list[str] = field(default_factory=list)
    ipsets: list[str] = field(default_factory=list)
    undeletable: set[str] = field(default_factory=set)
    commands: list[list[str]] = field(default_factory=list)

    def run(self, *command: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(command))
        out, code = "", 0
        if command[:1] == ("iptables-save",):
            out = "*filter\n" + "".join(f":{c} {'ACCEPT' if c in ('INPUT', 'FORWARD', 'OUTPUT') else '-'} [0:0]\n" for c in self.chains)
            out += "".join(rule + "\n" for rule in self.rules) + "COMMIT\n"
        elif command[:3] == ("ipset", "list", "-n"):
            out = "".join(name + "\n" for name in self.ipsets)
        elif command[:2] == ("ipset", "destroy"):
            self.ipsets.remove(command[2])
        elif command[:4] == ("iptables", "-w", "-t", "filter"):
            op, chain, *spec = command[4:]
            if op == "-D":
                rule = next(rule for rule in self.rules if shlex.split(rule) == ["-A", chain, *spec])
                self.rules.remove(rule)
            elif op == "-F":
                self.rules = [rule for rule in self.rules if rule.split()[1] != chain]
            elif op == "-X":
                if chain in self.undeletable or any(f"-j {chain}" in rule for rule in self.rules):
                    code = 1
                else:
                    self.chains.remove(chain)
        else:
            raise AssertionError(f"unexpected command {command}")
        return subprocess.CompletedProcess(list(command), code, out, "")

    def kube_router_runs(self) -> None:
        """What kube-router's policy controller writes, as seen on this machine."""
        self.chains += ["KUBE-ROUTER-INPUT", "KUBE-ROUTER-FORWARD", "KUBE-ROUTER-OUTPUT", "KUBE-NWPLCY-DEFAULT", "KUBE-NWPLCY-EIGZR5QN5UDCJOAV", "KUBE-POD-FW-MA6MBIVBPRZZDCGN"]
        self.rules[:0] = [
            '-A INPUT -m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT',
            '-A FORWARD -m comment --comment "kube-router netpol - TEMCG2JMHZYE7H7T" -j KUBE-ROUTER-FORWARD',
            '-A OUTPUT -m comment --comment "kube-router netpol - VEAAIY32XVBHCSCY" -j KUBE-ROUTER-OUTPUT',
        ]
        self.rules += [
            '-A KUBE-ROUTER-FORWARD -d 10.244.0.10/32 -m comment --comment "rule to jump traffic destined to POD name:web" -j KUBE-POD-FW-MA6MBIVBPRZZDCGN',
            '-A KUBE-POD-FW-MA6MBIVBPRZZDCGN -d 10.244.0.10/32 -m comment --comment "run through nw policy tenant-isolation" -j KUBE-NWPLCY-EIGZR5QN5UDCJOAV',
            "-A KUBE-NWPLCY-EIGZR5QN5UDCJOAV -m set --match-set KUBE-SRC-LZUDY4SOWDD4JJX6 src -m set --match-set KUBE-DST-HQCA4FPDRCWBM6P5 dst -j MARK --set-xmark 0x10000/0x10000",
            '-A KUBE-NWPLCY-DEFAULT -m comment --comment "rule to mark traffic matching a network policy" -j MARK --set-xmark 0x10000/0x10000',
        ]
        self.ipsets += ["KUBE-SRC-LZUDY4SOWDD4JJX6", "KUBE-DST-HQCA4FPDRCWBM6P5"]


def host_with_its_own_firewall() -> FakeHost:
    return FakeHost(
        chains=["INPUT", "FORWARD", "OUTPUT", "HOST-LOG", "KUBE-FIREWALL"],
        rules=["-A INPUT -s 192.0.2.0/24 -j HOST-LOG", '-A FORWARD -m comment --comment "docker netpol" -j DROP', "-A HOST-LOG -j LOG"],
        ipsets=["host-blocklist", "KUBE-CLUSTER-IP"],  # a kube-proxy set: KUBE-* but not kube-router's
    )


def test_the_clean_up_removes_exactly_what_kube_router_added(monkeypatch: pytest.MonkeyPatch):
    host = host_with_its_own_firewall()
    monkeypatch.setattr(kube_router, "_run", host.run)
    before = (list(host.chains), list(host.rules), list(host.ipsets))
    firewall = HostFirewall()
    firewall.snapshot()
    host.kube_router_runs()
    assert firewall.remove() == []
    assert (host.chains, host.rules, host.ipsets) == before
    # The host's own chains were never flushed, its rules never deleted, its sets never destroyed.
    touched = [" ".join(command) for command in host.commands if command[0] in ("iptables", "ipset") and command[1:2] != ["list"]]
    assert not [command for command in touched if "HOST-LOG" in command or "KUBE-FIREWALL" in command or "host-blocklist" in command or "KUBE-CLUSTER-IP" in command]


def test_what_could_not_be_removed_is_named(monkeypatch: pytest.MonkeyPatch):
    host = FakeHost(undeletable={"KUBE-POD-FW-MA6MBIVBPRZZDCGN"})
    monkeypatch.setattr(kube_router, "_run", host.run)
    firewall = HostFirewall()
    firewall.snapshot()
    host.kube_router_runs()
    assert firewall.remove() == ["iptables chain KUBE-POD-FW-MA6MBIVBPRZZDCGN"]


def test_a_host_that_already_has_kube_routers_state_is_refused(monkeypatch: pytest.MonkeyPatch):
    host = FakeHost()
    host.kube_router_runs()
    monkeypatch.setattr(kube_router, "_run", host.run)
    with pytest.raises(FirewallError) as refused:
        HostFirewall().snapshot()
    for name in ("KUBE-ROUTER-INPUT", "KUBE-POD-FW-MA6MBIVBPRZZDCGN", "kube-router netpol - 4IA2OSFRMVNDXBVV", "KUBE-SRC-LZUDY4SOWDD4JJX6"):
        assert name in str(refused.value)


def test_the_policy_controller_runs_alone_with_no_port_pinned_to_the_loopback_node(tmp_path):
    args = kube_router.arguments(tmp_path / "admin.kubeconfig", "10.96.0.0/24")
    only_the_firewall = ("--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false")
    for flag in (*only_the_firewall, "--health-port=0", "--metrics-port=0", "--hostname-override=localhost"):
        assert flag in args


@pytest.mark.parametrize(("source", "target"), [("10.244.0.5", "127.0.0.2"), ("10.244.0.5", "192.0.2.7"), ("192.0.2.7", "10.244.0.5")])
def test_connections_from_pods_go_only_between_pod_addresses(source: str, target: str):
    with pytest.raises(ValueError, match="not a pod address"):
        connect_from_pod(source, target, 8080, POD_CIDR)
    with pytest.raises(ValueError, match="not a pod address"):
        pod_netns("192.0.2.7", POD_CIDR)
