"""The fast path of a new newest boundary (docs/snapshots.md, "What a boundary costs"): only the
wallets that moved since the previous boundary are computed; the others' states and wallet states
hold the new boundary already (open), valued at its prices when read. Each boundary it takes reads
exactly as the full computation of the same boundary: re-taking it in full (a boundary taken before
always is) changes nothing a reader sees."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from bagtracker.models import Token, Transaction, Wallet
from bagtracker.services.transactions import delete_transactions
from snapshots.cost_basis import current_method
from snapshots.models import BalanceSnapshot, BoundaryTotal, SnapshotRun, WalletSnapshot
from snapshots.services import snapshot_sql
from snapshots.services.ledger import recalculate_wallet
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import take_snapshot
from tests.conftest import plans_of, utc
from tests.faults.support import build_history

# Which wallets a fast boundary writes in full depends on the transactions open beside it (conftest).
pytestmark = pytest.mark.usefixtures("no_other_transaction")

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
        cursor.execute(snapshot_sql.MOVED_PAIRS_SQL, {**params, "previous": previous, "since": horizon})
        moved_wallets, _, coverage_moved, _ = cursor.fetchone()
        taken.append(sorted({*moved_wallets, *coverage_moved}))
        return real(cursor, params, previous, horizon)

    monkeypatch.setattr(snapshot_sql, "_write_moved", watched)
    return taken


@pytest.mark.django_db(transaction=True)
def test_each_fast_boundary_reads_as_its_full_computation(spy, make_tx, make_wallet, make_token, make_price, wallet):
    """Committed writes (transaction=True): a balance's updated_at is its own transaction's start,
    after the previous boundary's run, as in production."""
    usdc = make_token("USDC", decimals=6)
    quiet, trader, leaving, dusty, returning = wallet, make_wallet(), make_wallet(), make_wallet(), make_wallet()
    vanishing = make_wallet()
    first_buys = {
        w.pk: make_tx("buy", "2", price=100, at=utc(2026, 3, 1, 1), on_wallet=w)
        for w in (quiet, trader, leaving, dusty, returning, vanishing)
    }
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
    # vanishing's only balance goes with its only transaction: covered at HOURS[3], not at HOURS[4]
    delete_transactions(Transaction.objects.filter(pk=first_buys[vanishing.pk].pk))
    Wallet.objects.filter(pk=returning.pk).update(is_active=True)
    moved = take_fast_then_full(HOURS[4], spy)
    assert {dusty.pk, returning.pk, vanishing.pk} <= set(moved) and trader.pk not in moved
    assert not WalletSnapshot.objects.filter(wallet=vanishing, as_of=HOURS[4]).exists()
    assert WalletSnapshot.objects.filter(wallet=vanishing, as_of=HOURS[3]).exists()

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
    with plans_of("held_rows AS MATERIALIZED") as plans:
        assert take_snapshot("hourly", HOURS[1], "scheduled").rows == 1200
    assert len(plans) == 1
    assert "Nested Loop" not in plans[0], plans[0]


def cte_plan(plan, name):
    """The lines of CTE ``name`` in a plan's text (up to the next CTE or the main plan)."""
    lines = plan.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"CTE {name}")
    depth = len(lines[start]) - len(lines[start].lstrip())
    end = next((i for i in range(start + 1, len(lines)) if len(lines[i]) - len(lines[i].lstrip()) <= depth), len(lines))
    return "\n".join(lines[start:end])


@pytest.mark.django_db
def test_the_fast_totals_read_the_open_states_only_for_tokens_whose_price_moved(make_price):
    """The open states have no token index (docs/snapshots.md, "Retention"): the fast path's totals
    read them by a scan for the tokens whose price moved, and not at all when none did."""
    build_history(50, 2, utc(2026, 3, 1))
    held_token = Token.objects.order_by("-pk").first()  # one of the history's (the fixture's came first)
    make_price(100, HOURS[0] - timedelta(minutes=1), of_token=held_token)
    take_snapshot("hourly", HOURS[0], "scheduled")
    with plans_of("held_rows AS MATERIALIZED") as plans:
        take_snapshot("hourly", HOURS[1], "scheduled")
    held = cte_plan(plans[0], "held_rows")
    assert "One-Time Filter: false" in held and "hourly_open" not in held, held
    make_price(123, HOURS[2] - timedelta(minutes=1), of_token=held_token)
    with plans_of("held_rows AS MATERIALIZED") as plans:
        assert take_snapshot("hourly", HOURS[2], "scheduled").rows == 100
    held = cte_plan(plans[0], "held_rows")
    assert "on snapshots_balancestate_hourly_open " in held, held  # (by a scan at any real size)


