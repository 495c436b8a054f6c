"""Put the kubeconfigs of $FLEET_KUBECONFIGS (fleet.offline.kubeconfigs_env) on a run's stack, as secrets.

Each becomes `fleet:kubeconfigs.<key>` in the run's scratch copy of the stack file (encrypted with the stack's
passphrase), beside any the file holds already; the repository's stack file is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

from pulumi import automation as auto

from fleet.offline.kubeconfigs_env import kubeconfigs_from_env
from fleet.program import CONFIG_NAMESPACE


def set_run_kubeconfigs(stack: auto.Stack, environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """Set each kubeconfig of $FLEET_KUBECONFIGS on `stack` as a secret; returns their keys (none: nothing set)."""
    kubeconfigs = kubeconfigs_from_env(environ)
    if kubeconfigs:
        values = {f"{CONFIG_NAMESPACE}:kubeconfigs.{key}": auto.ConfigValue(value=text, secret=True) for key, text in sorted(kubeconfigs.items())}
        stack.set_all_config(values, path=True)
    return sorted(kubeconfigs)
