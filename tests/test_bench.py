"""The benchmark runs end to end at a tiny scale: every job and its bare SQL, the same rows.

A smoke check, not a timed test: no duration is asserted. It creates (and drops) a scratch
database of its own on the server of DATABASE_URL, so it needs one.
"""

import io
import os
import re

import psycopg
import pytest

from bench import parallel_ceiling, process, run

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="the benchmark needs a server (DATABASE_URL)"),
]

TINY = [
    "--wallets",
    "60",
    "--tokens",
    "3",
    "--transactions",
    "600",
    "--backfill-wallets",
    "20",
    "--backfill-days",
    "5",
    "--orm-rows",
    "50",
    "--pair-transactions",
    "300",
    "--import-rows",
    "200",
]


def test_the_benchmark_runs_every_job_next_to_its_bare_sql(tmp_path):
    database = f"bagtracker_bench_smoke_{os.getpid()}"
    out = io.StringIO()

    report = run.main([*TINY, "--database", database, "--json", str(tmp_path / "bench.json")], out=out)

    assert [r.key for r in report.rows] == [
        "recalculate",
        "recalculate_again",
        "one_pair",
        "one_pair_fifo",
        "import",
        "import_baseline",
        "snapshot",
        "snapshot_again",
        "cleanup",
        "backfill",
        "orm_create",
        "orm_bulk_create",
    ]
    assert report.failed == []
    imports = [r for r in report.rows if r.key.startswith("import")]
    assert all(r.same == "yes" for r in report.rows if r not in imports)
    assert imports[0].same.startswith("baseline RSS")  # the import is compared with its baseline's run
    assert all(r.seconds is not None and r.peak_rss_mb for r in report.rows)
    assert all(r.bare_seconds is not None for r in report.rows if r.key != "import_baseline")
    rows = {r.key: r.rows for r in report.rows}
    assert rows["recalculate"] == rows["snapshot"] == rows["cleanup"] == 60 * 3
    assert rows["backfill"] == 5 * 20 * 3  # every pair opens with a buy before the backfilled days
    assert rows["orm_create"] == rows["orm_bulk_create"] == 50
    assert (rows["one_pair"], rows["one_pair_fifo"], rows["import"], rows["import_baseline"]) == (300, 300, 200, 200)
    printed = out.getvalue()
    for r in report.rows:
        assert r.job in printed
    assert (tmp_path / "bench.json").exists()
    assert not run.database_exists(os.environ["DATABASE_URL"], database)  # dropped afterwards


def test_it_refuses_a_database_it_did_not_create():
    with pytest.raises(SystemExit, match="was not created by the benchmark"):
        run.main(["--database", "postgres", *TINY])


def test_the_parallel_ceiling_times_each_kind_of_work_apart_and_together():
    database = f"bagtracker_bench_ceiling_{os.getpid()}"
    url = os.environ["DATABASE_URL"]
    run.create_database(url, database)
    try:
        out = io.StringIO()
        results = parallel_ceiling.main(
            ["--database", database, "--database-url", url, "--rows", "2000", "--repeat", "1"], out=out
        )
        with psycopg.connect(run.with_database(url, database)) as conn:
            left = conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'bench_ceiling%'").fetchone()[0]
    finally:
        run.drop_database(url, database)
    assert list(results) == parallel_ceiling.KINDS
    assert all(apart > 0 and together > 0 for apart, together in results.values())
    assert all(kind in out.getvalue() for kind in parallel_ceiling.KINDS)
    assert left == 0  # its tables are dropped afterwards


def test_the_workers_step_takes_the_boundary_with_real_clusters_beside_the_machines_ceiling(redis_url):
    database = f"bagtracker_bench_workers_{os.getpid()}"
    out = io.StringIO()
    # Plans cut at cells of 64 wallet ids (snapshots.services.shards): 200 wallets make a few shards.
    argv = [*TINY, "--wallets", "200", "--transactions", "2000", "--database", database]
    argv += ["--only", "recalculate,workers", "--workers", "1,2", "--shard-wallets", "50", "--repeat", "2"]
    argv += ["--ceiling-rows", "2000", "--redis-url", redis_url]

    report = run.main(argv, out=out)

    assert report.failed == []
    rows = {r.key: r for r in report.rows}
    assert list(rows) == ["recalculate", "workers_1_whole", "workers_1", "workers_2", "workers_ceiling"]
    taken = [rows[k] for k in ("workers_1_whole", "workers_1", "workers_2")]
    assert all(r.same == "yes" and r.rows == rows["recalculate"].rows > 0 for r in taken)
    assert ": 1 shard(s)" in rows["workers_1_whole"].job
    assert int(re.search(r": (\d+) shard\(s\)", rows["workers_2"].job).group(1)) > 1
    assert "over one worker's, round by round" in rows["workers_2"].job
    assert "round by round" not in rows["workers_1"].job
    ceiling = rows["workers_ceiling"]
    assert ceiling.job_seconds > 0 and ceiling.bare_seconds > 0
    assert len(ceiling.job.split("round by round: ")[1].split(", ")) == 2  # each round's ratio
    assert ceiling.job in out.getvalue()
    assert not run.database_exists(os.environ["DATABASE_URL"], database)


def test_shard_pairs_takes_the_shards_by_one_connection_then_two_and_times_their_cpu():
    database = f"bagtracker_bench_pairs_{os.getpid()}"
    url = os.environ["DATABASE_URL"]
    run.main([*TINY, "--wallets", "200", "--database", database, "--only", "recalculate,snapshot", "--keep"])
    try:
        # A process of its own, as it is run: it sets Django up on the benchmark's database.
        env = {
            **process.job_environment(run.with_database(url, database)),
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
        }
        argv = ["-m", "bench.shard_pairs", "--database", database, "--database-url", url, "--repeat", "1"]
        taken = process.run([*argv, "--shard-wallets", "50", "--ceiling-rows", "2000"], env)
        with psycopg.connect(run.with_database(url, database)) as conn:
            runs = conn.execute("SELECT status, array_length(shard_cuts, 1) FROM snapshots_snapshotrun").fetchall()
    finally:
        run.drop_database(url, database)
    assert taken.ok, taken.failure()
    assert "round 1:" in taken.stdout and "medians:" in taken.stdout
    assert len(runs) == 1 and runs[0][0] == "completed" and runs[0][1] >= 1  # taken last by two, in shards
