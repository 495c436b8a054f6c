"""`fleet bench`: the fleet-size benchmark, offline and with `--engine`.
"""


from __future__ import annotations

import argparse
import json
import sys

from fleet.bench import engine as engine_bench
from fleet.bench import offline
from fleet.errors import EXIT_FAILED, EXIT_OK, FleetError


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated tenant counts, e.g. 10,100,1000") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: tenant counts must be 1 or more")
    return sizes


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure the offline plan per fleet size (and, with --engine, the real engine on a proxy-only stack)."""

    progress = None if args.json else (lambda line: print(f"... {line}", file=sys.stderr, flush=True))
    results = offline.run_plans(args.sizes, policies=not args.no_policies, workers=args.workers, repeat=args.repeat, progress=progress)
    document: dict = {"plan": results, "targets": offline.verdict(results)}
    if args.engine:
        try:
            rows = engine_bench.run_layouts(sizes=args.engine_sizes, layouts=args.engine_layouts, parallel=args.parallel, progress=progress)
            document["engine"] = [row for row in rows if row["layout"] == "per-tenant"]
            document["engine_single_stack"] = [row for row in rows if row["layout"] == "single"]
        except FleetError as error:  # engine missing or failed, Caddy missing or not starting
            raise FleetError(f"bench --engine: {error}") from None
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(offline.format_table(results))
        print(offline.format_verdict(document["targets"]))
        if args.engine:
            print(engine_bench.format_layouts(document["engine"] + document["engine_single_stack"]))
    if args.check and not all(value for key, value in document["targets"].items() if key.endswith(("_ok", "_under_10s", "_under_1gb")) or key == "no_heavy_imports"):
        return EXIT_FAILED
    return EXIT_OK


def register(verbs) -> None:
    """Add the `bench` verb."""
    bench = verbs.add_parser(
        "bench",
        help="measure the offline plan on synthetic fleets of 10, 100 and 1,000 tenants (time, memory, resources)",
        description=(
            "Writes synthetic fleets (plans and servers mixed) and measures, per size and in a fresh process: the program "
            "under mocks, the policy pack, wall time, peak memory (workers included), resources declared, time per tenant. "
            "--engine also times the real engine on a proxy-only stack against a real Caddy."
        ),
    )
    bench.add_argument("--sizes", type=_sizes, default=(10, 100, 1000), help="tenant counts (default: 10,100,1000)")
    bench.add_argument("--repeat", type=int, default=1, help="runs per size; the fastest counts (default: 1)")
    bench.add_argument("--workers", type=int, help="processes for shards of a large fleet (default: one per core; 1 = a single run)")
    bench.add_argument("--no-policies", action="store_true", help="measure the program only")
    bench.add_argument("--engine", action="store_true", help="also time `fleet up`, `pulumi up` (+1 tenant) and `pulumi preview` with the real engine")
    bench.add_argument("--engine-sizes", type=_sizes, default=(10, 300, 1000), help="fleet sizes with --engine (default: 10,300,1000)")
    bench.add_argument(
        "--engine-layouts",
        type=lambda text: tuple(part for part in text.split(",") if part),
        default=("per-tenant", "single"),
        help="with --engine: per-tenant (a stack per tenant, key `engine`), single (one stack, key `engine_single_stack`), or both",
    )
    bench.add_argument("--parallel", type=int, help="with --engine: tenant stacks run at once (default: the cores)")
    bench.add_argument("--check", action="store_true", help="exit 1 when a target is missed (1,000 tenants < 10 s and < 1 GB, per-tenant ratio <= 1.2)")
    bench.add_argument("--json", action="store_true", help="the same figures as JSON")
    bench.set_defaults(handler=cmd_bench)
