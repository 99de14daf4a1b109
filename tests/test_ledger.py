"""The ledger rules of docs/ledger.md, with hand-computed cases."""

from decimal import Decimal, localcontext

import pytest
from django.db import IntegrityError, connection

from bagtracker.models import Transaction
from bagtracker.services.transactions import delete_transactions, save_transaction
from snapshots.models import Balance
from snapshots.services.ledger import BalanceOverflowError, LedgerError, recalculate_all_wallets, recalculate_wallet
from tests.conftest import utc

D = Decimal


def balance(wallet, token):
    return Balance.objects.get(wallet=wallet, token=token)


def test_it_computes_amounts_averages_and_realized_pnl(make_tx, wallet, token):
    make_tx("buy", "2", price="100", at=utc(2026, 1, 1))
    make_tx("buy", "1", price="130", at=utc(2026, 1, 2))
    make_tx("transfer_in", "0.5", at=utc(2026, 1, 3))  # unpriced: counts in amount, not in average
    make_tx("sell", "1.5", price="150", at=utc(2026, 1, 4))
    make_tx("transfer_out", "0.25", price="90", at=utc(2026, 1, 5))

    b = balance(wallet, token)
    assert b.amount == D("1.75")
    assert b.total_in == D("3.5")
    assert b.total_out == D("1.75")
    assert b.avg_buy_price_usd == D("110")  # (200 + 130) / 3
    # (225 + 22.5) / 1.75 = 141.428571428571428571 (rounded to 18 places)
    assert b.avg_sell_price_usd == D("141.428571428571428571")
    # Average cost: C = 200 + 130 (+ 0 for the unpriced 0.5) = 330 over 3.5; the sell of 1.5 takes
    # round(330 × 1.5 / 3.5) = round(141.428571428571428571 428…) = 141.428571428571428571 and
    # realizes 225 − that; the transfer_out realizes nothing (tests/test_cost_basis.py has the rest).
    assert b.realized_pnl_usd == D("83.571428571428571429")


def test_it_rounds_half_away_from_zero(make_tx, wallet, token):
    # avg = (1 * 0.000000000000000001 + 1 * 0.000000000000000002) / 2 = 0.0000000000000000015 -> ...002
    make_tx("buy", "1", price="0.000000000000000001", at=utc(2026, 1, 1))
    make_tx("buy", "1", price="0.000000000000000002", at=utc(2026, 1, 2))
    assert balance(wallet, token).avg_buy_price_usd == D("0.000000000000000002")


def test_only_confirmed_transactions_count(make_tx, wallet, token):
    make_tx("buy", "5", price="10")
    for status in ["pending", "failed", "cancelled"]:
        make_tx("buy", "100", price="1", status=status)
        make_tx("sell", "1000", price="1", status=status)  # would be negative if it counted
    b = balance(wallet, token)
    assert (b.amount, b.avg_buy_price_usd, b.avg_sell_price_usd, b.realized_pnl_usd) == (D(5), D(10), None, D(0))


def test_a_sale_of_units_of_unknown_cost_realizes_its_proceeds_and_is_flagged(make_tx, wallet, token):
    make_tx("transfer_in", "3", at=utc(2026, 1, 1))
    make_tx("sell", "1", price="50", at=utc(2026, 1, 2))
    b = balance(wallet, token)
    assert b.avg_buy_price_usd is None
    assert b.avg_sell_price_usd == D(50)
    assert b.realized_pnl_usd == 50  # the unknown cost counts as 0, never guessed
    assert (b.cost_basis_complete, b.realized_pnl_complete) == (False, False)


def test_amounts_are_exact_at_full_precision(make_tx, wallet, token):
    make_tx("buy", "123.456789012345678901")
    assert balance(wallet, token).amount == D("123.456789012345678901")
    big = "1" + "0" * 59 + ".000000000000000001"  # 60 integer digits fit NUMERIC(78,18)
    make_tx("buy", big)
    with localcontext() as exact:
        exact.prec = 100
        assert balance(wallet, token).amount == D(big) + D("123.456789012345678901")


