"""take_snapshot and the snapshot job: a snapshot is the exact ledger at its boundary."""

from decimal import Decimal

import pytest

from bagtracker.models import Transaction
from bagtracker.services.transactions import delete_transactions, save_transaction
from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import SnapshotError, run_snapshots, take_snapshot
from tests.conftest import utc

D = Decimal


def amounts(period, as_of):
    rows = BalanceSnapshot.objects.filter(period=period, as_of=as_of)
    return {(r.wallet_id, r.token.symbol): r.amount for r in rows.select_related("token")}


def row(wallet, token, period="daily", as_of=None):
    return BalanceSnapshot.objects.get(wallet=wallet, token=token, period=period, as_of=as_of)


def test_a_snapshot_is_the_ledger_before_its_boundary(make_tx, wallet, token):
    make_tx("buy", "2", price="100", at=utc(2026, 3, 1, 9))
    make_tx("sell", "0.5", price="120", at=utc(2026, 3, 1, 23, 59, 59))
    make_tx("buy", "10", price="200", at=utc(2026, 3, 2, 0, 0, 1))  # after the boundary

    result = take_snapshot("daily", utc(2026, 3, 2), "manual")

    assert (result.status, result.rows, result.written, result.removed) == ("success", 1, 1, 0)
    r = row(wallet, token, as_of=utc(2026, 3, 2))
    assert r.amount == D("1.5")
    assert r.avg_buy_price_usd == D(100)
    assert r.price_usd == D(120)  # the latest priced transaction at or before the boundary
    assert r.value_usd == D(180)
    assert r.source == "manual"


def test_a_transaction_exactly_at_the_boundary_belongs_to_the_next_snapshot(make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 3, 1, 12))
    make_tx("buy", "2", at=utc(2026, 3, 2))  # exactly at the daily boundary
    take_snapshot("daily", utc(2026, 3, 2), "manual")
    take_snapshot("daily", utc(2026, 3, 3), "manual")
    assert row(wallet, token, as_of=utc(2026, 3, 2)).amount == 1
    assert row(wallet, token, as_of=utc(2026, 3, 3)).amount == 3


def test_a_run_at_10_59_takes_the_10_00_boundary_without_the_transactions_since(make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 3, 1, 9, 59, 59))
    make_tx("buy", "5", at=utc(2026, 3, 1, 10, 0))
    make_tx("buy", "7", at=utc(2026, 3, 1, 10, 58))
    result = run_snapshots("hourly", at=utc(2026, 3, 1, 10, 59))
    assert result.as_of == utc(2026, 3, 1, 10)
    assert amounts("hourly", utc(2026, 3, 1, 10)) == {(wallet.id, "ETH"): D(1)}


def test_each_period_snapshots_its_own_boundary(make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 11, 1, 0, 30))  # after the monthly boundary
    make_tx("buy", "2", at=utc(2026, 11, 15, 0, 30))  # after the weekly boundary (Sunday)
    make_tx("buy", "4", at=utc(2026, 11, 18, 0, 30))  # after the daily boundary
    make_tx("buy", "8", at=utc(2026, 11, 18, 10, 30))  # after the hourly boundary
    at = utc(2026, 11, 18, 11, 5)
    for period in ["hourly", "daily", "weekly", "monthly"]:
        run_snapshots(period, at=at)
    assert amounts("hourly", utc(2026, 11, 18, 11)) == {(wallet.id, "ETH"): D(15)}
    assert amounts("daily", utc(2026, 11, 18)) == {(wallet.id, "ETH"): D(3)}
    assert amounts("weekly", utc(2026, 11, 15)) == {(wallet.id, "ETH"): D(1)}
    assert amounts("monthly", utc(2026, 11, 1)) == {}


def test_re_running_never_duplicates_and_writes_nothing_when_unchanged(make_tx, wallet, token):
    make_tx("buy", "1", price="3", at=utc(2026, 3, 1))
    first = take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    created = row(wallet, token, as_of=utc(2026, 3, 2)).created_at
    again = take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    assert (first.written, again.rows, again.written, again.removed) == (1, 1, 0, 0)
    assert BalanceSnapshot.objects.count() == 1
    assert row(wallet, token, as_of=utc(2026, 3, 2)).created_at == created
    assert SnapshotRun.objects.filter(status="completed").count() == 1


