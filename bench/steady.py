"""Issue 14's targets for snapshot cost and storage, in one run (BENCHMARKS.md, "Snapshots in the
1 % steady state"):

    python -m bench.steady --scale medium --database bt_mine       # 10,000 wallets × 10 tokens
    python -m bench.steady --scale large --database bt_mine        # 100,000 wallets × 10 tokens

It builds the data set of bench/run.py ending two days ago and its balances, then takes hourly
boundaries through `manage.py create_snapshots` (one process each, the job's own reported seconds):
the first one is a full new boundary; before each of the next --boundaries ones, --changed-percent
of the balances change (a transfer in of one unit, written as the ledger would: the transaction, and
its Balance with a new updated_at). The data set's prices end at its last day, so no token's price
moves between these boundaries; --move-prices gives every token a new price before each one (a Price
a minute before the boundary), so every holder's value moves. Beside them, the issue's floor: an
INSERT … SELECT of every balance with its token's price into a same-shaped table without foreign
keys (bare.SNAPSHOT_SQL), emptied and timed before each job. Storage: the snapshot tables (every
partition, indexes included) after VACUUM, after the first boundary and after the last; the growth
per boundary is compared with the size of one full boundary stored whole (the floor table after one
INSERT).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from bench import bare, process, run

SNAPSHOT_TABLES = (
    "snapshots_balancestate",
    "snapshots_walletstate",
    "snapshots_boundary",
    "snapshots_boundaryprice",
    "snapshots_boundarytotal",
)

# Every leaf partition of a (possibly partitioned) table, with its indexes and TOAST.
SIZE_SQL = """
SELECT CASE WHEN c.relkind = 'p'
            THEN (SELECT COALESCE(SUM(pg_total_relation_size(t.relid)), 0)
                  FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
            ELSE pg_total_relation_size(c.oid) END
FROM pg_class c WHERE c.oid = %s::regclass
"""

# The changed balances: every (100 / percent)-th pair, shifted each boundary so different pairs move.
CHANGE_SQL = """
WITH picked AS (
    SELECT b.id, b.wallet_id, b.token_id FROM snapshots_balance b
    WHERE (b.id + %(shift)s) %% %(every)s = 0
), tx AS (
    INSERT INTO bagtracker_transaction (wallet_id, token_id, kind, status, amount, timestamp, tx_hash, created_at)
    SELECT p.wallet_id, p.token_id, 'transfer_in', 'confirmed', 1, %(at)s, NULL, now() FROM picked p
    RETURNING 1
)
UPDATE snapshots_balance b
SET amount = b.amount + 1, total_in = b.total_in + 1, cost_basis_complete = false, updated_at = now()
FROM picked p WHERE b.id = p.id
"""


# --move-prices: every token's latest price, 0.1-1.1 % higher, a minute before the boundary.
MOVE_PRICES_SQL = """
INSERT INTO bagtracker_price (token_id, as_of, price_usd, source)
SELECT p.token_id, %(at)s, round(p.price_usd * (1.001 + 0.01 * random())::numeric, 6), 'bench'
FROM (SELECT DISTINCT ON (token_id) token_id, price_usd FROM bagtracker_price ORDER BY token_id, as_of DESC) p
"""


def size(conn):
    conn.execute("CHECKPOINT")
    for table in SNAPSHOT_TABLES:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    return sum(conn.execute(SIZE_SQL, [table]).fetchone()[0] for table in SNAPSHOT_TABLES)


def floor_seconds(conn, as_of):
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(bare.BARE_SNAPSHOT)))
    run._settle(conn, ["snapshots_balance", bare.BARE_SNAPSHOT])
    params = {"period": "hourly", "as_of": as_of, "source": "manual", "dust": run.DUST}
    return run._timed_sql(conn, [(bare.SNAPSHOT_SQL, params)])


def job_seconds(env, as_of):
    done = process.run(["manage.py", "create_snapshots", "--period", "hourly", "--at", as_of.isoformat()], env)
    if not done.ok:
        raise SystemExit(f"create_snapshots failed: {done.failure()}")
    reported = run.REPORTED_SECONDS.search((done.stdout.strip().splitlines() or [""])[-1])
    return float(reported.group(1)) if reported else done.seconds


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=run.SCALES, default="small")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--database", default="bagtracker_bench_steady")
    parser.add_argument("--boundaries", type=int, default=24)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--move-prices", action="store_true", help="a new price of every token before each boundary")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("set DATABASE_URL or --database-url")
    sizes = dict(run.SCALES[args.scale])
    url = run.with_database(args.database_url, args.database)
    env = process.job_environment(url)
    run.create_database(args.database_url, args.database)
    try:
        if not process.manage(["migrate", "--verbosity", "0"], env).ok:
            raise SystemExit("migrate failed")
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            data = run.dataset.build(conn, sizes["wallets"], sizes["tokens"], sizes["transactions"], end)
            bare.create_tables(conn)
            if not process.manage(["recalculate", "--all"], env).ok:  # the balances, as bench/run.py's first step
                raise SystemExit("recalculate --all failed")
            balances = conn.execute("SELECT count(*) FROM snapshots_balance").fetchone()[0]
            if not balances:
                raise SystemExit(f"no balances in {args.database} after recalculate --all: nothing to measure")
            print(
                f"{balances:,} balances, {data['transactions']:,} transactions, {time.perf_counter() - started:.0f} s",
                file=out,
                flush=True,
            )
            hours = [end + timedelta(hours=1 + k) for k in range(args.boundaries + 1)]
            floors, jobs = [], []
            every = max(1, round(100 / args.changed_percent))
            for k, hour in enumerate(hours):
                if k:
                    with conn.transaction():
                        changed = conn.execute(
                            CHANGE_SQL, {"shift": k, "every": every, "at": hour - timedelta(minutes=30)}
                        ).rowcount
                        if args.move_prices:
                            conn.execute(MOVE_PRICES_SQL, {"at": hour - timedelta(minutes=1)})
                floors.append(floor_seconds(conn, hour))
                run._settle(conn, ["snapshots_balance", *SNAPSHOT_TABLES])
                jobs.append(job_seconds(env, hour))
                if k == 0:
                    full_stored = size(conn)
                    whole = conn.execute(SIZE_SQL, [bare.BARE_SNAPSHOT]).fetchone()[0]
                label = "full" if k == 0 else f"{changed:,} changed" + (", prices moved" if args.move_prices else "")
                print(
                    f"  {hour:%Y-%m-%d %H:%M} ({label}): job {jobs[-1]:.2f} s, floor {floors[-1]:.2f} s",
                    file=out,
                    flush=True,
                )
            grown = size(conn) - full_stored
    finally:
        if not args.keep:
            run.drop_database(args.database_url, args.database)
    floor = statistics.median(floors)
    steady = statistics.median(jobs[1:])
    print(
        f"\nfloor (median of {len(floors)}): {floor:.2f} s\n"
        f"full new boundary: {jobs[0]:.2f} s = {jobs[0] / floor:.2f}× the floor (target ≤ 1.3×)\n"
        f"{args.changed_percent:g} % changed (median of {len(jobs) - 1}): {steady:.2f} s = {steady / floor:.2f}× "
        f"the floor (target ≤ 0.15×)\n"
        f"storage: a full boundary stored whole {whole / 2**20:.1f} MB; the first one here "
        f"{full_stored / 2**20:.1f} MB; "
        f"growth per boundary {grown / args.boundaries / 2**20:.2f} MB = {grown / args.boundaries / whole:.1%} of a "
        f"whole boundary (target ≤ 10 %)",
        file=out,
    )


if __name__ == "__main__":
    main()
