"""The as-of ledger a snapshot derives (the current balance where nothing happened since, a walk of
the history before the boundary where something did) equals the ledger computed from scratch over
the transactions before the boundary, cost basis and wallet summaries included, for many random
histories and boundaries, under both methods."""

import random
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from bagtracker.models import Price, Transaction
from snapshots.models import BalanceSnapshot, WalletSnapshot
from snapshots.services.ledger import recalculate_all_wallets
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc
from tests.test_ledger_property import Tx, ledger_order, reference_cost_basis

START = utc(2026, 1, 1)
Q18 = Decimal("1e-18")


def random_decimal(rng, whole_digits, places):
    return Decimal(rng.randrange(1, 10 ** (whole_digits + places))).scaleb(-places)


def build_history(rng, wallets, tokens):
    """Random confirmed and unconfirmed transactions whose running amounts never go negative."""
    txs = []
    held = {}
    for _ in range(400):
        wallet, token = rng.choice(wallets), rng.choice(tokens)
        at = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 10))
        txs.append((at, wallet, token))
    txs.sort(key=lambda t: t[0])
    rows = []
    for at, wallet, token in txs:
        key = (wallet.id, token.id)
        status = rng.choice(["confirmed"] * 8 + ["pending", "failed"])
        amount = random_decimal(rng, 3, rng.choice([0, 6, token.decimals]))
        if held.get(key, 0) > amount and rng.random() < 0.4:
            kind = rng.choice(["sell", "transfer_out"])
            if rng.random() < 0.2:
                amount = held[key]  # sell everything: the row must disappear
        else:
            kind = rng.choice(["buy", "buy", "transfer_in"])
        if status == "confirmed":
            held[key] = held.get(key, 0) + (amount if kind in ("buy", "transfer_in") else -amount)
        price = random_decimal(rng, 4, rng.choice([2, 18])) if rng.random() < 0.7 else None
        rows.append(
            Transaction(
                wallet=wallet, token=token, kind=kind, status=status, amount=amount, price_usd=price, timestamp=at
            )
        )
    Transaction.objects.bulk_create(rows)
    return rows


def expected_snapshot(txs, prices, as_of, dust, inactive, method):
    """The rules of docs/ledger.md and docs/snapshots.md, computed in Python from the transactions alone:
    (rows, summaries)."""
    history = [
        Tx(t.id, t.wallet_id, t.token_id, t.kind, t.status, t.amount, t.price_usd, t.timestamp)
        for t in txs
        if t.status == "confirmed" and t.timestamp < as_of and t.wallet_id not in inactive
    ]
    confirmed = sorted((t for t in txs if t.status == "confirmed"), key=lambda t: (t.timestamp, t.id))
    by_pair = {}
    for tx in sorted(history, key=ledger_order):
        by_pair.setdefault((tx.wallet, tx.token), []).append(tx)
    rows, summaries = {}, {}
    with localcontext() as exact:
        exact.prec = 400
        for (wallet_id, token_id), pair in by_pair.items():
            amount = sum((t.amount if t.kind in ("buy", "transfer_in") else -t.amount for t in pair), Decimal(0))
            priced = [t for t in pair if t.kind in ("buy", "transfer_in") and t.price is not None]
            qty, value = sum(t.amount for t in priced), sum(t.amount * t.price for t in priced)
            ledger = reference_cost_basis(pair, method)
            summary = summaries.setdefault(wallet_id, [Decimal(0), 0, 0, Decimal(0), Decimal(0)])
            summary[3] += ledger["cost_basis_usd"]
            summary[4] += ledger["realized_pnl_usd"]
            if amount <= dust:
                continue
            price = token_price(confirmed, prices, token_id, as_of)
            row_value = None if price is None else (amount * price).quantize(Q18, ROUND_HALF_UP)
            rows[(wallet_id, token_id)] = (
                amount,
                price,
                row_value,
                (value / qty).quantize(Q18, ROUND_HALF_UP) if qty else None,
                ledger["cost_basis_usd"],
                ledger["realized_pnl_usd"],
                method,
            )
            summary[0] += row_value or 0
            summary[1] += 1
            summary[2] += row_value is None
    return rows, {wallet_id: tuple(summary) for wallet_id, summary in summaries.items()}


