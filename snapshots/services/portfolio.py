"""What the admin console shows: a wallet's (or the whole portfolio's) value over time from the
snapshots, and a wallet's current positions with their profit and loss.

Read-only. Every function is one SQL statement whose cost depends on the rows it returns, not on
how much history is stored: the history of one wallet is read through the snapshot_wallet_history
index (wallet, period, as_of), and each period's series is cut to its MAX_POINTS latest boundaries.
Sums are taken by PostgreSQL (GROUP BY as_of), never by a Python loop over snapshot rows.

Values are exact Decimals here; the chart turns them into numbers for drawing only.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connections
from django.utils import timezone
from psycopg import sql

from read_replica import read_alias
from snapshots.periods import PERIODS

# Boundaries per period in one chart: a year of daily snapshots, or a retention of "forever" on
# hourly ones, must not make the page (or its payload) grow without bound.
MAX_POINTS = 400


@dataclass
class TokenSeries:
    token_id: int
    symbol: str
    chain: str
    # Aligned with ValueHistory.as_of. None: no row at that boundary (the wallet held none of it,
    # or at most dust) or no known price then.
    values: list


@dataclass
class ValueHistory:
    """One period's value over time: the total per boundary and, for a wallet, per token."""

    period: str
    as_of: list = field(default_factory=list)
    total: list = field(default_factory=list)
    # Boundaries where some holding had no known price: its value is missing from the total.
    unpriced: list = field(default_factory=list)
    tokens: list = field(default_factory=list)

    @property
    def points(self):
        return len(self.as_of)


# Readers see a boundary only once its SnapshotRun is completed (docs/snapshots.md): not the rows
# of a boundary whose shards are still being written, nor those of a one-wallet backfill.
COMPLETED_BOUNDARY = sql.SQL("""EXISTS (
    SELECT 1 FROM snapshots_snapshotrun r WHERE r.period = b.period AND r.as_of = b.as_of AND r.status = 'completed'
)""")

# The wallet's latest MAX_POINTS completed boundaries per period where it has rows (its summaries
# with rows > 0: a few wallet states × the boundaries they hold), then its values there: per token
# and the total in one pass (GROUPING SETS). Only the wallet's states are read.
WALLET_HISTORY_SQL = sql.SQL("""
WITH points AS (
    SELECT period, as_of FROM (
        SELECT period, as_of, row_number() OVER (PARTITION BY period ORDER BY as_of DESC) AS recency
        FROM (SELECT period, as_of FROM snapshots_walletsnapshot b
              WHERE wallet_id = %(wallet)s AND rows > 0 AND period = ANY(%(periods)s)
                AND {completed}) boundaries
    ) ranked
    WHERE recency <= %(max_points)s
)
SELECT s.period, s.as_of, s.token_id, tk.symbol, c.slug,
       SUM(s.value_usd) AS value_usd, count(*) FILTER (WHERE s.value_usd IS NULL) AS unpriced
FROM snapshots_balancesnapshot s
JOIN points p ON p.period = s.period AND p.as_of = s.as_of
JOIN bagtracker_token tk ON tk.id = s.token_id
JOIN bagtracker_chain c ON c.id = tk.chain_id
WHERE s.wallet_id = %(wallet)s
GROUP BY GROUPING SETS ((s.period, s.as_of, s.token_id, tk.symbol, c.slug), (s.period, s.as_of))
ORDER BY s.period, s.as_of, tk.symbol NULLS FIRST
""").format(completed=COMPLETED_BOUNDARY)

# The whole portfolio over one period: the boundaries taken for every wallet (a completed
# SnapshotRun; a backfill of one wallet alone would draw a false dip), the latest MAX_POINTS, each
# summed over the wallets active now — the sum of their rows' values and their rows without a
# price. Read from the boundary's totals per token (every wallet it covers: a few rows per
# boundary), minus the rows of the wallets inactive now (a few wallets). One period per call (the
# overview shows one at a time).
PORTFOLIO_HISTORY_SQL = """
WITH points AS (
    SELECT as_of FROM snapshots_snapshotrun
    WHERE status = 'completed' AND period = %(period)s
    ORDER BY as_of DESC LIMIT %(max_points)s
), totals AS (
    SELECT t.as_of, SUM(t.value_usd) AS value_usd, SUM(t.unpriced_rows) AS unpriced
    FROM snapshots_boundarytotal t
    WHERE t.period = %(period)s AND t.as_of >= (SELECT min(as_of) FROM points)
    GROUP BY t.as_of
), inactive AS (
    -- the rows of the wallets inactive now (their summaries' values are the sums of these rows)
    SELECT s.as_of, SUM(s.value_usd) AS value_usd, count(*) FILTER (WHERE s.value_usd IS NULL) AS unpriced
    FROM snapshots_balancesnapshot s
    WHERE s.period = %(period)s AND s.as_of >= (SELECT min(as_of) FROM points)
      AND s.wallet_id IN (SELECT id FROM bagtracker_wallet WHERE NOT is_active)
    GROUP BY s.as_of
)
SELECT p.as_of, COALESCE(t.value_usd, 0) - COALESCE(i.value_usd, 0),
       (COALESCE(t.unpriced, 0) - COALESCE(i.unpriced, 0))::bigint
FROM points p LEFT JOIN totals t ON t.as_of = p.as_of LEFT JOIN inactive i ON i.as_of = p.as_of
ORDER BY p.as_of
"""