@pytest.mark.django_db
def test_the_moved_pairs_close_their_intervals_by_key_lookups(make_tx):
    """docs/snapshots.md, "Planned as lookups": the pairs' statement closes the intervals it cuts one
    key lookup each in the open partition's primary key, never by hashing the open states (the
    planner, estimating the moved pairs ten times too many, hashed the million to close 10,000; by
    their wallets alone it read every token of them)."""
    build_history(300, 3, utc(2026, 3, 1))
    with connection.cursor() as cursor:  # as the ledger would have written them: one method
        cursor.execute("UPDATE snapshots_balance SET cost_basis_method = %s", [current_method()])
    take_snapshot("hourly", HOURS[0], "scheduled")
    with connection.cursor() as cursor:  # as autovacuum has by the next hour, on 900 new states
        cursor.execute("ANALYZE snapshots_balancestate")
    wallets, tokens = list(Wallet.objects.order_by("pk")[:4]), list(Token.objects.order_by("pk")[:1])
    for wallet in wallets:
        make_tx("buy", "1", price=100, at=HOURS[0] + timedelta(minutes=10), on_wallet=wallet, of_token=tokens[0])
    with plans_of("moved_rows AS") as plans:
        take_snapshot("hourly", HOURS[1], "scheduled")
    pairs = [plan for plan in plans if "CTE closed" in plan]  # not FAST_DELTA_SQL's (wallets in full)
    assert len(pairs) == 1, plans
    closed = cte_plan(pairs[0], "closed")
    assert "Function Scan on k" in closed and "Nested Loop" in closed, closed
    # One lookup per pair on the whole key: an index scan or, where the planner costs it so, a bitmap
    # scan of the same index (one row each either way).
    assert re.search(r"(Index Scan using|Bitmap Index Scan on) snapshots_balancestate_hourly_open_pkey", closed), closed
    key = "(wallet_id = k.wallet_id) AND (token_id = k.token_id) AND (valid_from = k.e_from)"
    assert f"Index Cond: (((period)::text = 'hourly'::text) AND {key}" in closed, closed
    assert "Hash" not in closed, closed


# Issue 14, item 1: the fast path computes only the moved (wallet, token) pairs, carries a moved
# wallet's summary by difference, and keeps the totals by difference for tokens whose price did not
# move. Every boundary below must read, totals included, as its computation from scratch.

TOTAL = ("token_id", "value_usd", "rows", "unpriced_rows")


def totals(as_of):
    return sorted(BoundaryTotal.objects.filter(period="hourly", as_of=as_of).values_list(*TOTAL))


def totals_from_rows(as_of):
    """Per token, over the rows as read: Σ value, rows, rows without a value."""
    sums = {}
    for token_id, value in BalanceSnapshot.objects.filter(period="hourly", as_of=as_of).values_list(
        "token_id", "value_usd"
    ):
        total = sums.setdefault(token_id, [Decimal(0), 0, 0])
        total[0] += value or 0
        total[1] += 1
        total[2] += value is None
    return sorted((token_id, *total) for token_id, total in sums.items())


def take_by_pairs_then_full(as_of, paths):
    """Take ``as_of`` (new, newest: the fast path), check its totals against its rows, re-take it in
    full: nothing a reader sees may change. Returns how the fast path wrote it."""
    paths.clear()
    result = take_snapshot("hourly", as_of, "scheduled")
    fast = read(as_of)
    assert result.rows == len(fast[0])
    assert totals(as_of) == totals_from_rows(as_of)
    fast_totals = totals(as_of)
    written = list(paths)
    take_snapshot("hourly", as_of, "scheduled")
    assert read(as_of) == fast
    assert totals(as_of) == fast_totals
    return written