def test_a_change_driving_the_running_amount_negative_is_refused(make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 1, 2))
    before = list(Balance.objects.values())
    sell = Transaction(wallet=wallet, token=token, kind="sell", amount=D(1), timestamp=utc(2026, 1, 1))
    with pytest.raises(LedgerError) as error:
        save_transaction(sell)  # sold before it was bought
    assert str(error.value) == (
        f"wallet {wallet.id} ({wallet.address} on ethereum), ETH: the new transaction (sell of 1 at "
        "2026-01-01T00:00:00+00:00) would make the running amount negative (-1)"
    )
    assert sell.pk is None  # the id its insert drew was rolled back with it
    assert Transaction.objects.count() == 1
    assert list(Balance.objects.values()) == before


def test_order_is_timestamp_then_acquisitions_first_then_id(make_tx, wallet, token):
    at = utc(2026, 1, 1)
    make_tx("buy", "1", at=at)
    make_tx("sell", "1", at=at)  # same instant, later id: fine
    assert balance(wallet, token).amount == 0


def test_deleting_a_transaction_updates_balances_and_removes_empty_ones(make_tx, wallet, token):
    tx = make_tx("buy", "1")
    delete_transactions(Transaction.objects.filter(pk=tx.pk))
    assert not Balance.objects.exists()


def test_deleting_the_buy_under_a_sell_is_refused(make_tx, wallet, token):
    buy = make_tx("buy", "1", at=utc(2026, 1, 1))
    sell = make_tx("sell", "1", at=utc(2026, 1, 2))
    with pytest.raises(LedgerError) as error:
        delete_transactions(Transaction.objects.filter(pk=buy.pk))
    assert f"transaction {sell.pk} (sell of 1 at 2026-01-02T00:00:00+00:00)" in str(error.value)
    assert Transaction.objects.count() == 2


def test_moving_a_transaction_to_another_wallet_updates_both(make_tx, make_wallet, wallet, token):
    other = make_wallet()
    tx = make_tx("buy", "2")
    tx.wallet = other
    save_transaction(tx)
    assert not Balance.objects.filter(wallet=wallet).exists()
    assert balance(other, token).amount == 2


def test_recalculate_repairs_a_tampered_balance_and_removes_orphans(make_tx, make_token, wallet, token):
    make_tx("buy", "3", price="2")
    other = make_token("USDC", decimals=6)
    Balance.objects.filter(wallet=wallet).update(amount=999)
    Balance.objects.create(wallet=wallet, token=other, amount=1, total_in=1, total_out=0, realized_pnl_usd=0)
    result = recalculate_wallet(wallet.id)
    assert result.status == "success"
    assert balance(wallet, token).amount == 3
    assert not Balance.objects.filter(token=other).exists()


def test_recalculate_all_isolates_a_broken_wallet(make_tx, make_wallet, token):
    good, broken = make_wallet(), make_wallet()
    make_tx("buy", "1", on_wallet=good)
    make_tx("buy", "1", on_wallet=broken, at=utc(2026, 1, 2))
    # History corrupted behind the app's back: a sell before any buy.
    Transaction.objects.create(
        wallet=broken, token=token, kind="sell", amount=1, timestamp=utc(2026, 1, 1), status="confirmed"
    )
    Balance.objects.all().update(amount=42)
    result = recalculate_all_wallets(batch_size=1)
    assert result.status == "partial_success"
    assert [f.wallet_id for f in result.failures] == [broken.id]
    assert balance(good, token).amount == 1
    assert balance(broken, token).amount == 42  # untouched


@pytest.mark.parametrize(
    "field, value",
    [("amount", "0"), ("amount", "-1"), ("price_usd", "-0.01"), ("kind", "gift"), ("status", "lost")],
)
def test_the_database_refuses_invalid_transactions(wallet, token, field, value):
    row = {
        "wallet": wallet,
        "token": token,
        "kind": "buy",
        "status": "confirmed",
        "amount": D(1),
        "timestamp": utc(2026, 1, 1),
    }
    row[field] = value
    with pytest.raises(IntegrityError):
        Transaction.objects.create(**row)


