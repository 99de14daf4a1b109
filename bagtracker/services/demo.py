"""A deterministic, realistic demo portfolio for the demo and for benchmarks (manage.py seed_demo).

Same seed, sizes and end date → the same rows, byte for byte (one random.Random drives everything).
Four chains, thirteen tokens (native coins and contracts, 5 to 18 decimals), hourly prices for the
last week and daily prices before that, each asset on a random walk of its own (ETH and USDC share
one walk across chains). Each wallet lives on one chain, holds a few of its tokens and trades them in
time order: mostly confirmed, some failed or cancelled, pending only in the last two days; buys and
sells mostly priced, transfers mostly not. A disposal never exceeds the confirmed holding, so
running balances are never negative by construction.

Rows are generated in Python and loaded with COPY; balances are then computed by the set-based
ledger for the new wallets, all in one database transaction (a failed seed leaves nothing behind).
"""

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.db import connection, transaction

from bagtracker import instants
from bagtracker.balances import update_balances
from bagtracker.identifiers import checksum_address
from bagtracker.models import ACQUISITION_KINDS, Chain, Token, TransactionKind, Wallet

DEFAULT_WALLETS = 25
DEFAULT_TRANSACTIONS = 40  # per wallet, on average
DEFAULT_DAYS = 90
DEFAULT_SEED = 1
HOURLY_PRICE_DAYS = 7  # hourly prices for the last week, daily before
PENDING_WITHIN = timedelta(days=2)

# Assets: reference price (USD) and yearly volatility of the walk (0: a stablecoin).
ASSETS = {
    "ETH": (3200, 0.7),
    "USDC": (1, 0.0),
    "LINK": (15, 0.9),
    "UNI": (8, 1.0),
    "SOL": (150, 0.9),
    "BONK": (0.00002, 1.6),
    "JUP": (0.8, 1.2),
    "ARB": (0.7, 1.1),
}

