"""Measure a tenant move's downtime: how long the tenant's writes are refused while its database moves.

Not a test: a script. For each run it starts two throwaway PostgreSQL clusters on loopback (as the
integration tests do), provisions the tenant's role and database on both (as the official provider
would), loads about `--size-mb` of data into the source, starts a writer that inserts one row at a time
as the tenant's role, and runs the very function the DatabasePlacement provider runs on a server change
(`components.providers.postgres.move_database`) with the method asked for: `logical` (live copy, blocked
only for the cutover) or `dump` (blocked for the whole dump and restore). The moment the move returns,
the writer is pointed at the target, as the app is once `pulumi up` has replaced its containers (that
replacement is not part of this figure: add the app's restart time).

    .cache/venv/bin/python tests/bench/move_downtime.py --size-mb 100 --method both --runs 2 --json

Downtime = first successful write on the target - last successful write on the source. Each run also
checks that every row the writer saw committed is on the target (`rows_lost`), and that the target's
sequence is ahead of every id the writer got on the source (`sequences_ahead`).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from components.providers.postgres import move_database  # noqa: E402
from fleet.bench.servers import PostgresCluster  # noqa: E402
from fleet.postgres import catalog  # noqa: E402
from fleet.postgres.access import ServerAccess  # noqa: E402
from tests.support.queries import one_row  # noqa: E402
from tests.support.tenant_db import cluster_access, owner_of, provision_tenant_database  # noqa: E402

DATABASE, ROLE, PASSWORD = "tenant_bench", "tenant_bench_app", "bench-tenant-password"


def provision(cluster: PostgresCluster) -> None:
    """The roles and the empty database, as the official provider creates them."""
    provision_tenant_database(cluster_access(cluster), DATABASE, ROLE, PASSWORD)


def load(cluster: PostgresCluster, size_mb: int) -> None:
    """About `size_mb` MB over a few tables with indexes, as the tenant's role (so it owns them)."""
    orders = max(1000, size_mb * 5000)  # ~200 bytes per order row with its index entries
    with psycopg.connect(cluster.dsn(DATABASE, ROLE, PASSWORD), autocommit=True) as connection:
        connection.execute(
            """
            create table customers (id bigserial primary key, name text not null, email text not null, created timestamptz not null default now());
            create table products (id bigserial primary key, sku text unique not null, price numeric(12,2) not null, description text);
            create table orders (id bigserial primary key, customer_id bigint not null references customers, product_id bigint not null references products,
                                 quantity int not null, total numeric(14,2) not null, note text, placed timestamptz not null default now());
            create index on orders (customer_id);
            create table events (id bigserial primary key, at timestamptz not null default clock_timestamp(), payload text);
            """
        )
        connection.execute("insert into customers (name, email) select 'customer ' || g, 'c' || g || '@example.com' from generate_series(1, %s) g", [orders // 20])
        connection.execute("insert into products (sku, price, description) select 'SKU-' || g, (g % 997) + 0.99, repeat('d', 80) from generate_series(1, 5000) g")
        connection.execute(
            "insert into orders (customer_id, product_id, quantity, total, note) "
            "select 1 + g %% %s, 1 + g %% 5000, 1 + g %% 7, (g %% 10007) * 1.25, md5(g::text) || md5((g * 7)::text) from generate_series(1, %s) g",
            [orders // 20, orders],
        )
        connection.execute("analyze")


class Writer(threading.Thread):
    """Inserts into `events` as the tenant, one autocommitted row at a time, reconnecting after failures."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()
        self.committed: list[tuple[int, float, str]] = []  # (id, time, dsn label)
        self.refused = 0

    def run(self) -> None:
        connection = None
        while not self.stop.is_set():
            dsn = self.dsn
            try:
                if connection is None or getattr(connection, "_fleet_dsn", None) != dsn:
                    if connection is not None:
                        connection.close()
                    connection = psycopg.connect(dsn, autocommit=True, connect_timeout=2)
                    connection._fleet_dsn = dsn  # type: ignore[attr-defined]
                row = one_row(connection.execute("insert into events (payload) values ('bench') returning id"))
                self.committed.append((row[0], time.monotonic(), dsn))
            except psycopg.Error:
                self.refused += 1
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.01)
        if connection is not None:
            connection.close()


def run_once(size_mb: int, method: str, checksum_max_mb: int) -> dict:
    """One move of a freshly loaded `size_mb` database by `method`; the figures of that run."""
    source, target = PostgresCluster("bench-source"), PostgresCluster("bench-target")
    source.start()
    target.start()
    try:
        for cluster in (source, target):
            provision(cluster)
        started = time.monotonic()
        load(source, size_mb)
        assert source.port is not None and target.port is not None  # both started
        source_access = ServerAccess(source.host, source.port, "postgres", source.admin_password, sslmode="disable")
        target_access = ServerAccess(target.host, target.port, "postgres", target.admin_password, sslmode="disable")
        with source_access.connect(DATABASE) as connection:
            size = connection.execute("select pg_database_size(current_database())").fetchone()[0]
        print(f"[{method}] loaded {size / 1e6:.1f} MB into the source in {time.monotonic() - started:.1f}s", file=sys.stderr)

        writer = Writer(source.dsn(DATABASE, ROLE, PASSWORD))
        writer.start()
        time.sleep(1.0)  # the writer is busy on the source
        report = move_database(
            source_access, target_access, DATABASE, ROLE, source_key="source", target_key="target", owner=owner_of(ROLE),
            checksum_max_bytes=checksum_max_mb * 2**20, method=method,
        )
        writer.dsn = target.dsn(DATABASE, ROLE, PASSWORD)  # the app now points at the target
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(dsn == writer.dsn for _, _, dsn in writer.committed):
            time.sleep(0.005)
        time.sleep(0.2)
        writer.stop.set()
        writer.join(5)

        on_source = [(row, at) for row, at, dsn in writer.committed if dsn != writer.dsn]
        on_target = [(row, at) for row, at, dsn in writer.committed if dsn == writer.dsn]
        downtime = on_target[0][1] - on_source[-1][1]
        with target_access.connect(DATABASE) as connection:
            present = {row for (row,) in connection.execute("select id from events")}
        lost = [row for row, _ in on_source if row not in present]
        return {
            "size_mb": round(size / 1e6, 1),
            "method": report.method,
            "downtime_s": round(downtime, 3),
            "copy_s": report.copy_seconds,
            "rows_lost": len(lost),
            "sequences_ahead": on_target[0][0] > max(row for row, _ in on_source),
            "blocked_s": report.blocked_seconds,
            "phases_s": report.phases,
            "tables": report.tables,
            "rows": report.rows,
            "checksummed_tables": report.checksummed_tables,
            "verified_early": report.verified_early,
            "writes_on_source": len(on_source),
            "writes_refused": writer.refused,
        }
    finally:
        source.stop()
        target.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="approximate size of the tenant database (default 100)")
    parser.add_argument("--method", choices=("logical", "dump", "both"), default="both", help="how the move copies (default both, alternating)")
    parser.add_argument("--runs", type=int, default=1, help="runs per method (default 1)")
    parser.add_argument("--checksum-max-mb", type=int, default=catalog.CHECKSUM_MAX_BYTES // 2**20, help="tables up to this size get a content checksum (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    options = parser.parse_args()

    methods = ["logical", "dump"] if options.method == "both" else [options.method]
    results = []
    for _ in range(options.runs):
        for method in methods:
            result = run_once(options.size_mb, method, options.checksum_max_mb)
            results.append(result)
            if options.json:
                print(json.dumps(result), flush=True)
            else:
                print(
                    f"{result['method']:8} {result['size_mb']:8.1f} MB  downtime {result['downtime_s']:6.2f}s  copy {result['copy_s']:6.2f}s  "
                    f"rows lost {result['rows_lost']}  sequences ahead {result['sequences_ahead']}  phases "
                    + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in result["phases_s"].items()),
                    flush=True,
                )
    return 0 if all(result["rows_lost"] == 0 and result["sequences_ahead"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
