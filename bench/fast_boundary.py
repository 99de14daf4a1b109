"""One 1 % boundary of a kept bench.steady database, profiled, in backend CPU (BENCHMARKS.md,
"The 1 % boundary by pairs"):

    python -m bench.steady --scale medium --database bt_mine_bench --keep
    python -m bench.fast_boundary --database bt_mine_bench [--move-prices] [--explain]
    python -m bench.fast_boundary --database bt_mine_bench --first [--general]

Each of --repeat rounds, in one transaction rolled back at its end (the database is left as it
was): the issue's floor (bench.bare.SNAPSHOT_SQL into the emptied floor table), then
--changed-percent of the balances changed as bench.steady changes them (and, with --move-prices,
every token's price), then the next hourly boundary taken by the job's own function
(take_snapshot, as create_snapshots does). It prints the backend CPU seconds (utime + stime of the
server process, /proc: the server must run on this machine) of the floor and of the boundary, best
of the rounds, and their ratio. With --explain, the last round's statements are each run once more
first as EXPLAIN (ANALYZE, BUFFERS) (in a savepoint rolled back), and their plans printed; with
--timing, every statement of the last round is timed (wall clock, as the client sees it).

With --first, each round takes a full new boundary instead, with nothing changed: the first daily
boundary (nothing of that period is stored), the next day after the latest hourly one — the
route of a period's first boundary (snapshot_sql.FIRST_WRITE_SQL); --general alternates it, round
by round, with the general statement (FIRST_WRITE off) and prints both.
"""

import argparse
import os
import sys
import time
from datetime import timedelta

from bench import run
from bench.backend_cpu import backend_seconds
from bench.steady import CHANGE_SQL, MOVE_PRICES_SQL

STATEMENTS = ("WITH", "SELECT COALESCE(array_agg")  # the boundary's statements, not its SETs and bookkeeping


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--database", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--move-prices", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--timing", action="store_true", help="the last round's statements' wall time, all of them")
    parser.add_argument("--first", action="store_true", help="a full new boundary: the first daily one")
    parser.add_argument("--general", action="store_true", help="with --first: also the general statement")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("set DATABASE_URL or --database-url")
    os.environ["DATABASE_URL"] = run.with_database(args.database_url, args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from django.db import connection, transaction

    from bench import bare
    from snapshots.services import snapshot_sql
    from snapshots.services.snapshots import take_snapshot

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), max(as_of) FROM snapshots_boundary WHERE period = 'hourly'")
        pid, latest = cursor.fetchone()
    as_of = latest + timedelta(hours=1)
    period = "hourly"
    if args.first:
        period, as_of = "daily", (latest + timedelta(days=1)).replace(hour=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM snapshots_boundary WHERE period = 'daily'")
            if cursor.fetchone()[0]:
                parser.error("--first needs a database without daily boundaries")
    every = max(1, round(100 / args.changed_percent))
    floors, jobs, plans = [], [], []
    general = []  # --general: the general statement's rounds

    def explain(execute, sql, params, many, context):
        raw = context["cursor"].cursor
        text = sql if isinstance(sql, str) else sql.as_string(raw)
        if text.lstrip().startswith(STATEMENTS):
            raw.execute("SAVEPOINT profiled")
            raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + text, params)
            plans.append("\n".join(row[0] for row in raw.fetchall()))
            raw.execute("ROLLBACK TO SAVEPOINT profiled")
        return execute(sql, params, many, context)

    timings = []

    def timed(execute, sql, params, many, context):
        raw = context["cursor"].cursor
        text = sql if isinstance(sql, str) else sql.as_string(raw)
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append((time.perf_counter() - started, " ".join(text.split())[:70]))

    for round_ in range(args.repeat):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {bare.BARE_SNAPSHOT}")
            params = {"period": "hourly", "as_of": as_of, "source": "manual", "dust": run.DUST}
            before = backend_seconds(pid)
            cursor.execute(bare.SNAPSHOT_SQL, params)
            floors.append(backend_seconds(pid) - before)
            if not args.first:
                at = as_of - timedelta(minutes=30)
                cursor.execute(CHANGE_SQL, {"shift": 1000 + round_, "every": every, "at": at})
            if args.move_prices:
                cursor.execute(MOVE_PRICES_SQL, {"at": as_of - timedelta(minutes=1)})
            profiled = (args.explain or args.timing) and round_ == args.repeat - 1
            in_general = args.general and round_ % 2 == 1
            snapshot_sql.FIRST_WRITE = not in_general
            before, started = backend_seconds(pid), time.perf_counter()
            if profiled:
                with connection.execute_wrapper(explain if args.explain else timed):
                    result = take_snapshot(period, as_of, "manual")
            else:
                result = take_snapshot(period, as_of, "manual")
            if not profiled:
                (general if in_general else jobs).append(backend_seconds(pid) - before)
            print(
                f"  round {round_ + 1}: floor {floors[-1]:.3f} s CPU; boundary {result.rows:,} rows"
                + (" (general statement)" if in_general else "")
                + f", {backend_seconds(pid) - before:.3f} s CPU, {time.perf_counter() - started:.3f} s wall"
                + (" (profiled)" if profiled else ""),
                file=out,
                flush=True,
            )
            transaction.set_rollback(True)
    for plan in plans:
        print("\n" + plan, file=out)
    for seconds, text in timings:
        print(f"{seconds * 1000:8.1f} ms  {text}", file=out)
    if timings:
        print(f"{sum(t for t, _ in timings) * 1000:8.1f} ms in {len(timings)} statements", file=out)
    floor, job = min(floors), min(jobs or [float("nan")])
    what = "full new boundary" if args.first else f"{args.changed_percent:g} % boundary"
    print(
        f"\nbackend CPU, best of {len(floors)} / {len(jobs)}: floor {floor:.3f} s, "
        f"{what}{' (prices moved)' if args.move_prices else ''} {job:.3f} s "
        f"= {job / floor:.2f}× the floor; load {os.getloadavg()[0]:.1f}",
        file=out,
    )
    if general:
        best = min(general)
        print(f"the general statement, best of {len(general)}: {best:.3f} s = {best / floor:.2f}×", file=out)


if __name__ == "__main__":
    main()