# chain slug, name, share of wallets, tokens: (symbol, name, contract address, decimals, places traded)
CHAINS = [
    (
        "ethereum",
        "Ethereum",
        40,
        [
            ("ETH", "Ether", "", 18, 6),
            ("USDC", "USD Coin", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", 6, 2),
            ("LINK", "Chainlink", "0x514910771AF9Ca656af840dff83E8264EcF986CA", 18, 4),
            ("UNI", "Uniswap", "0x1f9840a85d5aF5bf1D1762F925BDADdC4201F984", 18, 4),
        ],
    ),
    (
        "solana",
        "Solana",
        30,
        [
            ("SOL", "Solana", "", 9, 4),
            ("USDC", "USD Coin", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6, 2),
            ("BONK", "Bonk", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5, 0),
            ("JUP", "Jupiter", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6, 2),
        ],
    ),
    (
        "arbitrum",
        "Arbitrum One",
        15,
        [
            ("ETH", "Ether", "", 18, 6),
            ("ARB", "Arbitrum", "0x912CE59144191C1204E64559FE8253a0e49E6548", 18, 2),
            ("USDC", "USD Coin", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831", 6, 2),
        ],
    ),
    (
        "base",
        "Base",
        15,
        [
            ("ETH", "Ether", "", 18, 6),
            ("USDC", "USD Coin", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", 6, 2),
        ],
    ),
]

WALLET_LABELS = ["Main", "Trading", "Cold storage", "DeFi", "Savings", "Airdrops", "Hot wallet", "Ledger"]
STATUSES = (["confirmed", "failed", "cancelled"], [93, 4, 3])
RECENT_STATUSES = (["confirmed", "pending", "failed", "cancelled"], [70, 22, 5, 3])
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PRICE_DIGITS = 6  # significant digits of generated prices


class DemoError(Exception):
    pass


@dataclass
class DemoResult:
    skipped: bool = False
    wallets: int = 0
    transactions: int = 0
    prices: int = 0
    balances_written: int = 0
    duration_seconds: float = 0.0


@dataclass
class _Token:
    id: int
    symbol: str
    decimals: int
    step: Decimal  # smallest amount traded


def default_end():
    """Today 00:00 UTC: the demo ends now-ish and stays the same all day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def seed_demo(
    wallets=DEFAULT_WALLETS,
    transactions=DEFAULT_TRANSACTIONS,
    days=DEFAULT_DAYS,
    seed=DEFAULT_SEED,
    end=None,
    if_empty=False,
    progress=None,
):
    """Create ``wallets`` wallets with about ``transactions`` transactions each over ``days`` days.

    With ``if_empty``, does nothing (result.skipped) when any wallet exists. ``progress(done, total)``
    is called as wallets are generated. Raises DemoError if the seed's wallets already exist.
    """
    if wallets < 0 or transactions < 0 or days < 1:
        raise DemoError("--wallets and --transactions must be >= 0 and --days >= 1")
    started = time.monotonic()
    result = DemoResult()
    end = end or default_end()
    start = _history_start(end, days)
    rng = random.Random(seed)
    with transaction.atomic():
        if if_empty and Wallet.objects.exists():
            result.skipped = True
            return result
        tokens = _ensure_catalogue()
        paths = _price_paths(rng, days * 24)
        result.prices = _load_prices(tokens, paths, start, days)
        new_wallets = _plan_wallets(rng, wallets)
        wallet_ids = _insert_wallets(new_wallets)
        result.wallets = len(wallet_ids)
        result.transactions = _load_transactions(
            rng, new_wallets, wallet_ids, tokens, paths, start, end, transactions, progress
        )
        result.balances_written, _ = update_balances(wallet_ids)
    result.duration_seconds = time.monotonic() - started
    return result


def _ensure_catalogue():
    """Chains and tokens of the demo, created when missing; an existing token keeps its decimals."""
    tokens = {}
    for slug, name, _, catalogue in CHAINS:
        chain, _ = Chain.objects.get_or_create(slug=slug, defaults={"name": name})
        for symbol, token_name, contract, decimals, places in catalogue:
            token, _ = Token.objects.get_or_create(
                chain=chain,
                symbol=symbol,
                defaults={"name": token_name, "contract_address": contract, "decimals": decimals},
            )
            tokens[slug, symbol] = _Token(
                token.pk, symbol, token.decimals, Decimal(1).scaleb(-min(places, token.decimals))
            )
    return tokens


def _price_paths(rng, hours):
    """An hourly price (float) per asset for ``hours`` + 1 instants: a geometric random walk."""
    paths = {}
    for symbol, (reference, volatility) in ASSETS.items():
        sigma = volatility / math.sqrt(24 * 365)
        price = reference * math.exp(rng.gauss(0, 0.15) if volatility else 0)
        path = []
        for _ in range(hours + 1):
            path.append(price if volatility else 1 + rng.gauss(0, 0.0005))
            price *= math.exp(rng.gauss(0, sigma) - sigma * sigma / 2)
        paths[symbol] = path
    return paths


def _decimal_price(value):
    return Decimal(f"{value:.{PRICE_DIGITS}g}")


def _load_prices(tokens, paths, start, days):
    hourly_from = max(0, days - HOURLY_PRICE_DAYS) * 24
    hours = [h for h in range(days * 24 + 1) if h >= hourly_from or h % 24 == 0]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.demo_prices")
        cursor.execute(
            "CREATE TEMP TABLE demo_prices (token_id bigint, as_of timestamptz, price_usd numeric) ON COMMIT DROP"
        )
        with cursor.copy("COPY demo_prices (token_id, as_of, price_usd) FROM STDIN") as copy:
            for token in tokens.values():
                path = paths[token.symbol]
                for hour in hours:
                    copy.write_row((token.id, start + timedelta(hours=hour), _decimal_price(path[hour])))
        cursor.execute(
            "INSERT INTO bagtracker_price (token_id, as_of, price_usd, source) "
            "SELECT token_id, as_of, price_usd, 'demo' FROM demo_prices ORDER BY token_id, as_of "
            "ON CONFLICT (token_id, as_of) DO NOTHING"
        )
        return cursor.rowcount


def _history_start(end, days):
    """The first instant of a demo history ending at ``end``: like every stored instant, the whole
    history lies in [2009-01-03, now + 1 day] (bagtracker.instants); DemoError otherwise."""
    try:
        start = end - timedelta(days=days)
    except OverflowError:
        start = instants.to_utc(datetime.min.replace(tzinfo=UTC))
    for instant, what in ((start, "the first day (--end minus --days)"), (end, "--end")):
        if not instants.is_acceptable(instant):
            raise DemoError(
                f"{what} {instants.describe(instant)[:10]} lies outside 2009-01-03 .. tomorrow; "
                "demo transactions are held to the same rule as real ones"
            )
    return start


def _address(rng, chain):
    if chain == "solana":
        return _base58(rng.getrandbits(256))
    return checksum_address(f"0x{rng.getrandbits(160):040x}")  # stored in EIP-55 form, as every EVM address


def _tx_hash(rng, chain):
    if chain == "solana":
        return _base58(rng.getrandbits(512))
    return f"0x{rng.getrandbits(256):064x}"


def _base58(number):
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(BASE58[remainder])
    return "".join(reversed(digits)) or "1"


def _plan_wallets(rng, count):
    slugs = [c[0] for c in CHAINS]
    weights = [c[2] for c in CHAINS]
    planned: list[tuple] = []
    seen: set = set()
    while len(planned) < count:
        chain = rng.choices(slugs, weights)[0]
        address = _address(rng, chain)
        if (chain, address) in seen:
            continue
        seen.add((chain, address))
        name = f"{rng.choice(WALLET_LABELS)} {len(planned) + 1}"
        planned.append((chain, address, name))
    return planned


def _insert_wallets(planned):
    if not planned:
        return []
    chain_ids = dict(Chain.objects.values_list("slug", "id"))
    chains = [chain_ids[c] for c, _, _ in planned]
    addresses = [a for _, a, _ in planned]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT w.address, c.slug FROM bagtracker_wallet w JOIN bagtracker_chain c ON c.id = w.chain_id "
            "JOIN unnest(%s::bigint[], %s::text[]) AS p(chain_id, address) "
            "ON p.chain_id = w.chain_id AND p.address = w.address LIMIT 1",
            [chains, addresses],
        )
        clash = cursor.fetchone()
        if clash:
            raise DemoError(
                f"the demo wallets of this seed already exist ({clash[0]} on {clash[1]}); use another --seed"
            )
        cursor.execute(
            "INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at) "
            "SELECT chain_id, address, name, true, now() "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[]) WITH ORDINALITY AS p(chain_id, address, name, n) "
            "ORDER BY n RETURNING id",
            [chains, addresses, [n for _, _, n in planned]],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _load_transactions(rng, planned, wallet_ids, tokens, paths, start, end, per_wallet, progress):
    span = int((end - start).total_seconds())
    total = 0
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY bagtracker_transaction (wallet_id, token_id, kind, status, amount, price_usd, timestamp, tx_hash, "
            "created_at) FROM STDIN"
        ) as copy,
    ):
        now = datetime.now(UTC)
        for index, ((chain, _, _), wallet_id) in enumerate(zip(planned, wallet_ids, strict=True), start=1):
            for row in _wallet_history(rng, chain, tokens, paths, start, end, span, per_wallet):
                copy.write_row((wallet_id, *row, now))
                total += 1
            if progress and (index % 500 == 0 or index == len(wallet_ids)):
                progress(index, len(wallet_ids))
    return total


def _wallet_history(rng, chain, tokens, paths, start, end, span, per_wallet):
    """Yield (token_id, kind, status, amount, price, timestamp, tx_hash) in time order."""
    catalogue = [t for (slug, _), t in tokens.items() if slug == chain]
    held_tokens = [catalogue[0], *rng.sample(catalogue[1:], rng.randint(1, len(catalogue) - 1))]
    weights = [3] + [1] * (len(held_tokens) - 1)
    count = rng.randint(per_wallet // 2, per_wallet + per_wallet // 2) if per_wallet else 0
    seconds = sorted(rng.sample(range(span), min(count, span)))
    held = {t.id: Decimal(0) for t in held_tokens}
    recent = end - PENDING_WITHIN
    for offset in seconds:
        at = start + timedelta(seconds=offset)
        token = rng.choices(held_tokens, weights)[0]
        market = paths[token.symbol][offset // 3600]
        balance = held[token.id]
        if balance <= 0:
            kind = rng.choices(list(ACQUISITION_KINDS), [7, 3])[0]
        else:
            kind = rng.choices(TransactionKind.values, [40, 25, 15, 20])[0]
        statuses = RECENT_STATUSES if at >= recent else STATUSES
        status = rng.choices(*statuses)[0]
        if kind in ("sell", "transfer_out"):
            share = Decimal(1) if rng.random() < 0.15 else Decimal(rng.randint(10, 90)) / 100
            amount = (balance * share).quantize(token.step, ROUND_DOWN)
            if amount <= 0:
                continue
        else:
            usd = min(50_000.0, math.exp(rng.gauss(math.log(400), 1.1)))
            amount = max(token.step, (Decimal(usd) / Decimal(market)).quantize(token.step, ROUND_DOWN))
        priced = rng.random() < (0.92 if kind in (TransactionKind.BUY, TransactionKind.SELL) else 0.2)
        price = _decimal_price(market * (1 + rng.gauss(0, 0.003))) if priced else None
        tx_hash = _tx_hash(rng, chain) if rng.random() < 0.9 else None
        if status == "confirmed":
            held[token.id] = balance + (amount if kind in ACQUISITION_KINDS else -amount)
        yield token.id, kind, status, amount, price, at, tx_hash
