"""`fleet metrics` (a Prometheus exporter of per-tenant series) and `fleet alerts` (rule files from the plans).
"""


from __future__ import annotations

import argparse
import sys
import time

from fleet.cli.common import add_common_options, load, make_console, print_json
from fleet.errors import EXIT_OK, InputError
from fleet.ops import alert_rules, metrics

# ---------------------------------------------------------------- metrics


def _listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9187")
    return host.strip("[]"), int(port)


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve per-tenant metrics for Prometheus (read fresh at every scrape), or print one scrape with --once."""

    if not args.once and not args.listen:
        raise InputError("give --listen HOST:PORT to serve the metrics, or --once to print one scrape")
    address = None if args.once else _listen_address(args.listen)
    inventory = load(args)
    if args.once:
        text, snapshot = metrics.exposition(inventory)
        sys.stdout.write(text)
        for source in snapshot.sources:
            if not source.up:
                print(f"note: {source.source} {source.key} absent: {source.detail}", file=sys.stderr)
        return EXIT_OK
    assert address is not None
    host, port = address
    registry, _collector = metrics.registry_for(inventory)
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=registry)
    print(f"serving per-tenant metrics of stack {inventory.stack} on http://{host}:{port}/metrics", file=sys.stderr, flush=True)
    try:
        while thread.is_alive():
            time.sleep(1)
    finally:
        server.shutdown()
    return EXIT_OK


# ---------------------------------------------------------------- alerts


def cmd_alerts(args: argparse.Namespace) -> int:
    """Write Prometheus alerting rules, one file per plan, from the plans' thresholds; --check runs promtool on them."""

    inventory = load(args)
    plans = inventory.fleet.plans
    written = alert_rules.write_rule_files(plans, args.out)
    if args.check:
        alert_rules.check_rule_files(written)
    if args.json:
        print_json({"files": [str(path) for path in written], "checked": bool(args.check),
                    "alerts": {name: [rule.alert for rule in alert_rules.plan_alerts(name, plan)] for name, plan in sorted(plans.items())}})
    else:
        console = make_console()
        for path in written:
            console.print(f"wrote {path}", markup=False)
        if args.check:
            console.print(f"promtool check rules: {len(written)} file(s) OK", markup=False)
    return EXIT_OK


def register(verbs) -> None:
    """Add the verbs `metrics` and `alerts`."""
    serve = verbs.add_parser("metrics", help="per-tenant Prometheus metrics (serve with --listen, or print once)", description=cmd_metrics.__doc__)
    add_common_options(serve)
    serve.add_argument("--listen", metavar="HOST:PORT", help="serve /metrics there, e.g. 127.0.0.1:9187")
    serve.add_argument("--once", action="store_true", help="print one scrape (Prometheus text format) to stdout and exit")
    serve.set_defaults(handler=cmd_metrics)

    alerts = verbs.add_parser("alerts", help="write Prometheus alert rules from the plans' thresholds", description=cmd_alerts.__doc__)
    add_common_options(alerts)
    alerts.add_argument("--out", required=True, metavar="DIR", help="folder for the rule files (tenant-fleet-<plan>.rules.yml)")
    alerts.add_argument("--check", action="store_true", help="run `promtool check rules` on the files written")
    alerts.set_defaults(handler=cmd_alerts)
