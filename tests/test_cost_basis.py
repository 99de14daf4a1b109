"""Cost basis and realized PnL (docs/ledger.md), computed by hand, for
both methods. Each transaction is at its own instant unless a test says otherwise."""

from decimal import Decimal

import pytest

from bagtracker.models import Transaction
from snapshots.models import Balance
from snapshots.services.ledger import recalculate_wallet
from tests.conftest import utc

D = Decimal
BOTH = pytest.mark.parametrize("method", ["average", "fifo"])


@pytest.fixture
def history(make_tx, settings_for_method):
    """history(method, ("buy", "1", "100"), ("sell", "1", "150"), …) → the Balance afterwards.
    Rows are a day apart; a fourth element gives the instant (a day number) explicitly."""

    def record(method, *rows):
        settings_for_method(method)
        for day, (kind, amount, price, *at) in enumerate(rows, start=1):
            make_tx(kind, amount, price=price, at=utc(2026, 1, at[0] if at else day))
        return Balance.objects.get()

    return record


def ledger(b):
    return (b.amount, b.cost_basis_usd, b.realized_pnl_usd)


@BOTH
def test_a_later_buy_never_changes_an_earlier_sale(history, method):
    b = history(method, ("buy", "1", "100"), ("sell", "1", "150"), ("buy", "1", "300"))
    assert ledger(b) == (1, 300, 50)
    assert b.avg_cost_usd == 300
    assert b.avg_buy_price_usd == 200  # the trade statistic is still the lifetime average
    assert (b.cost_basis_complete, b.realized_pnl_complete, b.cost_basis_method) == (True, True, method)


@pytest.mark.parametrize(("method", "realized", "basis"), [("average", 150, 350), ("fifo", 200, 400)])
def test_a_partial_sale_takes_the_average_or_the_oldest_lots(history, method, realized, basis):
    # average: C = 700 over 4; the sale takes round(700 × 2 / 4) = 350.
    # fifo: the sale takes 1 @100 and 1 @200 = 300; 2 @200 stay.
    b = history(method, ("buy", "1", "100"), ("buy", "3", "200"), ("sell", "2", "250"))
    assert ledger(b) == (2, basis, realized)
    assert b.avg_cost_usd == basis / 2


@BOTH
def test_a_sell_listed_before_a_buy_at_the_same_instant_goes_after_it(settings_for_method, wallet, token, method):
    settings_for_method(method)
    at = utc(2026, 1, 5)
    # Listed (and numbered) sell first, as a file or an exchange export may list them.
    Transaction.objects.bulk_create(
        Transaction(wallet=wallet, token=token, kind=kind, amount=D(amount), price_usd=D(price), timestamp=at)
        for kind, amount, price in [("sell", "1", "120"), ("buy", "2", "100")]
    )
    assert recalculate_wallet(wallet.id).status == "success"
    assert ledger(Balance.objects.get()) == (1, 100, 20)


@BOTH
def test_a_full_disposal_takes_all_the_cost_left(history, method):
    # A third each time: 0.333333333333333333 per unit, C = 0.999999999999999999.
    b = history(
        method,
        ("buy", "3", "0.333333333333333333"),
        ("sell", "1", "1"),  # takes 0.333333333333333333 (both)
        ("sell", "1", "1"),  # average: round(0.666666666666666666 / 2); fifo: the same unit cost
        ("sell", "1", "1"),  # all that is left: 0.333333333333333333
    )
    assert ledger(b) == (0, 0, D("2.000000000000000001"))  # 3 − 0.999999999999999999
    assert b.avg_cost_usd is None


def test_average_rounds_each_disposal_half_away_from_zero(history):
    # C = 0.000000000000000001 over 2: half of it is 0.5 units of the 18th place, rounded up.
    b = history("average", ("buy", "1", "0.000000000000000001"), ("transfer_in", "1", "0"), ("transfer_out", "1", None))
    assert ledger(b) == (1, 0, 0)


def test_average_rounds_a_quotient_just_below_half_a_unit_down(history):
    # round(1.500000000000000002 × 1 / 3.000000000000000001) = round(0.500000000000000000 4999…) =
    # 0.5: rounding first to 36 places (…0005000…) and then to 18 would take 0.500000000000000001.
    b = history(
        "average",
        ("buy", "1", "1.500000000000000002"),
        ("transfer_in", "2.000000000000000001", "0"),
        ("transfer_out", "1", None),
    )
    assert b.cost_basis_usd == D("1.000000000000000002")
    # avg cost = round(1.000000000000000002 / 2.000000000000000001) = round(0.500000000000000000 75…)
    assert b.avg_cost_usd == D("0.500000000000000001")


