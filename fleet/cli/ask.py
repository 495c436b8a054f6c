"""`fleet ask`: serve Caddy's on-demand TLS `ask` endpoint, or answer for one hostname (`--check`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fleet.errors import EXIT_FAILED, EXIT_OK
from fleet.offline.plan import stack_config
from fleet.ops.ask import DEFAULT_CACHE_SECONDS, AskServer, AskService, FileSource, RegistrySource, parse_listen
from fleet.paths import PROJECT_ROOT


def _source(args: argparse.Namespace, root: Path, tenants_dir: Path):
    config = stack_config(args.stack, root)
    wanted = args.source
    if wanted == "auto":
        wanted = "registry" if config.get("registry") else "files"
    if wanted == "files":
        return FileSource.from_files(tenants_dir, config, f"Pulumi.{args.stack}.yaml", reload_seconds=args.reload_seconds)
    from fleet.ops.inventory import load_inventory
    from fleet.ops.secrets import secret_source

    inventory = load_inventory(args.stack, root=root, tenants_dir=tenants_dir, secrets=secret_source(args.secrets, args.stack, root))
    return RegistrySource.from_inventory(inventory)


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer Caddy's `GET /ask?domain=<name>`: 200 for a hostname of an active tenant, 4xx otherwise."""
    root = Path(args.root).resolve() if args.root else PROJECT_ROOT
    tenants_dir = Path(args.tenants).resolve() if args.tenants else root / "tenants"
    service = AskService(_source(args, root, tenants_dir), cache_seconds=args.cache_seconds)
    if args.check is not None:  # an empty name is checked (and refused), not taken as no --check
        answer = service.answer(args.check)
        print(f"{answer.status} {'allowed' if answer.allowed else 'refused'}: {answer.reason}")
        return EXIT_OK if answer.allowed else EXIT_FAILED
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    host, port = parse_listen(args.listen)
    server = AskServer(service, host, port)
    print(f"fleet ask: {server.url}?domain=<hostname> answering from {service.source.description}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.stop()
    return EXIT_OK


def register(verbs) -> None:
    """Add the `ask` verb."""
    ask = verbs.add_parser(
        "ask",
        help="serve Caddy's on-demand TLS ask endpoint: certificates only for hostnames of active tenants",
        description=(cmd_ask.__doc__ or "") + " Source: the registry (fleet:registry) or, without one, the tenant files.",
    )
    ask.add_argument("--listen", default="127.0.0.1:9123", metavar="HOST:PORT", help="where to listen (default: 127.0.0.1:9123)")
    ask.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to read (default: dev)")
    ask.add_argument("--root", help="checkout holding Pulumi.<stack>.yaml and tenants/ (default: this project)")
    ask.add_argument("--tenants", help="tenants folder (default: <root>/tenants)")
    ask.add_argument(
        "--source", choices=("auto", "registry", "files"), default="auto",
        help="registry (the live table), files (the tenant files), auto: the registry when fleet:registry is set (default)",
    )
    ask.add_argument("--secrets", default="auto", metavar="SOURCE", help="with the registry: where the server's admin password comes from (default: auto)")
    ask.add_argument("--cache-seconds", type=float, default=DEFAULT_CACHE_SECONDS, help=f"how long an answer is reused (default: {DEFAULT_CACHE_SECONDS:g})")
    ask.add_argument("--reload-seconds", type=float, default=30.0, help="with files: how often the tenant files are re-read (default: 30)")
    ask.add_argument("--check", metavar="HOSTNAME", help="answer for one hostname and exit (0 allowed, 1 refused)")
    ask.set_defaults(handler=cmd_ask)