def token_price(confirmed, prices, token_id, at):
    known = [p for p in prices if p.token_id == token_id and p.as_of <= at]
    if known:
        return max(known, key=lambda p: p.as_of).price_usd
    priced = [t for t in confirmed if t.token_id == token_id and t.price_usd is not None and t.timestamp <= at]
    return max(priced, key=lambda t: (t.timestamp, t.id)).price_usd if priced else None


@pytest.mark.slow
@pytest.mark.parametrize("method", ["average", "fifo"])
def test_the_snapshot_equals_the_ledger_from_scratch_at_random_boundaries(settings, make_wallet, make_token, method):
    settings.BALANCE_COST_BASIS = method
    rng = random.Random(20261129)
    settings.BALANCE_DUST_THRESHOLD = Decimal("0.5")
    tokens = [make_token("ETH"), make_token("USDC", decimals=6), make_token("WBTC", decimals=8)]
    wallets = [make_wallet() for _ in range(4)] + [make_wallet(is_active=False)]
    txs = build_history(rng, wallets, tokens)
    for _ in range(25):
        Price.objects.get_or_create(
            token=rng.choice(tokens[:2]),
            as_of=START + timedelta(hours=rng.randrange(0, 240)),
            defaults={"price_usd": random_decimal(rng, 3, 18)},
        )
    prices = list(Price.objects.all())
    assert recalculate_all_wallets().status == "success"

    boundaries = {START + timedelta(hours=rng.randrange(0, 24 * 11)) for _ in range(40)}
    boundaries |= {t.timestamp.replace(minute=0) for t in rng.sample(txs, 10)}
    boundaries |= {START, START + timedelta(days=12)}  # before everything, after everything

    def take_and_compare(inactive):
        compared = 0
        for as_of in sorted(boundaries):
            take_snapshot("hourly", as_of, "backfill")
            rows = BalanceSnapshot.objects.filter(period="hourly", as_of=as_of)
            actual = {
                (r.wallet_id, r.token_id): (
                    r.amount,
                    r.price_usd,
                    r.value_usd,
                    r.avg_buy_price_usd,
                    r.cost_basis_usd,
                    r.realized_pnl_usd,
                    r.cost_basis_method,
                )
                for r in rows
            }
            expected, expected_summaries = expected_snapshot(
                list(Transaction.objects.all()),
                list(Price.objects.all()),
                as_of,
                settings.BALANCE_DUST_THRESHOLD,
                inactive,
                method,
            )
            assert actual == expected, as_of
            summaries = {
                m.wallet_id: (m.value_usd, m.rows, m.unpriced_rows, m.cost_basis_usd, m.realized_pnl_usd)
                for m in WalletSnapshot.objects.filter(period="hourly", as_of=as_of)
            }
            assert summaries == expected_summaries, as_of
            compared += len(expected)
        assert compared > 300  # the comparison is not vacuous

    take_and_compare(inactive={wallets[-1].id})
    assert BalanceSnapshot.objects.filter(as_of=START).count() == 0

    # History changes behind every boundary; re-taking them all must give the new truth.
    more = [
        Transaction(
            wallet=rng.choice(wallets),
            token=rng.choice(tokens),
            kind="buy",
            status="confirmed",
            amount=random_decimal(rng, 2, 6),
            price_usd=random_decimal(rng, 3, 18),
            timestamp=START + timedelta(minutes=rng.randrange(0, 60 * 24 * 10)),
        )
        for _ in range(60)
    ]
    Transaction.objects.bulk_create(more)
    for tx in rng.sample(txs, 40):
        Transaction.objects.filter(pk=tx.pk).update(price_usd=random_decimal(rng, 2, 18))
    Price.objects.filter(pk__in=[p.pk for p in rng.sample(prices, 10)]).delete()
    wallets[0].is_active = False
    wallets[0].save()
    settings.BALANCE_DUST_THRESHOLD = Decimal("3")
    assert recalculate_all_wallets().status == "success"
    take_and_compare(inactive={wallets[-1].id, wallets[0].id})
