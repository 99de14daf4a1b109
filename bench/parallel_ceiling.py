"""What two server processes side by side gain over one on this machine, by kind of work: the
ceiling for one boundary taken by two workers (BENCHMARKS.md, "Why two workers stop near 0.7×").

    python -m bench.parallel_ceiling --database bench_ceiling_scratch

Each kind of work is a statement run by two connections on tables of their own: --repeat rounds of
the two one after the other, then the two at once (two threads), every table emptied and a
CHECKPOINT before each. The ratio is (at once) / (one after the other): 0.50 when two processes
take half the time, 1.00 when they gain nothing. A shard of a boundary reads (computes) its states
and then writes them, each state it opens a heap row and a primary-key entry in the WAL; these
statements take those parts apart:

- compute: a digest of each of 5 × rows generated numbers, streamed (no tuplestore, no hash
  table: nothing written, not even a temporary file) — what two processes that only compute gain;
- insert, unlogged: rows into an UNLOGGED table (shared buffers, no WAL);
- insert, logged: the same rows into a logged table (one WAL record per row);
- insert, logged, indexed like a state: a logged table indexed like an open partition of the
  balance states (the primary key on the state's key: two WAL records per row); the two connections
  write disjoint wallet ranges, like two shards.

The tables (bench_ceiling_*) are created in --database and dropped afterwards.
"""

import argparse
import os
import statistics
import sys
import threading
import time

import psycopg

from bench import run

PREFIX = "bench_ceiling"
# The set-returning function in the select list streams its rows (ProjectSet); in FROM it would be
# materialized first, spilling to a temporary file past work_mem.
COMPUTE_SQL = "SELECT count(*) FROM (SELECT generate_series(1, %(rows)s * 5) g) x WHERE md5(x.g::text) < '8'"
# A balance state's columns (snapshots_balancestate), values shaped like the benchmark's.
COLUMNS = """(id bigserial, period varchar(8), wallet_id bigint, token_id bigint, valid_from timestamptz,
              valid_to timestamptz, amount numeric(38,18), cost_basis numeric(38,18), realized numeric(38,18),
              method varchar(8), source varchar(10), created_at timestamptz)"""
INSERT_SQL = """
INSERT INTO {table} (period, wallet_id, token_id, valid_from, valid_to, amount, cost_basis, realized, method,
                     source, created_at)
SELECT 'hourly', %(first)s + g / 10, g %% 10, now(), 'infinity', g * 1.000000000001, g * 2.5, g * 0.25, 'fifo',
       'manual', now()
FROM generate_series(0, %(rows)s - 1) g
"""
# An open partition's indexes since migration 0020 (the key's primary key since 0019; until 0020 an
# index on token_id too, until 0019 a primary key on (id, period, valid_to) and the key's index).
STATE_INDEXES = [
    "ALTER TABLE {table} ADD PRIMARY KEY (period, wallet_id, token_id, valid_from, valid_to)",
]
KINDS = ["compute", "insert, unlogged", "insert, logged", "insert, logged, indexed like a state"]


def _tables(kind):
    """(table per connection, or None), one for each of the two connections."""
    if kind == "compute":
        return [None, None]
    if kind == "insert, logged, indexed like a state":
        return [f"{PREFIX}_state", f"{PREFIX}_state"]  # one table, as two shards share one partition
    suffix = "unlogged" if kind.endswith("unlogged") else "logged"
    return [f"{PREFIX}_{suffix}_0", f"{PREFIX}_{suffix}_1"]


def create_tables(conn):
    for k in (0, 1):
        conn.execute(f"CREATE UNLOGGED TABLE {PREFIX}_unlogged_{k} {COLUMNS}")
        conn.execute(f"CREATE TABLE {PREFIX}_logged_{k} {COLUMNS}")
    conn.execute(f"CREATE TABLE {PREFIX}_state {COLUMNS}")
    for statement in STATE_INDEXES:
        conn.execute(statement.format(table=f"{PREFIX}_state"))


def drop_tables(conn):
    names = [f"{PREFIX}_{s}_{k}" for s in ("unlogged", "logged") for k in (0, 1)] + [f"{PREFIX}_state"]
    conn.execute(f"DROP TABLE IF EXISTS {', '.join(names)}")


def _statement(kind, table, k, rows):
    if table is None:
        return COMPUTE_SQL, {"rows": rows}
    return INSERT_SQL.format(table=table), {"rows": rows, "first": k * rows}


def _one(url, kind, table, k, rows):
    statement, params = _statement(kind, table, k, rows)
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(statement, params)
        return time.perf_counter() - started


def _reset(conn, tables):
    names = sorted({t for t in tables if t})
    if names:
        conn.execute(f"TRUNCATE {', '.join(names)} RESTART IDENTITY")
    conn.execute("CHECKPOINT")


def _together(url, kind, tables, rows):
    """Seconds for the two connections' statements started at once, until both are done."""
    seconds: dict[int, float] = {}

    def take(k):
        seconds[k] = _one(url, kind, tables[k], k, rows)

    threads = [threading.Thread(target=take, args=(k,)) for k in (0, 1)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(seconds) != 2:
        raise RuntimeError(f"{kind}: a statement run at once failed")
    return time.perf_counter() - started


def measure(url, kind, rows, repeat):
    """(median seconds one after the other, median seconds at once) of ``kind`` over ``repeat`` rounds."""
    tables = _tables(kind)
    apart, together = [], []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(repeat):
            _reset(conn, tables)
            apart.append(sum(_one(url, kind, tables[k], k, rows) for k in (0, 1)))
            _reset(conn, tables)
            together.append(_together(url, kind, tables, rows))
    return statistics.median(apart), statistics.median(together)


def compute_pair(url, rows):
    """One round of "compute" on the database of ``url``, no table needed: (seconds one after the
    other, seconds at once). What the machine gives two processes that only compute, right now: the
    benchmark's workers step takes it in every round, beside the boundary (bench/run.py)."""
    apart = sum(_one(url, "compute", None, k, rows) for k in (0, 1))
    return apart, _together(url, "compute", [None, None], rows)


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="python -m bench.parallel_ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="where the scratch tables are created (and dropped)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1/"))
    parser.add_argument("--rows", type=int, default=500_000, help="rows per statement (default 500,000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    url = run.with_database(args.database_url, args.database)  # a socket URL keeps its ?host=
    results = {}
    with psycopg.connect(url, autocommit=True) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                "('wal_buffers', 'shared_buffers', 'server_version')"
            ).fetchall()
        )
        drop_tables(conn)
        create_tables(conn)
        try:
            for kind in KINDS:
                results[kind] = measure(url, kind, args.rows, args.repeat)
        finally:
            drop_tables(conn)
    print(
        f"two statements side by side against one after the other, {args.rows:,} rows each, median of "
        f"{args.repeat}; {os.cpu_count()} CPUs, PostgreSQL {settings['server_version']}, shared_buffers "
        f"{settings['shared_buffers']}, wal_buffers {settings['wal_buffers']}",
        file=out,
    )
    for kind, (apart, together) in results.items():
        print(f"  {kind:38} apart {apart:6.2f} s  together {together:6.2f} s  {together / apart:5.2f}×", file=out)
    with open("/proc/loadavg") as f:
        print(f"  load {' '.join(f.read().split()[:3])}", file=out)
    return results


if __name__ == "__main__":
    main()
