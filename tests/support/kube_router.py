"""kube-router's network policy controller on the test cluster, and the removal of what it writes to the host.

The bridge CNI plugin doesn't enforce NetworkPolicy. kube-router's policy controller does, from outside the CNI:
it watches pods, namespaces and policies through the API server and writes iptables rules and ipsets on the
node. Traffic between pods on `cni0` passes the iptables FORWARD chain because `net.bridge.bridge-nf-call-iptables`
is 1, which is where its rules hook. The cluster fixture (tests/support/kube.py) runs it as the policy controller
only: no routing, no service proxy, no CNI config, no health or metrics port, the node named `localhost` (its
published address is 127.0.0.1, as for the rest of the fixture).

What it writes to the host, all in the iptables `filter` table and the kernel's ipsets, none of it removed by
kube-router itself (its `--cleanup-config` left 87 rule lines behind when tried by hand):

- a jump rule at the top of INPUT, FORWARD and OUTPUT, commented `kube-router netpol - <hash>`;
- the chains `KUBE-ROUTER-INPUT/FORWARD/OUTPUT`, `KUBE-NWPLCY-DEFAULT`, a `KUBE-NWPLCY-<hash>` per policy and a
  `KUBE-POD-FW-<hash>` per local pod;
- ipsets `KUBE-SRC-<hash>` and `KUBE-DST-<hash>` per policy.

`HostFirewall.snapshot()` reads the filter table and the ipsets before kube-router starts, and refuses to start
when kube-router's chains, jump rules or sets are already there (another kube-router on this host, or a run that
did not clean up: the clean-up could not tell them from its own). `remove()` deletes exactly what appeared since:
the jump rules from the built-in chains, then its chains (flushed first, since they jump to each other), then its
ipsets, and returns whatever is still there, named. Rules and chains the host had before are never touched.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fleet.paths import PROJECT_ROOT

KUBE_ROUTER_VERSION = (PROJECT_ROOT / "kubernetes" / "kube-router" / "VERSION").read_text().strip()
BUILTIN_CHAINS = ("INPUT", "FORWARD", "OUTPUT")
JUMP_COMMENT = "kube-router netpol"
CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
#: kube-router's policy sets; its sync destroys any set so named that it doesn't know, so none may exist before.
IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-")
#: Every KUBE-* set that appears while it runs is removed (and named when it can't be).
IPSET_CLEANUP_PREFIX = "KUBE-"


def arguments(kubeconfig: Path, service_cidr: str) -> list[str]:
    """The policy controller only, pinned to the node `localhost` (address 127.0.0.1), with no port of its own."""
    return [
        f"--kubeconfig={kubeconfig}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--hostname-override=localhost",
        "--health-port=0",
        "--metrics-port=0",
        "--enable-ipv4=true",
        "--enable-ipv6=false",
        f"--service-cluster-ip-range={service_cidr}",
        "--v=1",
    ]


class FirewallError(RuntimeError):
    """The host's iptables or ipsets could not be read, or already hold another kube-router's state."""


def _run(*command: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise FirewallError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result


@dataclass(frozen=True)
class FilterState:
    """The iptables filter table's chains and rules (counters left out), and the names of the kernel's ipsets."""

    chains: frozenset[str]
    rules: tuple[str, ...]
    ipsets: frozenset[str]

    @classmethod
    def read(cls) -> FilterState:
        saved = _run("iptables-save", "-t", "filter").stdout
        chains = frozenset(line[1:].split()[0] for line in saved.splitlines() if line.startswith(":"))
        rules = tuple(line for line in saved.splitlines() if line.startswith("-A "))
        ipsets = frozenset(_run("ipset", "list", "-n").stdout.split())
        return cls(chains, rules, ipsets)

    def kube_router_chains(self) -> set[str]:
        return {chain for chain in self.chains if chain.startswith(CHAIN_PREFIXES)}

    def jump_rules(self) -> list[str]:
        """The rules kube-router puts in INPUT, FORWARD and OUTPUT (commented `kube-router netpol - <hash>`)."""
        return [rule for rule in self.rules if rule.split()[1] in BUILTIN_CHAINS and _comment_of(rule).startswith(JUMP_COMMENT)]

    def policy_sets(self) -> set[str]:
        return {name for name in self.ipsets if name.startswith(IPSET_PREFIXES)}


def _comment_of(rule: str) -> str:
    match = re.search(r'--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))', rule)
    if not match:
        return ""
    return match.group(1) if match.group(1) is not None else match.group(2)


@dataclass
class HostFirewall:
    """What the host's filter table and ipsets held before kube-router started; `remove()` takes back the rest."""

    before: FilterState | None = None

    def snapshot(self) -> None:
        """Read the host's state; refuse when kube-router's chains, jump rules or policy sets are already there."""
        state = FilterState.read()
        found = sorted(state.kube_router_chains()) + state.jump_rules() + sorted(state.policy_sets())
        if found:
            raise FirewallError(
                "kube-router's iptables chains, rules or ipsets are already on this host (another kube-router, or a test "
                f"cluster that did not clean up): {', '.join(found)}. Remove them (iptables -D/-F/-X, ipset destroy) first."
            )
        self.before = state

    def remove(self) -> list[str]:
        """Delete the jump rules, chains and ipsets that appeared since `snapshot()`; the ones still there, named."""
        if self.before is None:
            return []
        before = self.before
        try:
            now = FilterState.read()
        except (FirewallError, OSError, subprocess.SubprocessError) as exc:
            return [f"the host's iptables/ipsets could not be read to remove kube-router's: {exc}"]
        for rule in now.jump_rules():
            if rule not in before.rules:
                # "-A INPUT <spec>" as saved -> "iptables -t filter -D INPUT <spec>", quoting as iptables-save wrote it.
                _run("iptables", "-w", "-t", "filter", "-D", *shlex.split(rule)[1:], check=False)
        chains = sorted(now.kube_router_chains() - before.chains)
        for chain in chains:  # flush all first: they jump to one another, and a chain still referenced can't go
            _run("iptables", "-w", "-t", "filter", "-F", chain, check=False)
        for chain in chains:
            _run("iptables", "-w", "-t", "filter", "-X", chain, check=False)
        for name in sorted(now.ipsets - before.ipsets):
            if name.startswith(IPSET_CLEANUP_PREFIX):
                _run("ipset", "destroy", name, check=False)
        self.before = None
        return self.leftovers(before)

    @staticmethod
    def leftovers(before: FilterState) -> list[str]:
        """kube-router's jump rules, chains and KUBE-* ipsets that are on the host now and were not in `before`."""
        try:
            now = FilterState.read()
        except (FirewallError, OSError, subprocess.SubprocessError) as exc:
            return [f"the host's iptables/ipsets could not be read after removing kube-router's: {exc}"]
        left = [f"iptables rule {rule}" for rule in now.jump_rules() if rule not in before.rules]
        left += [f"iptables chain {chain}" for chain in sorted(now.kube_router_chains() - before.chains)]
        left += [f"ipset {name}" for name in sorted(now.ipsets - before.ipsets) if name.startswith(IPSET_CLEANUP_PREFIX)]
        return left
