"""`fleet admin-credentials`: a tenant's first admin login and one-time password."""

from __future__ import annotations

import argparse

from fleet.cli.common import print_json
from fleet.errors import EXIT_OK
from fleet.ops.admin import admin_credentials
from fleet.paths import PROJECT_ROOT


def cmd_admin_credentials(args: argparse.Namespace) -> int:
    """Show a tenant's first admin email and password from the deployed stack, once (`--again` for another time)."""
    credentials = admin_credentials(args.stack, PROJECT_ROOT, args.tenant, again=args.again)
    if args.json:
        print_json({"tenant": args.tenant, **credentials})
    else:
        print(f"{args.tenant}: {credentials['email']} / {credentials['password']}  (one-time: have it changed at first login)")
    return EXIT_OK


def register(verbs) -> None:
    """Add the `admin-credentials` verb."""
    verb = verbs.add_parser("admin-credentials", help="show a tenant's first admin login and one-time password, once", description=cmd_admin_credentials.__doc__)
    verb.add_argument("tenant", help="whose admin")
    verb.add_argument("--stack", default="dev", help="the deployed stack holding it (default: dev)")
    verb.add_argument("--again", action="store_true", help="show it although it was shown before")
    verb.add_argument("--json", action="store_true", help="as JSON")
    verb.set_defaults(handler=cmd_admin_credentials)