def test_history_edited_before_a_taken_boundary_is_refreshed_by_a_re_run(make_tx, make_token, wallet, token):
    usdc = make_token("USDC", decimals=6)
    buy = make_tx("buy", "2", price="100", at=utc(2026, 3, 1))
    make_tx("buy", "50", at=utc(2026, 3, 1), of_token=usdc)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    assert amounts("daily", utc(2026, 3, 2)) == {(wallet.id, "ETH"): D(2), (wallet.id, "USDC"): D(50)}

    buy.amount, buy.price_usd = D(3), D(90)
    save_transaction(buy)  # corrected afterwards
    make_tx("sell", "50", at=utc(2026, 3, 1, 6), of_token=usdc)  # a late-imported sell: USDC falls to zero
    result = take_snapshot("daily", utc(2026, 3, 2), "scheduled")

    assert (result.rows, result.written, result.removed) == (1, 1, 1)
    assert amounts("daily", utc(2026, 3, 2)) == {(wallet.id, "ETH"): D(3)}
    assert row(wallet, token, as_of=utc(2026, 3, 2)).avg_buy_price_usd == D(90)


def test_a_row_that_fell_to_zero_goes_even_when_another_row_appears(make_tx, make_wallet, wallet, token):
    # The stale-row check compares counts: one row gone and one new must still be seen as stale.
    newcomer = make_wallet()
    make_tx("buy", "1", at=utc(2026, 3, 1))
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    make_tx("sell", "1", at=utc(2026, 3, 1, 5))
    make_tx("buy", "3", at=utc(2026, 3, 1, 6), on_wallet=newcomer)
    result = take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    assert (result.rows, result.written, result.removed) == (1, 1, 1)
    assert amounts("daily", utc(2026, 3, 2)) == {(newcomer.id, "ETH"): D(3)}


def test_deleted_history_removes_the_row(make_tx, wallet, token):
    tx = make_tx("buy", "2", at=utc(2026, 3, 1))
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    delete_transactions(Transaction.objects.filter(pk=tx.pk))
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    assert amounts("daily", utc(2026, 3, 2)) == {}


def test_dust_is_left_out(settings, make_tx, make_wallet, wallet, token):
    settings.BALANCE_DUST_THRESHOLD = D("0.000001")
    dusty, above = make_wallet(), make_wallet()
    make_tx("buy", "0.000001", at=utc(2026, 3, 1), on_wallet=dusty)  # exactly the threshold: zero
    make_tx("buy", "0.000001000000000001", at=utc(2026, 3, 1), on_wallet=above)
    make_tx("buy", "1", at=utc(2026, 3, 1))
    make_tx("sell", "0.9999999", at=utc(2026, 3, 1, 1))  # 0.0000001 left
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    assert amounts("daily", utc(2026, 3, 2)) == {(above.id, "ETH"): D("0.000001000000000001")}


def test_inactive_wallets_are_left_out(make_tx, make_wallet, wallet, token):
    sleeping = make_wallet(is_active=False)
    make_tx("buy", "1", at=utc(2026, 3, 1))
    make_tx("buy", "1", at=utc(2026, 3, 1), on_wallet=sleeping)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    assert set(amounts("daily", utc(2026, 3, 2))) == {(wallet.id, "ETH")}


def test_pending_failed_and_cancelled_transactions_do_not_count(make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 3, 1))
    for status in ["pending", "failed", "cancelled"]:
        make_tx("buy", "100", price="5", at=utc(2026, 3, 1, 1), status=status)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    r = row(wallet, token, as_of=utc(2026, 3, 2))
    assert (r.amount, r.price_usd, r.value_usd, r.avg_buy_price_usd) == (D(1), None, None, None)


