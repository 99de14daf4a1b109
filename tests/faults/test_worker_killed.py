"""A qcluster worker SIGKILLed while it writes a snapshot of 100,000 rows (issue 6, item 1): the
boundary is not marked completed and none of its rows is visible; the next scheduled run catches
it up; no row is duplicated. Real processes: a qcluster subprocess on a Redis of the test's own."""

import os
import signal
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.periods import floor_boundary
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc
from tests.faults.support import (
    PrivateRedis,
    active_backend,
    backend_gone,
    build_history,
    finished_task,
    queue_on,
    raw_connection,
)
from tests.jobs_support import process_env, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WALLETS, TOKENS = 10_000, 10  # 100,000 balances, 100,000 rows per boundary


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def rows_at(as_of):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT (wallet_id, token_id)) FROM snapshots_balancesnapshot "
            "WHERE period = 'hourly' AND as_of = %s",
            [as_of],
        )
        return cursor.fetchone()


def writes_into(pid, table):
    """Whether backend ``pid``'s transaction has written into ``table`` (holds its RowExclusiveLock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND relation = %s::regclass"
            " AND mode = 'RowExclusiveLock' AND granted)",
            [pid, table],
        )
        return cursor.fetchone()[0]


def state_bytes():
    """The heap of the balance states, all partitions: what a boundary's new states add to."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(sum(pg_relation_size(relid)), 0) FROM pg_partition_tree('snapshots_balancestate')"
        )
        return cursor.fetchone()[0]


def completed(as_of):
    return SnapshotRun.objects.filter(period="hourly", as_of=as_of, status="completed").first()


def test_a_worker_killed_mid_snapshot_leaves_nothing_and_the_next_run_catches_it_up(private_redis, qcluster):
    # The tables this test fills, as in a fresh database (they are empty, but an earlier test of this
    # database may have moved their id sequences and left free space in their files). The order in
    # which the snapshot's statement meets the blocker below depends on the ids (its hash joins), and
    # the heap's size counts the rows written only when they cannot reuse free space.
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE bagtracker_chain, bagtracker_wallet, bagtracker_token, snapshots_balancestate,"
            " snapshots_boundaryprice, snapshots_walletstate, snapshots_boundary, snapshots_boundarytotal"
            " RESTART IDENTITY CASCADE"
        )
    build_history(WALLETS, TOKENS, utc(2026, 1, 1))
    current = floor_boundary("hourly", timezone.now())
    first, killed = current - timedelta(hours=2), current - timedelta(hours=1)
    assert take_snapshot("hourly", first, "scheduled").rows == WALLETS * TOKENS  # the period's history starts here
    # Then every balance moves (a second buy of each pair, half an hour later): the boundary killed
    # below writes 100,000 new states, not only its prices and totals.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # valid by construction, as build_history
        cursor.execute(
            "INSERT INTO bagtracker_transaction (wallet_id, token_id, kind, status, amount, price_usd, timestamp,"
            " tx_hash, created_at) SELECT wallet_id, token_id, 'buy', 'confirmed', 1, 3, %s, NULL, now()"
            " FROM snapshots_balance",
            [first + timedelta(minutes=30)],
        )
        # Their ledger, written directly (a second buy of 1 at 3 USD), as build_history writes the first.
        cursor.execute(
            "UPDATE snapshots_balance SET amount = amount + 1, total_in = total_in + 1,"
            " priced_in_qty = priced_in_qty + 1, priced_in_value_usd = priced_in_value_usd + 3,"
            " cost_basis_usd = cost_basis_usd + 3,"
            " avg_buy_price_usd = round((priced_in_value_usd + 3) / (priced_in_qty + 1), 18), updated_at = now()"
        )
    one_boundary = state_bytes()
    # One statement, not shards (10,000 wallets would be two of the default 5,000): the boundary
    # killed here is a single transaction (tests/test_e2e_shards.py kills a shard).
    cluster = qcluster(process_env(broker_url=private_redis.url, BALANCE_SNAPSHOT_SHARD_WALLETS=0))

    # A total of the boundary (its highest token), inserted and not committed by a transaction of the
    # test: the worker has recorded the boundary and written its 100,000 states, and is writing its
    # prices and totals in its last statement when it reaches that total, and waits there.
    # Deterministic "mid-write".
    blocker = raw_connection()
    blocker.execute(
        "INSERT INTO snapshots_boundarytotal (period, as_of, token_id, value_usd, rows, unpriced_rows) "
        "SELECT 'hourly', %s, max(token_id), 0, 0, 0 FROM snapshots_balance",
        [killed],
    )
    try:
        queue_on(
            private_redis.url,
            "snapshots.tasks.create_hourly_snapshots",
            scheduled_at=(killed + timedelta(minutes=5)).isoformat(),
        )
        # (pg_stat_activity keeps the first 1 kB of a statement. A new newest boundary whose balances
        # did not move writes its prices and totals, "WITH prices AS MATERIALIZED …"; a boundary
        # computed in full holds the same CTE in its first lines.)
        pid, _ = active_backend("prices AS MATERIALIZED", waiting_on="Lock", timeout=60)
        assert writes_into(pid, "snapshots_boundary")  # the boundary is recorded…
        assert state_bytes() - one_boundary > one_boundary // 2  # …most of its rows are on disk…
        assert rows_at(killed) == (0, 0)  # …and not one of them is visible

        worker = cluster.worker_processing("snapshots.tasks.create_hourly_snapshots")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        blocker.rollback()
        blocker.close()

    # The orphaned backend finishes its statement, cannot answer the dead worker and rolls back.
    backend_gone(pid)
    assert rows_at(killed) == (0, 0)
    assert completed(killed) is None
    cluster.assert_running()
    # (The guard logs it just after starting the new worker, which may log first.)
    wait_until(lambda: "reincarnated worker" in cluster.log(), timeout=10, what="the guard's reincarnation line")

    # The next scheduled run, at the current hour's :05, takes its own boundary and catches up.
    task = finished_task(
        queue_on(
            private_redis.url,
            "snapshots.tasks.create_hourly_snapshots",
            scheduled_at=(current + timedelta(minutes=5)).isoformat(),
        ),
        timeout=120,
    )
    assert task.success, task.result
    assert task.result["status"] == "success" and task.result["caught_up"] == 1
    for boundary in (first, killed, current):
        assert completed(boundary).rows == WALLETS * TOKENS
        assert rows_at(boundary) == (WALLETS * TOKENS, WALLETS * TOKENS)  # no duplicates
    assert SnapshotRun.objects.filter(period="hourly", status="completed").count() == 3
    assert BalanceSnapshot.objects.filter(period="hourly", as_of=killed, source="scheduled").count() == WALLETS * TOKENS