@pytest.fixture
def paths(monkeypatch):
    """How the fast path wrote each boundary: ("full", wallets) and ("pairs", [(wallet, token), …])."""
    taken = []
    real = snapshot_sql._statement

    def watched(scope, totals, pairs=False):
        if pairs:
            taken.append(("pairs", sorted(zip(scope.wallets, scope.tokens, strict=True))))
        elif totals is snapshot_sql.Totals.NONE and scope.wallets is not None:
            taken.append(("full", list(scope.wallets)))
        return real(scope, totals, pairs)

    monkeypatch.setattr(snapshot_sql, "_statement", watched)
    return taken


@pytest.mark.django_db(transaction=True)
def test_a_moved_wallet_writes_only_its_moved_pairs_and_its_summary_by_difference(
    paths, make_tx, make_wallet, make_token, make_price, wallet, token
):
    usdc, btc = make_token("USDC", decimals=6), make_token("BTC", decimals=8)
    other = make_wallet()
    for w in (wallet, other):
        make_tx("buy", "2", price=90, at=utc(2026, 3, 1, 1), on_wallet=w)
        make_tx("buy", "30", price=1, at=utc(2026, 3, 1, 2), on_wallet=w, of_token=usdc)
    make_tx("buy", "0.5", price=60000, at=utc(2026, 3, 1, 3), of_token=btc)  # BTC's price: its trades'
    make_tx("sell", "1", price=95, at=utc(2026, 3, 1, 4))  # realized PnL on ETH
    make_price(100, utc(2026, 3, 1))  # ETH's price never moves
    for n, hour in enumerate(HOURS):
        make_price(1 + n / 100, hour - timedelta(minutes=1), of_token=usdc)  # USDC's moves every hour

    take_snapshot("hourly", HOURS[0], "scheduled")
    assert take_by_pairs_then_full(HOURS[1], paths) == []  # nothing moved; USDC's total valued again

    # One token of a wallet of three: only that pair is computed; its summary is p's by difference.
    make_tx("sell", "0.5", price=120, at=HOURS[1] + timedelta(minutes=10))
    assert take_by_pairs_then_full(HOURS[2], paths) == [("pairs", [(wallet.pk, token.pk)])]
    summary = WalletSnapshot.objects.get(period="hourly", as_of=HOURS[2], wallet=wallet)
    assert (summary.rows, summary.realized_pnl_usd) == (3, Decimal(5) + Decimal(15))

    # A priced BTC trade of the other wallet moves BTC's price for every holder (no Price rows).
    make_tx("buy", "0.1", price=61000, at=HOURS[2] + timedelta(minutes=10), on_wallet=other, of_token=btc)
    make_tx("transfer_in", "5", at=HOURS[2] + timedelta(minutes=20), of_token=usdc)
    assert take_by_pairs_then_full(HOURS[3], paths) == [
        ("full", [other.pk]),  # its BTC pair is new: no state at p
        ("pairs", [(wallet.pk, usdc.pk)]),
    ]
    values = dict(
        BalanceSnapshot.objects.filter(period="hourly", as_of=HOURS[3], token=btc).values_list("wallet_id", "value_usd")
    )
    assert values == {wallet.pk: Decimal(30500), other.pk: Decimal(6100)}


@pytest.mark.django_db(transaction=True)
def test_a_wallet_whose_last_token_fell_to_dust_and_came_back(paths, make_tx, make_token, make_price, wallet, token):
    dai = make_token("DAI")
    make_tx("buy", "2", price=100, at=utc(2026, 3, 1, 1))
    make_tx("buy", "5", price=1, at=utc(2026, 3, 1, 2), of_token=dai)
    make_price(100, utc(2026, 3, 1))
    take_snapshot("hourly", HOURS[0], "scheduled")

    make_tx("sell", "1.9999995", price=110, at=HOURS[0] + timedelta(minutes=5))
    assert take_by_pairs_then_full(HOURS[1], paths) == [("pairs", [(wallet.pk, token.pk)])]
    make_tx("transfer_out", "4.9999999", at=HOURS[1] + timedelta(minutes=5), of_token=dai)
    assert take_by_pairs_then_full(HOURS[2], paths) == [("pairs", [(wallet.pk, dai.pk)])]
    summary = WalletSnapshot.objects.get(period="hourly", as_of=HOURS[2], wallet=wallet)
    assert summary.rows == 0 and summary.realized_pnl_usd == Decimal("19.99999500")  # the dust's still counts
    assert totals(HOURS[2]) == []

    # Back from dust: the pair has no state at p, its part of p's summary is stored nowhere.
    make_tx("buy", "1", price=120, at=HOURS[2] + timedelta(minutes=5))
    assert take_by_pairs_then_full(HOURS[3], paths) == [("full", [wallet.pk])]
    assert WalletSnapshot.objects.get(period="hourly", as_of=HOURS[3], wallet=wallet).rows == 1