class TestPriceAtTheBoundary:
    def test_the_latest_price_at_or_before_the_boundary_wins(self, make_tx, make_price, wallet, token):
        make_tx("buy", "2", price="100", at=utc(2026, 3, 1, 23))  # a later priced tx does not win over a Price
        make_price("150", at=utc(2026, 3, 1))
        make_price("160", at=utc(2026, 3, 2))  # exactly at the boundary: counts
        make_price("999", at=utc(2026, 3, 2, 0, 0, 1))
        take_snapshot("daily", utc(2026, 3, 2), "scheduled")
        r = row(wallet, token, as_of=utc(2026, 3, 2))
        assert (r.price_usd, r.value_usd) == (D(160), D(320))

    def test_without_a_price_the_latest_priced_transaction_of_any_wallet(
        self, make_tx, make_price, make_wallet, wallet, token
    ):
        other = make_wallet()
        make_price("999", at=utc(2026, 3, 2, 1))  # after the boundary: ignored
        make_tx("buy", "3", at=utc(2026, 3, 1))  # unpriced
        make_tx("buy", "1", price="40", at=utc(2026, 3, 1, 5), on_wallet=other)
        make_tx("buy", "1", price="41", at=utc(2026, 3, 2), on_wallet=other)  # at the boundary: price counts
        make_tx("buy", "1", price="42", at=utc(2026, 3, 2), on_wallet=other, status="pending")
        take_snapshot("daily", utc(2026, 3, 2), "scheduled")
        r = row(wallet, token, as_of=utc(2026, 3, 2))
        assert (r.amount, r.price_usd, r.value_usd, r.avg_buy_price_usd) == (D(3), D(41), D(123), None)

    def test_no_price_at_all_leaves_value_unknown(self, make_tx, wallet, token):
        make_tx("buy", "3", at=utc(2026, 3, 1))
        make_tx("buy", "1", price="7", at=utc(2026, 3, 3))  # after the boundary
        take_snapshot("daily", utc(2026, 3, 2), "scheduled")
        r = row(wallet, token, as_of=utc(2026, 3, 2))
        assert (r.price_usd, r.value_usd) == (None, None)

    def test_value_is_rounded_to_18_places_half_up(self, make_tx, make_price, wallet, token):
        make_tx("buy", "0.5", at=utc(2026, 3, 1))
        make_price("0.000000000000000003", at=utc(2026, 3, 1))
        take_snapshot("daily", utc(2026, 3, 2), "scheduled")
        assert row(wallet, token, as_of=utc(2026, 3, 2)).value_usd == D("0.000000000000000002")  # 1.5e-18


def test_the_run_is_recorded(make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 3, 1))
    take_snapshot("daily", utc(2026, 3, 2), "backfill")
    run = SnapshotRun.objects.get()
    assert (run.period, run.as_of, run.source, run.status, run.rows) == (
        "daily",
        utc(2026, 3, 2),
        "backfill",
        "completed",
        1,
    )
    assert run.finished_at >= run.started_at


def test_a_wallet_limited_run_leaves_other_wallets_alone_and_completes_nothing(make_tx, make_wallet, wallet, token):
    other = make_wallet()
    make_tx("buy", "1", at=utc(2026, 3, 1))
    make_tx("buy", "2", at=utc(2026, 3, 1), on_wallet=other)
    take_snapshot("daily", utc(2026, 3, 2), "backfill", WalletScope(wallets=[wallet.id]))
    assert amounts("daily", utc(2026, 3, 2)) == {(wallet.id, "ETH"): D(1)}
    assert not SnapshotRun.objects.exists()

    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    BalanceSnapshot.objects.filter(wallet=other).update(amount=99)  # tampered: must stay untouched below
    make_tx("buy", "1", at=utc(2026, 3, 1, 1))
    result = take_snapshot("daily", utc(2026, 3, 2), "manual", WalletScope(wallets=[wallet.id]))
    assert (result.rows, result.written, result.partial) == (1, 1, True)
    assert amounts("daily", utc(2026, 3, 2)) == {(wallet.id, "ETH"): D(2), (other.id, "ETH"): D(99)}
    run = SnapshotRun.objects.get()
    assert (run.source, run.rows) == ("scheduled", 2)


