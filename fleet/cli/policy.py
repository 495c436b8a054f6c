"""`fleet policy-config`: the policy pack's config of a stack, for `pulumi preview --policy-pack-config`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fleet.errors import EXIT_OK
from fleet.offline.plan import plan_stack
from fleet.offline.policies import load_stack_fleet, policy_config, write_policy_config
from fleet.paths import PROJECT_ROOT


def cmd_policy_config(args: argparse.Namespace) -> int:
    """Print or write the policy config of a stack (the same values the offline check uses)."""
    tenants_dir = Path(args.tenants) if args.tenants else None
    if args.out:
        print(f"wrote {write_policy_config(Path(args.out), args.stack, PROJECT_ROOT, tenants_dir)}")
    else:
        fleet = load_stack_fleet(args.stack, PROJECT_ROOT, tenants_dir)
        json.dump(policy_config(fleet, plan_stack(args.stack, PROJECT_ROOT, tenants_dir=tenants_dir)), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    return EXIT_OK


def register(verbs) -> None:
    """Add the `policy-config` verb."""
    policy = verbs.add_parser(
        "policy-config",
        help="print or write the policy pack's config of a stack (for pulumi preview --policy-pack-config)",
        description="The config the CrossGuard pack in policies/ needs for a stack: plans, capacities, retained resources.",
    )
    policy.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read (default: dev)")
    policy.add_argument("--tenants", help="tenants folder (default: ./tenants)")
    policy.add_argument("--out", help="file to write (default: print to stdout)")
    policy.set_defaults(handler=cmd_policy_config)
