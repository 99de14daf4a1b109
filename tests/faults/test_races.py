"""Races (issue 6, item 4), on real connections: two recalculations of one wallet at once; a
recalculation (with its snapshots) racing a scheduled snapshot of the same boundary. Each ends
as a serial run would. The interleavings are forced with locks held by the test, not left to
timing. Thread patterns as in tests/test_ledger_concurrency.py."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from snapshots import tasks
from snapshots.models import Balance, BalanceSnapshot
from snapshots.periods import floor_boundary
from snapshots.services.ledger import recalculate_wallet
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc
from tests.faults.support import active_backend, raw_connection
from tests.jobs_support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def in_thread(function, *args, **kwargs):
    """Start function(*args, **kwargs) on a connection of its own; .result / .error when joined."""
    outcome = threading.Thread()

    def run():
        try:
            outcome.result = function(*args, **kwargs)
        except Exception as error:  # reported by the test, never hidden
            outcome.error = error
        finally:
            connection.close()

    outcome.result = outcome.error = None
    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def joined(started):
    thread, outcome = started
    thread.join(timeout=60)
    assert not thread.is_alive(), "a racer is still running"
    assert outcome.error is None, outcome.error
    return outcome.result


def ledger(wallet):
    return list(
        Balance.objects.filter(wallet=wallet)
        .order_by("token_id")
        .values_list(
            "token_id",
            "amount",
            "total_in",
            "total_out",
            "avg_buy_price_usd",
            "avg_sell_price_usd",
            "realized_pnl_usd",
            "priced_in_qty",
            "priced_in_value_usd",
        )
    )


def waiting_backends(fragment):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' AND query LIKE %s",
            [connection.settings_dict["NAME"], f"%{fragment}%"],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def damaged(make_tx, make_token, wallet, token):
    """A wallet with two tokens whose balances were damaged: what recalculation repairs."""
    usdc = make_token("USDC", decimals=6)
    make_tx("buy", "3", price="10", at=utc(2026, 1, 1))
    make_tx("sell", "1", price="20", at=utc(2026, 1, 2))
    make_tx("buy", "100", price="1", at=utc(2026, 1, 1), of_token=usdc)
    serial = ledger(wallet)
    Balance.objects.filter(wallet=wallet, token=token).update(amount=Decimal("7"), realized_pnl_usd=0)
    Balance.objects.filter(wallet=wallet, token=usdc).delete()
    return wallet, serial


def test_two_recalculations_of_one_wallet_at_once_end_as_one(damaged):
    wallet, serial = damaged
    holder = raw_connection()  # holds the wallet, so that both recalculations are queued on it at once
    holder.execute("SELECT 1 FROM bagtracker_wallet WHERE id = %s FOR UPDATE", [wallet.pk])
    try:
        racers = [in_thread(recalculate_wallet, wallet.pk) for _ in range(2)]
        wait_until(lambda: waiting_backends("FOR NO KEY UPDATE") == 2, 30, what="both recalculations waiting")
    finally:
        holder.rollback()
        holder.close()
    results = [joined(racer) for racer in racers]

    assert [r.status for r in results] == ["success", "success"]
    assert sorted(r.balances_written for r in results) == [0, 2]  # the second found nothing left to repair
    assert ledger(wallet) == serial


def test_a_recalculation_racing_a_snapshot_of_the_same_boundary_ends_as_a_serial_run(damaged):
    """The snapshot reads the damaged balances; the recalculation commits the repair and lists the
    boundaries to rebuild while the snapshot is still writing. Without a guard the rebuild misses
    the boundary (not completed yet) and the snapshot then commits rows of the damaged ledger."""
    wallet, _ = damaged
    boundary = floor_boundary("hourly", timezone.now())
    # The test's uncommitted "completed" run of the boundary: the snapshot, its rows written,
    # waits there to record its own run, as a long snapshot would still be writing.
    holder = raw_connection()
    holder.execute(
        "INSERT INTO snapshots_snapshotrun (period, as_of, source, status, rows, started_at, error) "
        "VALUES ('hourly', %s, 'manual', 'completed', 0, now(), '')",
        [boundary],
    )
    try:
        snapshot = in_thread(tasks.create_hourly_snapshots, scheduled_at=(boundary + timedelta(minutes=5)).isoformat())
        active_backend("snapshots_snapshotrun", waiting_on="Lock", timeout=30)
        recalculation = in_thread(tasks.recalculate_wallet_balances, wallet.pk, create_snapshots=True)
        # It finishes, or waits for the snapshot in progress (the guard): either way, let the snapshot go.
        wait_until(
            lambda: not recalculation[0].is_alive() or waiting_backends("pg_advisory_lock(") == 1,
            30,
            what="the recalculation to finish or wait for the snapshot",
        )
    finally:
        holder.rollback()
        holder.close()
    assert joined(snapshot)["status"] == "success"
    assert joined(recalculation)["status"] == "success"

    rows = dict(BalanceSnapshot.objects.filter(period="hourly", as_of=boundary).values_list("token__symbol", "amount"))
    assert rows == {"ETH": Decimal("2"), "USDC": Decimal("100")}  # the repaired ledger, as a serial run
    assert take_snapshot("hourly", boundary, "manual").written == 0  # taking it again changes nothing
