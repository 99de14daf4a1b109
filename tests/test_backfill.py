"""Backfill, rebuilding a wallet's snapshots, and two workers on the same boundary."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from bagtracker.models import Transaction
from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.services import snapshot_sql
from snapshots.services.ledger import recalculate_wallet
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import backfill_snapshots, rebuild_wallet_snapshots, take_snapshot
from tests.conftest import utc

D = Decimal


def test_backfill_takes_each_boundary_oldest_first_and_reports_progress(settings, make_tx, wallet):
    settings.BALANCE_HISTORY_RETENTION_DAYS = 0  # kept forever: 2026-01 is inside retention
    make_tx("buy", "1", at=utc(2026, 1, 1, 12))
    make_tx("buy", "1", at=utc(2026, 1, 3, 12))
    calls = []
    result = backfill_snapshots("daily", utc(2026, 1, 1), utc(2026, 1, 4), progress=lambda d, t: calls.append((d, t)))
    # From the first transaction on: 01-01 00:00 holds nothing, so it is not taken.
    assert result.status == "success" and len(result.boundaries) == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]
    data = result.as_dict()
    assert (data["status"], data["period"], data["boundaries"], data["rows"]) == ("success", "daily", 3, 3)
    assert (data["first_as_of"], data["last_as_of"]) == ("2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z")
    assert data["notes"] == [
        "since 2026-01-01T00:00Z is before the first confirmed transaction of any wallet (2026-01-01T12:00Z): "
        "clamped to it"
    ]
    assert dict(BalanceSnapshot.objects.values_list("as_of", "amount")) == {
        utc(2026, 1, 2): 1,
        utc(2026, 1, 3): 1,
        utc(2026, 1, 4): 2,
    }
    assert SnapshotRun.objects.filter(status="completed", source="backfill").count() == 3


def test_backfill_never_goes_past_now(make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    result = backfill_snapshots("monthly", utc(2026, 1, 1), utc(2999, 1, 1))
    assert max(b.as_of for b in result.boundaries) < utc(2999, 1, 1)


def test_backfill_refuses_an_unknown_wallet(db):
    from bagtracker.models import Wallet

    with pytest.raises(Wallet.DoesNotExist, match="wallet 31337 does not exist"):
        backfill_snapshots("daily", utc(2026, 1, 1), utc(2026, 1, 2), wallet_ids=[31337])


def test_rebuild_refreshes_the_wallets_retained_boundaries_only(settings, make_tx, make_wallet, wallet, token):
    settings.BALANCE_HISTORY_RETENTION_DAYS = 30
    other = make_wallet()
    make_tx("buy", "1", at=utc(2026, 3, 1))
    make_tx("buy", "1", at=utc(2026, 3, 1), on_wallet=other)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    take_snapshot("daily", utc(2026, 4, 20), "scheduled")
    # A wallet's backfill: rows, no run.
    take_snapshot("weekly", utc(2026, 4, 12), "backfill", WalletScope(wallets=[wallet.id]))

    # History repaired behind the app's back, then recalculated: a forgotten transfer in.
    Transaction.objects.create(
        wallet=wallet, token=token, kind="transfer_in", amount=D(4), timestamp=utc(2026, 2, 1), status="confirmed"
    )
    assert recalculate_wallet(wallet.id).status == "success"
    result = rebuild_wallet_snapshots(wallet.id, now=utc(2026, 4, 25))

    assert sorted((b.period, b.as_of) for b in result.boundaries) == [
        ("daily", utc(2026, 4, 20)),
        ("weekly", utc(2026, 4, 12)),
    ]
    amounts = {(r.period, r.as_of, r.wallet_id): r.amount for r in BalanceSnapshot.objects.all()}
    assert amounts[("daily", utc(2026, 4, 20), wallet.id)] == 5
    assert amounts[("weekly", utc(2026, 4, 12), wallet.id)] == 5
    assert amounts[("daily", utc(2026, 3, 2), wallet.id)] == 1  # outside the 30-day retention: untouched
    assert amounts[("daily", utc(2026, 4, 20), other.id)] == 1
    assert SnapshotRun.objects.filter(period="weekly").count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_second_worker_on_the_same_boundary_waits_then_retakes_idempotently(make_tx, wallet):
    make_tx("buy", "1", at=utc(2026, 3, 1))
    as_of = utc(2026, 3, 2)
    results = []

    def second_worker():
        try:
            results.append(take_snapshot("daily", as_of, "scheduled"))
        finally:
            connections.close_all()

    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        snapshot_sql.lock_boundary(cursor, "daily", as_of)  # the first worker, mid-snapshot
        worker = threading.Thread(target=second_worker)
        worker.start()
        assert _waits_for_advisory_lock(cursor), "the second worker should be waiting on the boundary lock"
        assert not results
        cursor.execute("COMMIT")
    worker.join(timeout=30)
    assert results and results[0].status == "success" and results[0].rows == 1
    assert BalanceSnapshot.objects.count() == 1
    assert SnapshotRun.objects.filter(status="completed").count() == 1


def _waits_for_advisory_lock(cursor, attempts=200):
    """Poll pg_locks (not a sleep in the code under test) until a backend waits on an advisory lock."""
    for _ in range(attempts):
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        if cursor.fetchone()[0]:
            return True
        threading.Event().wait(0.05)
    return False