def wallet_value_history(
    wallet_id: int, periods: Sequence[str] = PERIODS, max_points: int | None = None
) -> dict[str, ValueHistory]:
    """{period: ValueHistory} of one wallet: total and per token, oldest boundary first."""
    histories = {period: ValueHistory(period) for period in periods}
    params: dict[str, Any] = {"wallet": wallet_id, "periods": list(periods), "max_points": max_points or MAX_POINTS}
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(WALLET_HISTORY_SQL, params)
        rows = cursor.fetchall()
    per_token: defaultdict[tuple, dict] = defaultdict(dict)  # (period, token_id) -> {as_of: value}
    labels = {}  # (period, token_id) -> (symbol, chain)
    for period, as_of, token_id, symbol, chain, value, unpriced in rows:
        if token_id is None:  # the GROUPING SET of the whole boundary
            history = histories[period]
            history.as_of.append(as_of)
            history.total.append(value if value is not None else Decimal(0))
            history.unpriced.append(unpriced)
        else:
            per_token[period, token_id][as_of] = value
            labels[period, token_id] = (symbol, chain)
    for (period, token_id), values in per_token.items():
        history = histories[period]
        symbol, chain = labels[period, token_id]
        history.tokens.append(TokenSeries(token_id, symbol, chain, [values.get(t) for t in history.as_of]))
    for history in histories.values():
        history.tokens.sort(key=lambda t: (t.symbol, t.chain))
    return histories


def portfolio_value_history(period: str, max_points: int | None = None) -> ValueHistory:
    """ValueHistory of all active wallets together over ``period``, at boundaries taken for every wallet."""
    history = ValueHistory(period)
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(PORTFOLIO_HISTORY_SQL, {"period": period, "max_points": max_points or MAX_POINTS})
        for as_of, value, unpriced in cursor.fetchall():
            history.as_of.append(as_of)
            history.total.append(value)
            history.unpriced.append(unpriced)
    return history


@dataclass
class PnlHistory:
    """One period of a wallet's summaries: realized PnL and cost basis over ALL its tokens at each
    boundary, closed positions included — so the realized line never drops when a position is sold out."""

    period: str
    as_of: list = field(default_factory=list)
    realized_pnl: list = field(default_factory=list)
    cost_basis: list = field(default_factory=list)


# The wallet's summaries (one row per boundary), the latest MAX_POINTS completed ones per period;
# index on (wallet, period, as_of).
WALLET_PNL_SQL = sql.SQL("""
SELECT period, as_of, realized_pnl_usd, cost_basis_usd FROM (
    SELECT period, as_of, realized_pnl_usd, cost_basis_usd,
           row_number() OVER (PARTITION BY period ORDER BY as_of DESC) AS recency
    FROM snapshots_walletsnapshot b
    WHERE wallet_id = %(wallet)s AND period = ANY(%(periods)s) AND {completed}
) ranked
WHERE recency <= %(max_points)s
ORDER BY period, as_of
""").format(completed=COMPLETED_BOUNDARY)


def wallet_pnl_history(wallet_id, periods=PERIODS, max_points=None):
    """{period: PnlHistory} of one wallet, from its wallet summaries, oldest boundary first."""
    histories = {period: PnlHistory(period) for period in periods}
    params = {"wallet": wallet_id, "periods": list(periods), "max_points": max_points or MAX_POINTS}
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(WALLET_PNL_SQL, params)
        for period, as_of, realized, cost_basis in cursor.fetchall():
            history = histories[period]
            history.as_of.append(as_of)
            history.realized_pnl.append(realized)
            history.cost_basis.append(cost_basis)
    return histories


