"""The fast path of a new newest boundary (docs/snapshots.md, "What a boundary costs"): only the
wallets that moved since the previous boundary are computed; the others' states and wallet states
hold the new boundary already (open), valued at its prices when read. Each boundary it takes reads
exactly as the full computation of the same boundary: re-taking it in full (a boundary taken before
always is) changes nothing a reader sees."""

from datetime import timedelta

import pytest
from django.db import connection

from bagtracker.models import Transaction, Wallet
from bagtracker.services.transactions import delete_transactions
from snapshots.models import BalanceSnapshot, SnapshotRun, WalletSnapshot
from snapshots.services import snapshot_sql
from snapshots.services.ledger import recalculate_wallet
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc
from tests.faults.support import build_history

HOURS = [utc(2026, 3, 2, h) for h in range(7)]
ROW = ("wallet_id", "token_id", "amount", "price_usd", "value_usd", "avg_buy_price_usd", "cost_basis_usd")
SUMMARY = ("wallet_id", "value_usd", "rows", "unpriced_rows", "cost_basis_usd", "realized_pnl_usd", "cost_basis_method")


def read(as_of):
    rows = sorted(BalanceSnapshot.objects.filter(period="hourly", as_of=as_of).values_list(*ROW, "realized_pnl_usd"))
    summaries = sorted(WalletSnapshot.objects.filter(period="hourly", as_of=as_of).values_list(*SUMMARY))
    return rows, summaries


def take_fast_then_full(as_of, spy):
    """Take ``as_of`` (new, newest), then re-take it in full; both must read the same."""
    result = take_snapshot("hourly", as_of, "scheduled")
    fast = read(as_of)
    assert result.rows == len(fast[0])
    assert SnapshotRun.objects.get(period="hourly", as_of=as_of, status="completed").rows == len(fast[0])
    take_snapshot("hourly", as_of, "scheduled")
    assert read(as_of) == fast
    return spy.pop()


@pytest.fixture
def spy(monkeypatch):
    """Which path each new boundary took: the wallets written in full, or None (all of them)."""
    taken = []
    real = snapshot_sql._write_moved

    def watched(cursor, params, previous, horizon):
        cursor.execute(snapshot_sql.MOVED_WALLETS_SQL, {**params, "previous": previous, "since": horizon})
        taken.append(sorted(cursor.fetchone()[0]))
        return real(cursor, params, previous, horizon)

    monkeypatch.setattr(snapshot_sql, "_write_moved", watched)
    return taken


