"""The as-of ledger a snapshot derives (current balance minus what happened since) equals the
ledger computed from scratch over the transactions before the boundary, for many random
histories and boundaries."""

import random
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from bagtracker.models import Price, Transaction
from snapshots.models import BalanceSnapshot
from snapshots.services.ledger import recalculate_all_wallets
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc

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


def expected_snapshot(txs, prices, as_of, dust, inactive):
    """The rules of docs/ledger.md and docs/snapshots.md, computed in Python from the transactions alone."""
    confirmed = sorted((t for t in txs if t.status == "confirmed"), key=lambda t: (t.timestamp, t.id))
    ledger = {}
    with localcontext() as exact:
        exact.prec = 200
        for t in confirmed:
            if t.timestamp >= as_of:
                continue
            entry = ledger.setdefault((t.wallet_id, t.token_id), [Decimal(0), Decimal(0), Decimal(0)])
            if t.kind in ("buy", "transfer_in"):
                entry[0] += t.amount
                if t.price_usd is not None:
                    entry[1] += t.amount
                    entry[2] += t.amount * t.price_usd
            else:
                entry[0] -= t.amount
        result = {}
        for (wallet_id, token_id), (amount, qty, value) in ledger.items():
            if amount <= dust or wallet_id in inactive:
                continue
            price = token_price(confirmed, prices, token_id, as_of)
            result[(wallet_id, token_id)] = (
                amount,
                price,
                None if price is None else (amount * price).quantize(Q18, ROUND_HALF_UP),
                (value / qty).quantize(Q18, ROUND_HALF_UP) if qty else None,
            )
    return result


def token_price(confirmed, prices, token_id, at):
    known = [p for p in prices if p.token_id == token_id and p.as_of <= at]
    if known:
        return max(known, key=lambda p: p.as_of).price_usd
    priced = [t for t in confirmed if t.token_id == token_id and t.price_usd is not None and t.timestamp <= at]
    return max(priced, key=lambda t: (t.timestamp, t.id)).price_usd if priced else None


def test_the_snapshot_equals_the_ledger_from_scratch_at_random_boundaries(settings, make_wallet, make_token):
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
                (r.wallet_id, r.token_id): (r.amount, r.price_usd, r.value_usd, r.avg_buy_price_usd) for r in rows
            }
            expected = expected_snapshot(
                list(Transaction.objects.all()),
                list(Price.objects.all()),
                as_of,
                settings.BALANCE_DUST_THRESHOLD,
                inactive,
            )
            assert actual == expected, as_of
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
