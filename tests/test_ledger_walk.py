"""The walk's own paths (bt_ledger_walk, migrations snapshots.0010 and 0015): long runs of
acquisitions, a disposal that takes many lots or exactly empties them, the lot arrays cut down to
the open lots, fifo's sells that round nothing and the first that must, a refused pair between two
good ones and the transaction it names. Each history is checked by hand
and against the reference model of tests/test_ledger_property.py."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from bagtracker.models import Transaction
from snapshots.models import Balance
from snapshots.services.ledger import recalculate_wallet
from tests.conftest import utc
from tests.test_ledger_property import Tx, reference_balances, stored_balances

D = Decimal
BOTH = pytest.mark.parametrize("method", ["average", "fifo"])
START = utc(2026, 1, 1)


def record(wallet, token, rows):
    """Bulk-insert (kind, amount, price) rows a second apart, then rebuild the wallet's balances."""
    txs = Transaction.objects.bulk_create(
        Transaction(
            wallet=wallet,
            token=token,
            kind=kind,
            amount=D(amount),
            price_usd=None if price is None else D(price),
            timestamp=START + timedelta(seconds=n),
        )
        for n, (kind, amount, price) in enumerate(rows)
    )
    assert recalculate_wallet(wallet.id).status == "success"
    return txs


def reference(method):
    txs = [
        Tx(t.id, t.wallet_id, t.token_id, t.kind, t.status, t.amount, t.price_usd, t.timestamp)
        for t in Transaction.objects.all()
    ]
    balances, negatives = reference_balances(txs, method)
    assert negatives == []
    return balances


def ledger(b):
    return (b.amount, b.cost_basis_usd, b.realized_pnl_usd, b.cost_basis_complete, b.realized_pnl_complete)


@pytest.mark.parametrize(
    ("method", "cost", "basis"),
    [
        ("average", 3751250, 750250),  # round(4,501,500 × 2,500 / 3,000), and C − that
        ("fifo", 3126250, 1375250),  # lots 1 … 2,500, and lots 2,501 … 3,000
    ],
)
def test_one_disposal_takes_a_long_run_of_lots(settings_for_method, wallet, token, method, cost, basis):
    settings_for_method(method)
    record(wallet, token, [*(("buy", "1", str(i)) for i in range(1, 3001)), ("sell", "2500", "10000")])
    b = Balance.objects.get()
    assert ledger(b) == (500, basis, 25_000_000 - cost, True, True)
    assert stored_balances() == reference(method)


@BOTH
def test_lots_left_after_the_arrays_were_cut_down_are_taken_in_order(settings_for_method, wallet, token, method):
    # fifo: the first sale leaves lots 2,501 … 3,000 (the arrays are cut to them); the second takes
    # those 500 and one unit of the newer lot @1.
    settings_for_method(method)
    rows = [*(("buy", "1", str(i)) for i in range(1, 3001)), ("sell", "2500", "10000")]
    rows += [("buy", "2", "1"), ("sell", "501", "10000"), ("buy", "1", "7"), ("sell", "0.5", "10000")]
    record(wallet, token, rows)
    b = Balance.objects.get()
    assert b.amount == D("1.5")
    if method == "fifo":
        assert b.cost_basis_usd == D("7.5")  # 0.5 @1 and 1 @7
    assert stored_balances() == reference(method)


@BOTH
def test_a_disposal_that_exactly_empties_the_lots_then_starts_afresh(settings_for_method, wallet, token, method):
    settings_for_method(method)
    record(
        wallet,
        token,
        [("buy", "1", "100"), ("buy", "2", "200"), ("sell", "3", "300"), ("buy", "1", "50"), ("sell", "1", "60")],
    )
    # 900 − 500, then 60 − 50: both methods, since every sale takes all that is held.
    assert ledger(Balance.objects.get()) == (0, 0, 410, True, True)
    assert stored_balances() == reference(method)


@BOTH
def test_a_disposal_through_an_unknown_cost_lot_into_a_priced_one(settings_for_method, wallet, token, method):
    settings_for_method(method)
    record(wallet, token, [("buy", "1", None), ("buy", "1", "100"), ("buy", "1", "40"), ("sell", "2", "150")])
    b = Balance.objects.get()
    if method == "fifo":
        # The unknown lot and the lot @100 go: cost 100; the lot @40 stays, fully known.
        assert ledger(b) == (1, 40, 200, True, False)
    else:
        # C = 140 over 3: the sale takes round(140 × 2 / 3) = 93.333…; units of unknown cost stay.
        assert ledger(b) == (1, D("46.666666666666666667"), D("206.666666666666666667"), False, False)
    assert stored_balances() == reference(method)


@BOTH
def test_part_of_an_unknown_cost_lot_sold(settings_for_method, wallet, token, method):
    settings_for_method(method)
    record(wallet, token, [("buy", "2", None), ("sell", "1", "10"), ("transfer_out", "0.5", None)])
    assert ledger(Balance.objects.get()) == (D("0.5"), 0, 10, False, False)
    assert stored_balances() == reference(method)


