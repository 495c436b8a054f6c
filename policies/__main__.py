"""The policy pack the engine runs (`pulumi preview --policy-pack policies`): it only constructs the PolicyPack.

PolicyPack starts a gRPC server and never returns, so nothing else may import this module; the rules
live in `fleet_policies`, which the offline plan (`fleet/offline/policies.py`) and the tests import.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

try:  # the engine runs this folder as a script (`runpy.run_path`), with the folder itself on sys.path
    from fleet_policies import ALL_POLICIES
except ImportError:  # `python -m policies` from the project root
    from policies.fleet_policies import ALL_POLICIES

PolicyPack(
    name="tenant-fleet",
    policies=ALL_POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="tenant-fleet guardrails: container limits by plan, pinned images, data safety, generated secrets, hostnames, DNS, capacity.",
)
