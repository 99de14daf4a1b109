"""The naive ORM approach, for comparison: one snapshot row per balance written by the ORM.

``create``: a per-row ``BalanceSnapshot.objects.create()`` loop (the seed's approach);
``bulk_create``: the same objects in ``bulk_create`` batches. Both take the first N balances above
the dust threshold (by wallet, token) and the price of each token at ``as_of`` (docs/snapshots.md,
"Prices"), looked up once per token. Run as its own process by bench.run:

    python -m bench.naive_orm --mode create --rows 10000 --period hourly --as-of 2026-11-29T09:00:00+00:00
"""

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from decimal import localcontext

BULK_BATCH = 5000


def _price_at(token_id, as_of):
    from bagtracker.models import Price, Transaction

    price = Price.objects.filter(token_id=token_id, as_of__lte=as_of).order_by("-as_of").first()
    if price:
        return price.price_usd
    tx = (
        Transaction.objects.filter(token_id=token_id, status="confirmed", price_usd__isnull=False, timestamp__lte=as_of)
        .order_by("-timestamp", "-id")
        .first()
    )
    return tx.price_usd if tx else None


def write(mode, rows, period, as_of):
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from snapshots.models import Balance, BalanceState, Boundary, BoundaryPrice, WalletState

    # The storage is state intervals (docs/snapshots.md): a row at as_of is a state valid for this
    # boundary alone, a price per token and a summary per wallet (written one by one too).
    prices = {}
    states = []
    wallets = set()
    until = as_of + timedelta(hours=1)
    balances = Balance.objects.filter(amount__gt=settings.BALANCE_DUST_THRESHOLD).order_by("wallet_id", "token_id")
    with localcontext() as ctx, transaction.atomic():
        ctx.prec = 100
        for balance in balances[:rows].iterator(chunk_size=2000):
            if balance.token_id not in prices:
                prices[balance.token_id] = _price_at(balance.token_id, as_of)
                BoundaryPrice.objects.create(
                    period=period, as_of=as_of, token_id=balance.token_id, price_usd=prices[balance.token_id]
                )
            if balance.wallet_id not in wallets:
                wallets.add(balance.wallet_id)
                Boundary.objects.get_or_create(
                    period=period, as_of=as_of, defaults={"source": "manual", "created_at": timezone.now()}
                )
                WalletState.objects.create(
                    wallet_id=balance.wallet_id,
                    period=period,
                    valid_from=as_of,
                    valid_to=until,
                    rows=0,
                    cost_basis=0,
                    realized=0,
                    source="manual",
                    created_at=timezone.now(),
                )
            fields = {
                "wallet_id": balance.wallet_id,
                "token_id": balance.token_id,
                "period": period,
                "valid_from": as_of,
                "valid_to": until,
                "amount": balance.amount,
                "avg_buy": balance.avg_buy_price_usd,
                "cost_basis": balance.cost_basis_usd,
                "realized": balance.realized_pnl_usd,
                "source": "manual",
                "created_at": timezone.now(),
            }
            if mode == "create":
                BalanceState.objects.create(**fields)
            else:
                states.append(BalanceState(**fields))
        if states:
            BalanceState.objects.bulk_create(states, batch_size=BULK_BATCH)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["create", "bulk_create"], required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--period", required=True)
    parser.add_argument("--as-of", required=True, type=datetime.fromisoformat)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    started = time.perf_counter()
    write(args.mode, args.rows, args.period, args.as_of)
    print(f"Wrote {args.rows:,} snapshot rows with {args.mode} in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
