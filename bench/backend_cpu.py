"""The ledger walk of one long (wallet, token) history against its floor, in backend CPU seconds.

    python -m bench.run --scale small --only snapshot --database bench_cpu --keep   # a kept data set
    python -m bench.backend_cpu --database bench_cpu --pair-transactions 1000000

Wall clock on the shared machine swings with the load (BENCHMARKS.md); the CPU time of the server
process that runs a statement (utime + stime of /proc/<pid>/stat) swings much less. This adds a
wallet with one long history (bench.dataset.add_long_history), then runs, --repeat times in turn:
the floor (bench.bare.FLOOR_SQL over that wallet's rows, into the emptied floor table), the walk
with each cost-basis method (SELECT * FROM bt_ledger_walk(…)), and the walk's query alone (its rows
read in ledger order and counted). It prints the best of each and its ratio to the best floor, then
removes the wallet. The server must run on this machine (its /proc is read).

--before MIGRATION also times an earlier walk in the same rounds: that snapshots migration's
bt_ledger_walk (e.g. 0014_ledger_walk_fewer_operations), created as bt_ledger_walk_before for the
run and dropped after it.
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from importlib import import_module

import psycopg
from psycopg import sql

from bench import bare, dataset
from bench.run import with_database

TICKS = os.sysconf("SC_CLK_TCK")

# As recalculate --wallet calls it (apply_to_wallets: the wallet listed, read in index order).
WALK_SQL = "SELECT * FROM bt_ledger_walk(%(method)s, %(wallet)s, %(wallet)s, ARRAY[%(wallet)s]::bigint[], NULL, NULL)"
BEFORE = "bt_ledger_walk_before"
BEFORE_SIGNATURE = f"{BEFORE}(text, bigint, bigint, bigint[], bigint[], timestamptz)"
READ_SQL = """
SELECT count(*) FROM (
    SELECT t.wallet_id, t.token_id, t.amount, t.price_usd, t.kind FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND t.wallet_id BETWEEN %(wallet)s AND %(wallet)s
    ORDER BY t.wallet_id, t.token_id, t.timestamp, t.kind NOT IN ('buy', 'transfer_in'), t.id
) s
"""


def backend_seconds(pid):
    """CPU seconds (user + system) the server process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(conn, wallet, repeat, before=False):
    """{label: (best CPU s, best wall s)} over ``repeat`` rounds of every statement in turn."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    floor = bare.FLOOR_SQL.format(where="t.wallet_id = %(wallet)s")
    walk_before = sql.SQL(WALK_SQL.replace("bt_ledger_walk(", f"{BEFORE}("))
    statements = [
        ("floor", [sql.SQL("TRUNCATE {}").format(sql.Identifier(bare.FLOOR_BALANCE)), floor]),
        ("walk, average", [sql.SQL(WALK_SQL)]),
        ("walk, fifo", [sql.SQL(WALK_SQL)]),
        *([("walk before, average", [walk_before]), ("walk before, fifo", [walk_before])] if before else []),
        # With the walk's own setting (migration snapshots.0014).
        ("the walk's query alone", [sql.SQL("SET LOCAL enable_incremental_sort = off"), sql.SQL(READ_SQL)]),
    ]
    best = {}
    for _ in range(repeat):
        for label, parts in statements:
            params = {"wallet": wallet, "method": label.rpartition(", ")[2]}
            cpu, wall = backend_seconds(pid), time.perf_counter()
            with conn.transaction():
                for part in parts:
                    conn.execute(part, params if "%(" in str(part) else None)
            cpu, wall = backend_seconds(pid) - cpu, time.perf_counter() - wall
            old = best.get(label, (cpu, wall))
            best[label] = (min(old[0], cpu), min(old[1], wall))
    return best


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="python -m bench.backend_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a migrated database with a chain and a token")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1/"))
    parser.add_argument("--pair-transactions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", metavar="MIGRATION", help="also time this snapshots migration's walk")
    args = parser.parse_args(argv)
    url = with_database(args.database_url, args.database)  # a socket URL keeps its ?host=
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {bare.FLOOR_BALANCE} (LIKE snapshots_balance INCLUDING ALL)")
        if args.before:
            walk = import_module(f"snapshots.migrations.{args.before}").LEDGER_WALK_SQL
            conn.execute(walk.replace("FUNCTION bt_ledger_walk(", f"FUNCTION {BEFORE}("))
        with conn.transaction():
            wallet = dataset.add_long_history(conn, args.pair_transactions, datetime.now(UTC))
        try:
            conn.execute("VACUUM (ANALYZE) bagtracker_transaction")
            best = measure(conn, wallet, args.repeat, before=bool(args.before))
        finally:
            with conn.transaction():
                dataset.remove_wallets(conn, [wallet])
            if args.before:
                conn.execute(f"DROP FUNCTION IF EXISTS {BEFORE_SIGNATURE}")
    floor = best["floor"][0]
    print(f"one pair, {args.pair_transactions:,} transactions, best of {args.repeat}", file=out)
    if args.before:
        print(f"  walk before: snapshots.{args.before}", file=out)
    for label, (cpu, wall) in best.items():
        print(f"  {label:24} backend CPU {cpu:6.2f} s  {cpu / floor:5.2f}×   wall {wall:6.2f} s", file=out)
    with open("/proc/loadavg") as f:
        print(f"  load {' '.join(f.read().split()[:3])}", file=out)


if __name__ == "__main__":
    main()
