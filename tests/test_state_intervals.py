"""Snapshot rows stored as state intervals (docs/snapshots.md, "How it is stored"): whatever order
the boundaries are written in, each reads as if taken from scratch; unchanged pairs cost no row;
deleting a wallet or a token leaves no orphan."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, Sum

from bagtracker.models import Token, Wallet
from snapshots.models import (
    BalanceSnapshot,
    BalanceState,
    BoundaryPrice,
    BoundaryTotal,
    SnapshotRun,
    WalletSnapshot,
)
from snapshots.services import snapshot_sql
from snapshots.services.snapshots import take_snapshot
from tests.conftest import index_columns, utc

DAYS = [utc(2026, 3, d) for d in range(2, 10)]  # eight daily boundaries
ROW = ("wallet_id", "token_id", "as_of", "amount", "price_usd", "value_usd", "avg_buy_price_usd", "cost_basis_usd")
ROW_TAIL = ("realized_pnl_usd", "cost_basis_method")
SUMMARY = ("wallet_id", "as_of", "value_usd", "rows", "unpriced_rows", "cost_basis_usd", "realized_pnl_usd")


@pytest.fixture
def history(make_tx, make_wallet, make_token, make_price, wallet, token):
    """Three wallets, two tokens; trades between some boundaries only, prices moving daily."""
    usdc = make_token("USDC", decimals=6)
    quiet, busy = make_wallet(), make_wallet()
    for w in (wallet, quiet, busy):
        make_tx("buy", "2", price=100, at=utc(2026, 3, 1, 5), on_wallet=w)
        make_tx("buy", "50", price=1, at=utc(2026, 3, 1, 6), on_wallet=w, of_token=usdc)
    make_tx("sell", "1", price=150, at=utc(2026, 3, 4, 12), on_wallet=busy)
    make_tx("buy", "3", price=120, at=utc(2026, 3, 6, 12), on_wallet=busy)
    make_tx("sell", "50", price=1, at=utc(2026, 3, 7, 1), on_wallet=busy, of_token=usdc)  # closes USDC
    make_tx("buy", "1", price=90, at=utc(2026, 3, 5, 3), on_wallet=wallet)
    for n, day in enumerate(DAYS):
        if n % 3 != 2:  # some days keep the price before
            make_price(100 + 10 * n, day - timedelta(hours=1))
    return wallet, quiet, busy, usdc


def read_all():
    rows = sorted(BalanceSnapshot.objects.filter(period="daily").values_list(*ROW, *ROW_TAIL))
    summaries = sorted(WalletSnapshot.objects.filter(period="daily").values_list(*SUMMARY))
    return rows, summaries


def forget_snapshots():
    for model in (BalanceState, BoundaryPrice, WalletSnapshot, SnapshotRun):
        model.objects.all().delete()


def take(order):
    forget_snapshots()
    for day in order:
        take_snapshot("daily", day, "scheduled")
    return read_all()


def test_any_order_of_boundaries_reads_like_the_chronological_one(history):
    expected = take(DAYS)
    assert len(expected[0]) > 30 and len(expected[1]) == 3 * len(DAYS)
    assert take(list(reversed(DAYS))) == expected  # a newest-first catch-up
    assert take([DAYS[0], DAYS[7], DAYS[4], DAYS[2], DAYS[6], DAYS[1], DAYS[3], DAYS[5]]) == expected  # scattered
    middle_last = [d for d in DAYS if d != DAYS[3]] + [DAYS[3]]  # written between two existing ones
    assert take(middle_last) == expected


def test_unchanged_pairs_keep_one_interval_in_any_order(history):
    _wallet, quiet, _busy, _usdc = history
    for order in (DAYS, list(reversed(DAYS)), DAYS[::2] + DAYS[1::2]):
        take(order)
        # quiet never trades after its first buys: one interval per token, whatever the order.
        assert BalanceState.objects.filter(wallet_id=quiet.pk).count() == 2
        # Prices once per token held and boundary.
        assert BoundaryPrice.objects.count() == 2 * len(DAYS)


# What the snapshot tables store, ids and write times aside.
STORED = {
    "snapshots_balancestate": "period, wallet_id, token_id, valid_from, valid_to::text, amount, avg_buy, cost_basis, "
    "realized, method, source",
    "snapshots_walletstate": "period, wallet_id, valid_from, valid_to::text, rows, cost_basis, realized, method, "
    "source",
    "snapshots_boundary": "period, as_of, source",
    "snapshots_boundaryprice": "period, as_of, token_id, price_usd",
    "snapshots_boundarytotal": "period, as_of, token_id, value_usd, rows, unpriced_rows",
}


def stored():
    with connection.cursor() as cursor:
        tables = {}
        for table, columns in STORED.items():
            cursor.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}")
            tables[table] = cursor.fetchall()
        return tables


@pytest.mark.parametrize(
    "order",
    [DAYS, list(reversed(DAYS)), [DAYS[5], DAYS[0], DAYS[7], DAYS[2]]],
    ids=["chronological", "newest first", "scattered"],
)
def test_a_first_boundary_stores_what_comparing_with_nothing_would(history, make_wallet, make_tx, monkeypatch, order):
    """A whole take with nothing of its period stored at or after its boundary inserts its states
    directly (FIRST_WRITE_SQL): the tables hold exactly what the general statement writes, and the
    run reports the same counts — also when boundaries after it are taken but expired or uncovered."""
    gone = make_wallet(is_active=False)  # never covered
    make_tx("buy", "4", price=100, at=utc(2026, 3, 1, 7), on_wallet=gone)
    firsts = []
    first_statement = snapshot_sql._first_statement
    monkeypatch.setattr(snapshot_sql, "_first_statement", lambda *a: firsts.append(1) or first_statement(*a))

    def take_all(first_write):
        monkeypatch.setattr(snapshot_sql, "FIRST_WRITE", first_write)
        with connection.cursor() as cursor:
            for table in (*STORED, "snapshots_snapshotrun"):
                cursor.execute(f"DELETE FROM {table}")
        counts = [(r.rows, r.written, r.removed) for r in (take_snapshot("daily", day, "scheduled") for day in order)]
        # Every open interval ended before the next day and the runs are gone (as if closed there and
        # the rest expired): the next boundary is a first one again, with boundaries taken before it.
        ended = max(order) + timedelta(hours=12)
        SnapshotRun.objects.all().delete()
        with connection.cursor() as cursor:
            for table in ("snapshots_balancestate", "snapshots_walletstate"):
                cursor.execute(f"UPDATE {table} SET valid_to = %s WHERE valid_to = 'infinity'", [ended])
        later = take_snapshot("daily", max(order) + timedelta(days=1), "manual")
        return [*counts, (later.rows, later.written, later.removed)], stored()

    assert take_all(first_write=False) == take_all(first_write=True)
    assert len(firsts) == 2  # the first boundary of each round and the one after every interval ended
    counts, tables = take_all(first_write=True)
    assert counts[0][0] > 0 and counts[0][1] == counts[0][0] and counts[-1][1] == counts[-1][0]
    assert not any(row[1] == gone.pk for row in tables["snapshots_walletstate"])


def test_retaking_a_boundary_after_a_history_edit_changes_only_that_pair(history, make_tx):
    _wallet, quiet, _busy, _usdc = history
    take(DAYS)
    states = BalanceState.objects.count()
    make_tx("buy", "1", price=100, at=utc(2026, 3, 8, 12), on_wallet=quiet)  # after DAYS[6]
    take_snapshot("daily", DAYS[7], "manual")
    assert BalanceState.objects.count() == states + 1  # quiet's ETH interval cut, one new state
    row = BalanceSnapshot.objects.get(wallet=quiet, token__symbol="ETH", as_of=DAYS[7])
    assert (row.amount, row.source) == (3, "manual")
    assert BalanceSnapshot.objects.get(wallet=quiet, token__symbol="ETH", as_of=DAYS[6]).amount == 2


def test_deleting_a_wallet_or_a_token_leaves_no_orphan(history, make_token):
    wallet, _quiet, busy, usdc = history
    take(DAYS)
    Wallet.objects.filter(pk=busy.pk).delete()
    assert not BalanceState.objects.filter(wallet_id=busy.pk).exists()
    assert not BalanceSnapshot.objects.filter(wallet_id=busy.pk).exists()
    # A token without balances whose states remain (e.g. written behind the app's back) goes with them.
    spam = make_token("SPAM")
    BalanceState.objects.create(
        period="daily",
        wallet_id=wallet.pk,
        token_id=spam.pk,
        valid_from=DAYS[0],
        valid_to=DAYS[1],
        amount=1,
        cost_basis=0,
        realized=0,
        source="manual",
        created_at=DAYS[0],
    )
    BoundaryPrice.objects.create(period="daily", as_of=DAYS[0], token_id=spam.pk, price_usd=1)
    with connection.cursor() as cursor:  # no ORM: nothing collected in Python, the database does it
        cursor.execute("DELETE FROM bagtracker_token WHERE id = %s", [spam.pk])
    assert not BalanceState.objects.filter(token_id=spam.pk).exists()
    assert not BoundaryPrice.objects.filter(token_id=spam.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM snapshots_balancestate s WHERE NOT EXISTS "
            "(SELECT 1 FROM bagtracker_wallet w WHERE w.id = s.wallet_id) "
            "OR NOT EXISTS (SELECT 1 FROM bagtracker_token t WHERE t.id = s.token_id)"
        )
        assert cursor.fetchone()[0] == 0
    assert Token.objects.filter(pk=usdc.pk).exists()


def totals_are_the_rows():
    """Every daily boundary's stored totals per token are those of its rows as read."""
    stored = BoundaryTotal.objects.filter(period="daily").exclude(rows=0)
    rows = BalanceSnapshot.objects.filter(period="daily").values("as_of", "token_id")
    return sorted(stored.values_list("as_of", "token_id", "value_usd", "rows")) == sorted(
        rows.annotate(v=Sum("value_usd"), n=Count("*")).values_list("as_of", "token_id", "v", "n")
    )