@pytest.mark.django_db(transaction=True)
def test_a_boundary_written_between_two_then_a_newest_one_by_pairs(
    paths, make_tx, make_wallet, make_token, make_price, wallet, token
):
    usdc = make_token("USDC", decimals=6)
    other = make_wallet()
    for w in (wallet, other):
        make_tx("buy", "3", price=100, at=utc(2026, 3, 1, 1), on_wallet=w)
        make_tx("buy", "8", price=1, at=utc(2026, 3, 1, 2), on_wallet=w, of_token=usdc)
    make_price(100, utc(2026, 3, 1))
    make_price(1, utc(2026, 3, 1), of_token=usdc)
    make_tx("sell", "1", price=130, at=HOURS[1] + timedelta(minutes=5))
    make_tx("buy", "2", price=1, at=HOURS[2] + timedelta(minutes=5), on_wallet=other, of_token=usdc)

    take_snapshot("hourly", HOURS[0], "scheduled")
    assert take_by_pairs_then_full(HOURS[3], paths) == [("pairs", [(wallet.pk, token.pk), (other.pk, usdc.pk)])]
    paths.clear()
    take_snapshot("hourly", HOURS[2], "scheduled")  # between two: in full
    assert paths == []
    for hour in (HOURS[0], HOURS[2], HOURS[3]):
        assert totals(hour) == totals_from_rows(hour)

    make_tx("sell", "1", price=140, at=HOURS[3] + timedelta(minutes=5), on_wallet=other)
    make_price(2, HOURS[4] - timedelta(minutes=1), of_token=usdc)
    assert take_by_pairs_then_full(HOURS[4], paths) == [("pairs", [(other.pk, token.pk)])]
    take_snapshot("hourly", HOURS[1], "scheduled")  # between two again, after the fast one
    for hour in HOURS[:5]:
        rows = read(hour)
        take_snapshot("hourly", hour, "scheduled")
        assert read(hour) == rows and totals(hour) == totals_from_rows(hour)


@pytest.mark.django_db(transaction=True)
def test_many_moved_pairs_are_written_with_their_wallets_in_full(
    paths, monkeypatch, make_tx, make_wallet, make_token, make_price, wallet, token
):
    """Above a share of the balances (FAST_PAIRS_SHARE), pair by pair costs more than the wallets in
    full and a pass over the open states: that way is taken, with the same result."""
    usdc = make_token("USDC", decimals=6)
    other = make_wallet()
    for w in (wallet, other):
        make_tx("buy", "2", price=90, at=utc(2026, 3, 1, 1), on_wallet=w)
        make_tx("buy", "30", price=1, at=utc(2026, 3, 1, 2), on_wallet=w, of_token=usdc)
    make_price(100, utc(2026, 3, 1))
    take_snapshot("hourly", HOURS[0], "scheduled")
    make_tx("sell", "0.5", price=120, at=HOURS[0] + timedelta(minutes=10))
    monkeypatch.setattr(snapshot_sql, "FAST_PAIRS_MIN", 0)
    monkeypatch.setattr(snapshot_sql, "FAST_PAIRS_SHARE", 0)  # (the share is of the planner's estimate)
    assert take_by_pairs_then_full(HOURS[1], paths) == [("full", [wallet.pk])]
    monkeypatch.setattr(snapshot_sql, "FAST_PAIRS_MIN", 1)
    make_tx("sell", "0.5", price=120, at=HOURS[1] + timedelta(minutes=10), on_wallet=other)
    assert take_by_pairs_then_full(HOURS[2], paths) == [("pairs", [(other.pk, token.pk)])]
