"""The Kubernetes tier: a real single-node cluster on loopback (tests/support/kube.py), started once per session.

It skips, naming ./scripts/setup-kubernetes, where the binaries and images are not built; CI builds them (.ci/run).
"""

from tests.support.kube import kube_cluster

__all__ = ["kube_cluster"]