def test_a_state_is_found_by_its_key_and_writes_through_the_views_keep_the_totals(history):
    """docs/snapshots.md, "A state is found by its key": the primary key is the key and the start of
    the interval (no index on id); a row written or deleted through the view changes the one state
    of its (wallet, token) holding its boundary, at every boundary of that interval, totals included."""
    wallet, _quiet, busy, _usdc = history
    take(DAYS)
    assert index_columns("snapshots_balancestate", "i.indisprimary") == [
        ["period", "wallet_id", "token_id", "valid_from", "valid_to"]
    ]
    assert not [columns for columns in index_columns("snapshots_balancestate") if "id" in columns]
    eth = BalanceSnapshot.objects.filter(wallet=wallet, token__symbol="ETH").values_list("token_id", flat=True)[0]
    states = list(
        BalanceState.objects.filter(period="daily", wallet_id=wallet.pk, token_id=eth)
        .order_by("valid_from")
        .values_list("valid_from", "amount")
    )
    assert len(states) == 2  # bought more on March 5: [Mar 2, Mar 6) and [Mar 6, …)
    held = [day for day in DAYS if states[1][0] <= day]
    before = [day for day in DAYS if day < states[1][0]]

    BalanceSnapshot.objects.filter(wallet=wallet, token_id=eth, as_of=held[1]).update(amount=7)
    amounts = dict(BalanceSnapshot.objects.filter(wallet=wallet, token_id=eth).values_list("as_of", "amount"))
    assert [amounts[day] for day in held] == [7] * len(held)  # the whole interval holding held[1]
    assert [amounts[day] for day in before] == [states[0][1]] * len(before)  # the other state untouched
    assert totals_are_the_rows()

    BalanceSnapshot.objects.filter(wallet=wallet, token_id=eth, as_of=before[0]).delete()
    assert not BalanceSnapshot.objects.filter(wallet=wallet, token_id=eth, as_of__in=before).exists()
    assert BalanceSnapshot.objects.filter(wallet=wallet, token_id=eth, as_of__in=held).count() == len(held)
    assert totals_are_the_rows()

    WalletSnapshot.objects.filter(wallet=busy, as_of=DAYS[0]).delete()  # its summary's interval, rows and totals
    assert not BalanceSnapshot.objects.filter(wallet=busy, as_of=DAYS[0]).exists()
    assert totals_are_the_rows()
    Wallet.objects.filter(pk=busy.pk).delete()  # every state of the wallet leaves the totals
    assert totals_are_the_rows()