@BOTH
def test_sells_that_round_nothing_then_one_that_must_round(settings_for_method, wallet, token, method):
    # fifo (snapshots.0015) derives R while no sale's cost or value has more than 18 places, and
    # rounds from the first that does. The second sale takes 0.5 @100 and 0.25 of the lot @10^-18:
    # cost round(50 + 5e-19) − round(2.5e-19) = 50.000000000000000001, not the exact 50 + 2.5e-19.
    settings_for_method(method)
    rows = [("buy", "1", "100"), ("sell", "0.5", "120"), ("buy", "0.5", "0.000000000000000001")]
    rows += [("sell", "0.75", "2"), ("sell", "0.1", "3")]
    record(wallet, token, rows)
    b = Balance.objects.get()
    if method == "fifo":
        # 60 − 50, then 1.5 − 50.000000000000000001, then 0.3 − (round(2.5e-19) − round(1.5e-19)).
        assert ledger(b) == (D("0.15"), 0, D("-38.200000000000000001"), True, True)
    assert stored_balances() == reference(method)


@BOTH
def test_exact_sells_among_transfers_and_an_unpriced_sell(settings_for_method, wallet, token, method):
    # fifo's R derived at the end: the priced transfer_out's value and the cost the transfer and
    # the unpriced sale took are left out of it.
    settings_for_method(method)
    rows = [("buy", "2", "10"), ("transfer_out", "0.5", "12"), ("sell", "0.5", None), ("sell", "0.5", "20")]
    record(wallet, token, rows)
    assert ledger(Balance.objects.get()) == (D("0.5"), 5, 5, True, False)
    assert stored_balances() == reference(method)


def walk(method, wallet_ids, before=None):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT token_id, amount, cost_basis, realized, negative_tx, negative_at, negative_running"
            " FROM bt_ledger_walk(%s, NULL, NULL, %s, NULL, %s) ORDER BY token_id",
            [method, wallet_ids, before],
        )
        return cursor.fetchall()


@BOTH
def test_a_refused_pair_names_its_first_transaction_below_zero_and_the_next_pair_is_walked(wallet, make_token, method):
    first, refused, last = make_token("AAA"), make_token("BBB"), make_token("CCC")
    at = [START + timedelta(seconds=n) for n in range(6)]
    Transaction.objects.bulk_create(
        Transaction(wallet=wallet, token=t, kind=kind, amount=D(amount), price_usd=D("10"), timestamp=when)
        for t, kind, amount, when in [
            (first, "buy", "2", at[0]),
            (refused, "buy", "1", at[0]),
            (refused, "sell", "1", at[1]),
            (refused, "sell", "1", at[2]),  # the first below zero
            (refused, "sell", "1", at[3]),
            (refused, "buy", "5", at[4]),
            (last, "buy", "3", at[1]),
            (last, "sell", "1", at[5]),
        ]
    )
    below = Transaction.objects.get(token=refused, timestamp=at[2])
    rows = walk(method, [wallet.id])
    assert rows[0][:4] == (first.id, 2, 20, 0)
    assert rows[1][0] == refused.id and rows[1][4:] == (below.id, at[2], -1)
    assert rows[2][:5] == (last.id, 2, 20, 0, None)
    # As of an instant before that sale, the pair is not refused.
    assert walk(method, [wallet.id], before=at[2])[1][:5] == (refused.id, 0, 0, 0, None)


def test_the_walk_looks_up_listed_pairs_even_when_its_caller_forbids_nested_loops(make_wallet, token):
    """A boundary's shards forbid nested loops for their own joins (snapshot_sql.NO_NESTED_LOOPS_SQL).
    The walk of a shard's moved pairs runs inside the shard's statement, but plans its own query
    (migration snapshots.0016): each listed pair is looked up in the ledger-order index, not found
    by reading the whole transaction table (at 5,000,000 transactions, ~1 s for a shard's ~100 pairs)."""
    wallets = [make_wallet() for _ in range(200)]
    Transaction.objects.bulk_create(
        Transaction(wallet=w, token=token, kind="buy", amount=D(1), price_usd=D(10), timestamp=START + timedelta(n))
        for w in wallets
        for n in range(20)
    )
    listed = [wallets[7].id, wallets[150].id]
    # The table's reads by this backend (not reported before the transaction ends, so the
    # difference below is the walk's).
    reads = "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'bagtracker_transaction'"
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bagtracker_transaction")
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(reads)
        seq_before, fetched_before = cursor.fetchone()
        cursor.execute(
            "SELECT wallet_id, amount FROM bt_ledger_walk('average', NULL, NULL, %s, %s, NULL) ORDER BY wallet_id",
            [listed, [token.id, token.id]],
        )
        assert cursor.fetchall() == [(listed[0], 20), (listed[1], 20)]
        cursor.execute(reads)
        seq_after, fetched_after = cursor.fetchone()
        cursor.execute("SHOW enable_nestloop")
        assert cursor.fetchone()[0] == "off"  # the caller's setting is its own again
    # The two pairs' 40 rows (and a row or two more), fetched by index; without migration 0016, the
    # table's 4,000 rows read in full.
    assert seq_after == seq_before and fetched_after - fetched_before < 100, (seq_after - seq_before, fetched_after)