# --- Current positions ---------------------------------------------------------------------------


@dataclass
class Position:
    """One Balance of a wallet, valued at the current price (docs/snapshots.md, docs/ledger.md)."""

    token_id: int
    symbol: str
    chain: str
    amount: Decimal
    avg_buy_price_usd: Decimal  # trade statistic; None: no priced acquisition
    cost_basis_usd: Decimal  # C: what the units held cost (BALANCE_COST_BASIS)
    avg_cost_usd: Decimal  # round(C / Q); None when nothing is held
    cost_basis_complete: bool  # False: some units held have an unknown cost (counted as 0)
    realized_pnl_usd: Decimal
    realized_pnl_complete: bool  # False: a sell had no price or took cost from unknown-cost units
    price_usd: Decimal  # None: no known price
    price_as_of: datetime
    price_source: str  # "price" (Price history) | "transaction" (latest priced trade) | ""
    value_usd: Decimal
    unrealized_pnl_usd: Decimal  # round(Q·P) − C; None when the price is unknown


@dataclass
class WalletPositions:
    at: datetime
    positions: list

    @property
    def value_usd(self):
        return sum((p.value_usd for p in self.positions if p.value_usd is not None), Decimal(0))

    @property
    def cost_basis_usd(self):
        return sum((p.cost_basis_usd for p in self.positions), Decimal(0))

    @property
    def realized_pnl_usd(self):
        return sum((p.realized_pnl_usd for p in self.positions), Decimal(0))

    @property
    def cost_basis_complete(self):
        return all(p.cost_basis_complete for p in self.positions)

    @property
    def realized_pnl_complete(self):
        return all(p.realized_pnl_complete for p in self.positions)

    @property
    def unrealized_pnl_usd(self):
        return sum((p.unrealized_pnl_usd for p in self.positions if p.unrealized_pnl_usd is not None), Decimal(0))

    @property
    def incomplete(self):
        """Some position held has no known price: the value and unrealized totals leave it out."""
        return any(p.unrealized_pnl_usd is None and p.amount for p in self.positions)


# The price rule of the snapshots (snapshot_sql.py) at one instant, looked up once per balance of
# the wallet: the latest Price at or before T, else the token's latest priced confirmed transaction
# (any wallet) at or before T. The second branch of the UNION ALL runs only when the first is empty.
# Unrealized PnL = round(amount × price) − cost basis (docs/ledger.md): what the units held would
# fetch now minus what they cost, whichever cost-basis method computed that cost.
WALLET_POSITIONS_SQL = """
SELECT b.token_id, tk.symbol, c.slug, b.amount, b.avg_buy_price_usd, b.cost_basis_usd, b.avg_cost_usd,
       b.cost_basis_complete, b.realized_pnl_usd, b.realized_pnl_complete,
       price.price_usd, price.as_of, price.source,
       round(b.amount * price.price_usd, 18),
       round(b.amount * price.price_usd, 18) - b.cost_basis_usd
FROM snapshots_balance b
JOIN bagtracker_token tk ON tk.id = b.token_id
JOIN bagtracker_chain c ON c.id = tk.chain_id
LEFT JOIN LATERAL (
    (SELECT p.price_usd, p.as_of, 'price' AS source FROM bagtracker_price p
     WHERE p.token_id = b.token_id AND p.as_of <= %(at)s
     ORDER BY p.as_of DESC LIMIT 1)
    UNION ALL
    (SELECT t.price_usd, t.timestamp, 'transaction' FROM bagtracker_transaction t
     WHERE t.token_id = b.token_id AND t.status = 'confirmed' AND t.price_usd IS NOT NULL
       AND t.timestamp <= %(at)s
     ORDER BY t.timestamp DESC, t.id DESC LIMIT 1)
    LIMIT 1
) price ON TRUE
WHERE b.wallet_id = %(wallet)s
ORDER BY b.amount = 0, tk.symbol, c.slug
"""


def wallet_positions(wallet_id: int, at: datetime | None = None) -> WalletPositions:
    """The wallet's balances valued at ``at`` (default now): held tokens first, then closed ones."""
    at = at or timezone.now()
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(WALLET_POSITIONS_SQL, {"wallet": wallet_id, "at": at})
        positions = [Position(*row[:12], row[12] or "", *row[13:]) for row in cursor.fetchall()]  # type: ignore[call-arg]
    return WalletPositions(at=at, positions=positions)
