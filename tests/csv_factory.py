"""CSV files for the importer's tests and benchmark (valid by construction: balances never go negative).

python -m tests.csv_factory 100000 > /tmp/transactions.csv     # the 100,000-row benchmark file
"""

import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

HEADER = "wallet,chain,token,kind,status,amount,price_usd,timestamp,tx_hash"
TOKENS = {"ethereum": (("ETH", 18, 3000), ("USDC", 6, 1)), "solana": (("SOL", 9, 150), ("BONK", 5, 0.00002))}
START = datetime(2025, 1, 1, tzinfo=UTC)


def transaction_lines(rows, wallets=1000, seed=7):
    """Yield ``rows`` CSV lines (no header) spread over ``wallets`` wallets, in time order."""
    rng = random.Random(seed)
    held = {}
    chains = sorted(TOKENS)
    for i in range(rows):
        w = i % wallets
        chain = chains[w % len(chains)]
        symbol, decimals, price = TOKENS[chain][rng.randrange(2)]
        places = Decimal(1).scaleb(-min(decimals, 6))
        balance = held.get((w, symbol), Decimal(0))
        kind = rng.choices(["buy", "transfer_in", "sell", "transfer_out"], [55, 15, 20, 10])[0]
        status = rng.choices(["confirmed", "pending", "failed"], [92, 5, 3])[0]
        if kind in ("sell", "transfer_out"):
            amount = (balance * Decimal(rng.uniform(0.05, 0.6))).quantize(places, ROUND_DOWN)
            if amount <= 0:
                kind, amount = "buy", Decimal(rng.randint(1, 500))
        else:
            amount = (Decimal(rng.uniform(10, 5000)) / Decimal(str(price))).quantize(places, ROUND_DOWN) or places
        if status == "confirmed":
            held[(w, symbol)] = balance + (amount if kind in ("buy", "transfer_in") else -amount)
        priced = kind in ("buy", "sell") and rng.random() < 0.9
        unit = f"{Decimal(str(price)) * Decimal(rng.uniform(0.8, 1.2)):.8f}" if priced else ""
        at = (START + timedelta(seconds=30 * i)).isoformat()
        tx_hash = f"0x{rng.getrandbits(128):032x}" if rng.random() < 0.8 else ""
        yield f"0x{w:040x},{chain},{symbol},{kind},{status},{amount},{unit},{at},{tx_hash}"


def transactions_csv(rows, wallets=1000, seed=7):
    return "\n".join([HEADER, *transaction_lines(rows, wallets, seed)]) + "\n"


def database_state():
    """Every row the importers can touch, to assert that a refused import changed nothing."""
    from django.db import connection

    tables = [
        "bagtracker_chain",
        "bagtracker_wallet",
        "bagtracker_token",
        "bagtracker_transaction",
        "bagtracker_price",
        "snapshots_balance",
    ]
    state = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {table} ORDER BY id")
            state[table] = cursor.fetchall()
    return state


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    sys.stdout.write(HEADER + "\n")
    for line in transaction_lines(count):
        sys.stdout.write(line + "\n")