@pytest.mark.django_db(transaction=True)
def test_each_fast_boundary_reads_as_its_full_computation(spy, make_tx, make_wallet, make_token, make_price, wallet):
    """Committed writes (transaction=True): a balance's updated_at is its own transaction's start,
    after the previous boundary's run, as in production."""
    usdc = make_token("USDC", decimals=6)
    quiet, trader, leaving, dusty, returning = wallet, make_wallet(), make_wallet(), make_wallet(), make_wallet()
    for w in (quiet, trader, leaving, dusty, returning):
        make_tx("buy", "2", price=100, at=utc(2026, 3, 1, 1), on_wallet=w)
    make_tx("buy", "30", price=1, at=utc(2026, 3, 1, 2), on_wallet=trader, of_token=usdc)
    gone = make_tx("buy", "5", price=1, at=utc(2026, 3, 1, 3), on_wallet=dusty, of_token=usdc)
    Wallet.objects.filter(pk=returning.pk).update(is_active=False)
    for n, hour in enumerate(HOURS):
        make_price(100 + n, hour - timedelta(minutes=1))

    take_snapshot("hourly", HOURS[0], "scheduled")  # the period's first: in full
    assert spy == []
    assert take_fast_then_full(HOURS[1], spy) == []  # nothing moved: every summary carried

    make_tx("sell", "1", price=150, at=HOURS[1] + timedelta(minutes=30), on_wallet=trader)
    make_tx("buy", "1", price=150, at=HOURS[3] + timedelta(minutes=30), on_wallet=quiet)  # after the next boundary
    assert take_fast_then_full(HOURS[2], spy) == sorted([trader.pk, quiet.pk])

    Wallet.objects.filter(pk=leaving.pk).update(is_active=False)
    newcomer = make_wallet()
    make_tx("buy", "4", price=100, at=HOURS[2] + timedelta(minutes=10), on_wallet=newcomer)
    assert take_fast_then_full(HOURS[3], spy) == sorted([leaving.pk, newcomer.pk, quiet.pk])

    delete_transactions(Transaction.objects.filter(pk=gone.pk))  # the pair's balance goes
    Wallet.objects.filter(pk=returning.pk).update(is_active=True)
    moved = take_fast_then_full(HOURS[4], spy)
    assert {dusty.pk, returning.pk} <= set(moved) and trader.pk not in moved

    make_tx("transfer_out", "0.9999995", at=HOURS[4] + timedelta(minutes=5), on_wallet=trader)  # to dust
    assert trader.pk in take_fast_then_full(HOURS[5], spy)

    recalculate_wallet(quiet.pk)  # a repair that rewrites nothing changes nothing
    take_fast_then_full(HOURS[6], spy)
    rows = dict(
        BalanceSnapshot.objects.filter(period="hourly", as_of=HOURS[6], token__symbol="ETH").values_list(
            "wallet_id", "amount"
        )
    )
    assert trader.pk not in rows and leaving.pk not in rows and rows[newcomer.pk] == 4 and rows[quiet.pk] == 3


@pytest.mark.django_db(transaction=True)
def test_a_boundary_after_a_gap_in_runs_or_written_out_of_order_is_computed_in_full(spy, make_tx, wallet):
    make_tx("buy", "1", price=100, at=utc(2026, 3, 1, 1))
    take_snapshot("hourly", HOURS[3], "scheduled")
    take_snapshot("hourly", HOURS[1], "scheduled")  # before the latest: in full
    take_snapshot("hourly", HOURS[4], "scheduled", WalletScope(wallets=[wallet.pk]))  # a wallet's: never fast
    assert spy == []
    take_snapshot("hourly", HOURS[5], "scheduled")  # the latest taken (HOURS[4]) has no completed run
    assert spy == []


@pytest.mark.django_db
def test_the_fast_totals_join_by_hashing_even_before_the_tables_have_statistics():
    """Catch-up writes boundary after boundary into tables that autovacuum has not analysed yet: the
    planner then guesses one wallet on each side of the fast path's pass over the open states and,
    left to itself, joined them by a nested loop, quadratic in wallets (carrying summaries that way:
    10,000 wallets, 32 s instead of 0.5 s). The plan the server would run at that moment, with the
    run's own settings, joins by hashing."""
    build_history(600, 2, utc(2026, 3, 1))
    with connection.cursor() as cursor:  # as a fresh deployment: nothing analysed yet
        cursor.execute(
            "DELETE FROM pg_statistic WHERE starelid IN (SELECT inhrelid FROM pg_inherits) "
            "OR starelid = ANY(%s::regclass[])",
            [["snapshots_walletstate", "snapshots_balance", "bagtracker_transaction"]],
        )
    take_snapshot("hourly", HOURS[0], "scheduled")
    plans = []

    def explain(execute, sql, params, many, context):
        raw = context["cursor"].cursor
        text = sql if isinstance(sql, str) else sql.as_string(raw)
        if "held_rows AS MATERIALIZED" in text:
            raw.execute("EXPLAIN " + text, params)
            plans.append("\n".join(row[0] for row in raw.fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        assert take_snapshot("hourly", HOURS[1], "scheduled").rows == 1200
    assert len(plans) == 1
    assert "Nested Loop" not in plans[0], plans[0]