def test_fifo_rounds_the_sum_over_the_open_lots(history):
    # 1.5 units of 0.333333333333333333 stay: 0.4999999999999999995, rounded half away from zero.
    b = history("fifo", ("buy", "3", "0.333333333333333333"), ("transfer_out", "1.5", None))
    assert b.cost_basis_usd == D("0.5")
    assert b.avg_cost_usd == D("0.333333333333333333")  # round(0.5 / 1.5)


@BOTH
def test_a_transfer_out_moves_its_cost_out_and_never_realizes(history, method):
    b = history(method, ("buy", "2", "100"), ("transfer_out", "1", "500"))
    assert ledger(b) == (1, 100, 0)
    assert (b.cost_basis_complete, b.realized_pnl_complete) == (True, True)


@BOTH
def test_a_sell_without_a_price_moves_cost_out_realizes_nothing_and_is_flagged(history, method):
    b = history(method, ("buy", "2", "100"), ("sell", "1", None))
    assert ledger(b) == (1, 100, 0)
    assert (b.cost_basis_complete, b.realized_pnl_complete) == (True, False)


@BOTH
def test_an_unpriced_acquisition_has_an_unknown_cost_never_taken_from_the_price_table(history, make_price, method):
    make_price("5000", utc(2025, 12, 1))  # a price the ledger must not use
    b = history(method, ("transfer_in", "2", None))
    assert ledger(b) == (2, 0, 0)
    assert b.avg_cost_usd == 0
    assert (b.cost_basis_complete, b.realized_pnl_complete) == (False, True)


@pytest.mark.parametrize(("method", "realized"), [("average", 100), ("fifo", 150)])
def test_unknown_cost_flags_until_those_units_are_gone(history, method, realized):
    b = history(
        method,
        ("transfer_in", "2", None),  # unknown cost
        ("buy", "2", "100"),
        # average: takes round(200 / 4) = 50 while unknown-cost units are held: incomplete.
        # fifo: takes 1 unit of the unknown lot, at cost 0: incomplete.
        ("sell", "1", "150"),
        ("transfer_out", "3", None),  # everything left goes: the amount is 0
        ("buy", "1", "10"),
    )
    assert ledger(b) == (1, 10, realized)
    assert b.cost_basis_complete is True  # no unit of unknown cost is held any more
    assert b.realized_pnl_complete is False  # and a sale that used one stays flagged


def test_fifo_sells_known_lots_without_flagging_an_unknown_lot_behind_them(history):
    b = history("fifo", ("buy", "1", "100"), ("transfer_in", "1", None), ("sell", "1", "150"))
    assert ledger(b) == (1, 0, 50)
    assert (b.cost_basis_complete, b.realized_pnl_complete) == (False, True)


def test_average_flags_a_sale_while_unknown_cost_units_are_held(history):
    b = history("average", ("buy", "1", "100"), ("transfer_in", "1", None), ("sell", "1", "150"))
    assert ledger(b) == (1, 50, 100)  # takes round(100 × 1 / 2) = 50
    assert (b.cost_basis_complete, b.realized_pnl_complete) == (False, False)


@BOTH
def test_dust_keeps_its_exact_amount_and_cost(history, method):
    b = history(method, ("buy", "1", "100"), ("sell", "0.9999999", "200"))
    # takes round(100 × 0.9999999) = 99.99999; proceeds 199.99998.
    assert ledger(b) == (D("0.0000001"), D("0.00001"), D("99.99999"))
    assert b.avg_cost_usd == 100


@BOTH
def test_a_loss_is_realized_as_a_negative_amount(history, method):
    b = history(method, ("buy", "2", "100"), ("sell", "2", "40"))
    assert ledger(b) == (0, 0, -120)


def test_the_method_is_recorded_and_a_switch_applies_when_the_wallet_is_next_written(history, make_tx, settings):
    history("average", ("buy", "1", "100"), ("buy", "3", "200"))
    settings.BALANCE_COST_BASIS = "fifo"
    assert Balance.objects.get().cost_basis_method == "average"  # nothing recomputed it yet
    make_tx("sell", "2", price="250", at=utc(2026, 1, 9))
    b = Balance.objects.get()
    assert (b.cost_basis_method, b.cost_basis_usd, b.realized_pnl_usd) == ("fifo", 400, 200)