def test_a_wallet_limited_run_never_removes_rows_of_other_wallets(make_tx, make_wallet, wallet, token):
    other = make_wallet()
    make_tx("buy", "1", at=utc(2026, 3, 1))
    make_tx("buy", "2", at=utc(2026, 3, 1), on_wallet=other)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    other.is_active = False
    other.save()  # its row no longer qualifies, but it is not this run's business
    result = take_snapshot("daily", utc(2026, 3, 2), "manual", WalletScope(wallets=[wallet.id]))
    assert result.removed == 0
    assert set(amounts("daily", utc(2026, 3, 2))) == {(wallet.id, "ETH"), (other.id, "ETH")}
    assert take_snapshot("daily", utc(2026, 3, 2), "manual", WalletScope(wallets=[other.id])).removed == 1


def test_a_boundary_is_required(db):
    with pytest.raises(ValueError, match="not a daily boundary"):
        take_snapshot("daily", utc(2026, 3, 2, 5), "manual")


def test_a_refused_write_is_recorded_as_a_failed_run(make_tx, refuse_snapshot_rows, wallet, token):
    make_tx("buy", "1", at=utc(2026, 3, 1))
    refuse_snapshot_rows(utc(2026, 3, 2))
    with pytest.raises(SnapshotError, match=r"daily 2026-03-02T00:00Z: .*simulated disk full"):
        take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    run = SnapshotRun.objects.get()
    assert run.status == "failed" and "simulated disk full" in run.error
    assert not BalanceSnapshot.objects.exists()


def test_a_value_too_large_for_the_column_is_unknown_not_a_failure(make_tx, make_price, make_wallet, wallet, token):
    other = make_wallet()
    make_tx("buy", "1" + "0" * 30, at=utc(2026, 3, 1))  # a spam token's absurd holding...
    make_tx("buy", "2", at=utc(2026, 3, 1), on_wallet=other)
    make_price("1" + "0" * 10, at=utc(2026, 3, 1))  # ...times its price: 10^40 USD
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    assert row(wallet, token, as_of=utc(2026, 3, 2)).value_usd is None
    assert row(other, token, as_of=utc(2026, 3, 2)).value_usd == D("20000000000")


class TestTheJob:
    def test_it_skips_a_disabled_period(self, settings, make_tx):
        make_tx("buy", "1", at=utc(2026, 3, 1))
        settings.BALANCE_DAILY_SNAPSHOTS = False
        result = run_snapshots("daily", at=utc(2026, 3, 2, 0, 15))
        assert result.as_dict()["status"] == "skipped"
        assert result.as_dict()["reason"] == "disabled_in_settings"
        assert not BalanceSnapshot.objects.exists() and not SnapshotRun.objects.exists()

    def test_it_skips_everything_when_snapshots_are_off(self, settings, make_tx):
        settings.BALANCE_SNAPSHOT_ENABLED = False
        assert run_snapshots("hourly", at=utc(2026, 3, 2)).status == "skipped"

    def test_force_runs_a_disabled_period(self, settings, make_tx, wallet):
        make_tx("buy", "1", at=utc(2026, 3, 1))
        settings.BALANCE_DAILY_SNAPSHOTS = False
        result = run_snapshots("daily", at=utc(2026, 3, 2, 0, 15), source="manual", force=True)
        assert result.status == "success"
        assert amounts("daily", utc(2026, 3, 2)) == {(wallet.id, "ETH"): D(1)}

    def test_its_result_is_a_plain_dict(self, make_tx):
        make_tx("buy", "1", at=utc(2026, 3, 1))
        data = run_snapshots("daily", at=utc(2026, 3, 2, 0, 15)).as_dict()
        assert data["status"] == "success"
        assert data["period"] == "daily"
        assert data["as_of"] == "2026-03-02T00:00:00Z"
        assert data["rows"] == 1
        assert [b["as_of"] for b in data["boundaries"]] == ["2026-03-02T00:00:00Z"]
        assert data["duration_seconds"] >= 0
