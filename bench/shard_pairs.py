"""The shards of one full boundary taken by one connection, then by two side by side, in wall and
backend CPU seconds (BENCHMARKS.md, "Where two shards side by side lose"):

    python -m bench.run --scale large --database bt_w --keep --only recalculate    # a kept data set
    python -m bench.shard_pairs --database bt_w [--repeat 5] [--shard-wallets 12500]

Without a cluster or a broker: the job's own functions (shards.plan_run, shards.take_shard) called
from threads of this process, each thread its own database connection. Each of --repeat rounds:
two statements that only compute, one after the other and side by side (bench/parallel_ceiling.py,
the machine's ceiling); then the latest hourly boundary emptied, vacuumed and checkpointed, planned
and taken shard by shard by one connection; then the same again by two connections, shards
alternating between them. It prints each round's times and the CPU the server processes used for
the shards (utime + stime, /proc: the server must run on this machine): a shard that costs more CPU
beside another than alone is slowed by what the two backends share, not by the machine. The
database is left with that boundary taken.
"""

import argparse
import os
import statistics
import sys
import threading
import time

import psycopg

from bench import parallel_ceiling, run
from bench.backend_cpu import backend_seconds


def _take(run_id, indices, cpu):
    """Take the shards ``indices`` of run ``run_id`` in this thread's connection; adds its CPU to ``cpu``."""
    from django.db import connection

    from snapshots.services import shards

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        before = backend_seconds(pid)
        for index in indices:
            result = shards.take_shard(run_id, index)
            if result.status != "success":
                raise RuntimeError(f"shard {index}: {result.status} {result.reason or result.error}")
        cpu.append(backend_seconds(pid) - before)
    finally:
        connection.close()


def take(conn, as_of, connections, per_shard):
    """(wall seconds, CPU seconds of the shards' backends, shards) of the boundary taken by
    ``connections`` connections."""
    from django.db import connection

    from snapshots.services import shards

    run._clear_hourly(conn)  # the boundary is written in full, as the workers step writes it
    run._settle(conn, ["snapshots_balance", *run.SNAPSHOT_TABLES])
    plan = shards.plan_run("hourly", as_of, "manual", per_shard=per_shard)
    connection.close()
    if plan is None:
        raise SystemExit("the boundary was not planned in shards: fewer wallets than --shard-wallets?")
    cpu: list[float] = []
    threads = [
        threading.Thread(target=_take, args=(plan.pk, range(k, plan.shards, connections), cpu))
        for k in range(connections)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if len(cpu) != connections:
        raise RuntimeError("a connection's shards failed")
    return wall, sum(cpu), plan.shards


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="python -m bench.shard_pairs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--database", required=True, help="a kept bench.run database (its hourly boundary is retaken)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shard-wallets", type=int, default=12_500, help="wallets per shard (default 12,500)")
    parser.add_argument("--ceiling-rows", type=int, default=run.CEILING_ROWS)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("set DATABASE_URL or --database-url")
    url = run.with_database(args.database_url, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    rounds = []
    with psycopg.connect(url, autocommit=True) as conn:
        as_of = conn.execute("SELECT max(as_of) FROM snapshots_boundary WHERE period = 'hourly'").fetchone()[0]
        if as_of is None:
            parser.error("no hourly boundary in that database: run bench.run --only recalculate,snapshot first")
        for k in range(args.repeat):
            apart, together = parallel_ceiling.compute_pair(url, args.ceiling_rows)
            wall_1, cpu_1, shards = take(conn, as_of, 1, args.shard_wallets)
            wall_2, cpu_2, _ = take(conn, as_of, 2, args.shard_wallets)
            rounds.append((together / apart, wall_2 / wall_1, cpu_2 / cpu_1))
            print(
                f"round {k + 1}: compute side by side {together / apart:.2f}× | {shards} shards, one connection "
                f"{wall_1:.2f} s (CPU {cpu_1:.2f} s), two {wall_2:.2f} s (CPU {cpu_2:.2f} s): {wall_2 / wall_1:.2f}×, "
                f"CPU per shard {cpu_2 / cpu_1:.2f}×",
                file=out,
                flush=True,
            )
    medians = [statistics.median(column) for column in zip(*rounds, strict=True)]
    print(
        f"medians: compute side by side {medians[0]:.2f}×, two connections {medians[1]:.2f}× one, "
        f"CPU per shard {medians[2]:.2f}×; load {os.getloadavg()[0]:.2f}",
        file=out,
    )
    return rounds


if __name__ == "__main__":
    main()