def test_the_database_refuses_more_places_than_the_token_has(wallet, make_token):
    usdc = make_token("USDC", decimals=6)
    Transaction.objects.create(wallet=wallet, token=usdc, kind="buy", amount=D("1.000001"), timestamp=utc(2026, 1, 1))
    with pytest.raises(IntegrityError, match="decimal places"):
        Transaction.objects.create(
            wallet=wallet, token=usdc, kind="buy", amount=D("1.0000001"), timestamp=utc(2026, 1, 1)
        )


def test_the_database_refuses_a_token_of_another_chain(wallet, make_token):
    from bagtracker.models import Chain

    solana = Chain.objects.create(slug="solana", name="Solana")
    sol = make_token("SOL", on_chain=solana)
    with pytest.raises(IntegrityError, match="chain"):
        Transaction.objects.create(wallet=wallet, token=sol, kind="buy", amount=D(1), timestamp=utc(2026, 1, 1))


def test_the_database_refuses_duplicate_hashes(wallet, token):
    row = {
        "wallet": wallet,
        "token": token,
        "kind": "buy",
        "amount": D(1),
        "timestamp": utc(2026, 1, 1),
        "tx_hash": "0xabc",
    }
    Transaction.objects.create(**row)
    Transaction.objects.create(**{**row, "kind": "sell"})  # another kind of the same hash is fine
    with pytest.raises(IntegrityError):
        Transaction.objects.create(**row)


def test_balance_columns_are_exact_numeric(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_name = 'snapshots_balance' AND data_type = 'numeric' ORDER BY column_name"
        )
        columns = {name: (p, s) for name, p, s in cursor.fetchall()}
    assert columns["amount"] == (78, 18)
    assert columns["avg_buy_price_usd"] == (38, 18)
    assert columns["realized_pnl_usd"] == (38, 18)


def test_averages_are_rounded_once_not_twice(make_tx, wallet, token):
    # (1 × 1.500000000000000002 + 2.000000000000000001 × 0) / 3.000000000000000001
    #   = 0.500000000000000000 499999999999999999 8333… → 0.500000000000000000.
    # Rounding first to 36 places (…500000000000000000) and then to 18 would give …001.
    make_tx("buy", "1", price="1.500000000000000002", at=utc(2026, 1, 1))
    make_tx("buy", "2.000000000000000001", price="0", at=utc(2026, 1, 2))
    make_tx("sell", "3.000000000000000001", price="1.500000000000000002", at=utc(2026, 1, 3))
    b = balance(wallet, token)
    assert b.avg_buy_price_usd == D("0.500000000000000000")
    # A full disposal takes all of C = 1.500000000000000002; proceeds = round(3.000000000000000001 ×
    # 1.500000000000000002) = round(4.500000000000000007 500000000000000002) = 4.500000000000000008.
    assert b.realized_pnl_usd == D("3.000000000000000006")


def test_a_balance_too_large_for_its_column_is_refused_with_a_message(make_tx, wallet, token):
    make_tx("buy", "1000000000", price="0", at=utc(2026, 1, 1))
    before = list(Balance.objects.values())
    # A mistyped price: realized PnL = 10^12 × 10^9 = 10^21 USD, beyond NUMERIC(38,18).
    with pytest.raises(BalanceOverflowError) as error:
        make_tx("sell", "1000000000", price="1000000000000", at=utc(2026, 1, 2))
    assert isinstance(error.value, LedgerError)  # refused like any other ledger refusal
    assert str(error.value).startswith(f"wallet {wallet.id}: a balance would not fit its column")
    assert Transaction.objects.count() == 1
    assert list(Balance.objects.values()) == before


def test_recalculate_all_isolates_a_wallet_whose_balance_overflows(make_tx, make_wallet, token):
    good, huge = make_wallet(), make_wallet()
    make_tx("buy", "1", on_wallet=good)
    Balance.objects.all().update(amount=42)
    Transaction.objects.bulk_create(
        Transaction(
            wallet=huge, token=token, kind=kind, amount=D(10**9), price_usd=D(price), timestamp=utc(2026, 1, day)
        )
        for day, kind, price in [(1, "buy", 0), (2, "sell", 10**12)]
    )
    result = recalculate_all_wallets()
    assert result.status == "partial_success"
    assert [f.wallet_id for f in result.failures] == [huge.id]
    assert balance(good, token).amount == 1
    assert not Balance.objects.filter(wallet=huge).exists()
