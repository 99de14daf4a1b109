"""The ledger (docs/ledger.md): Balance rows rebuilt from confirmed transactions.

All work is set-based SQL over a set of wallets: one window query finds any running amount that
would go negative (in (timestamp, id) order), one INSERT … SELECT … ON CONFLICT writes the
aggregates, one DELETE removes balances that no longer have a confirmed transaction.

Rounding: averages = Σ qty·price / Σ qty rounded once to 18 places (see average_sql); realized
PnL = round((avg_sell − avg_buy) × Σ qty of priced disposals, 18) using the rounded averages (the
product is exact, so one rounding). Both are half away from zero, like Python's ROUND_HALF_UP.
"""

import time
from dataclasses import dataclass, field

from django.db import DataError, connection, transaction

from bagtracker.errors import RunningAmountNegative
from bagtracker.models import Token, Transaction, Wallet
from bagtracker.numbers import plain

# Wallets are processed in id ranges of this size by recalculate_all_wallets; each range commits.
# Transactions are stored in time order, so even a range of 2,000 wallets (2 % of the rows at
# 100,000 wallets) has rows on most heap pages: each batch reads most of the table, twice (the
# negative check, the aggregate). Larger ranges pay that fixed cost fewer times (BENCHMARKS.md);
# a batch of 10,000 wallets holds their locks for a few seconds at 50 transactions per wallet.
RECALCULATE_BATCH_WALLETS = 10000
# A batch sorts its transactions for the running amounts and hashes its (wallet, token) groups:
# with the default 4MB both spill to disk. Server memory, for the batch's transaction only.
RECALCULATE_WORK_MEM_SQL = "SET LOCAL work_mem = '64MB'"

_SIGNED = "CASE WHEN t.kind IN ('buy', 'transfer_in') THEN t.amount ELSE -t.amount END"

FIRST_NEGATIVE_SQL = f"""
SELECT DISTINCT ON (r.wallet_id) r.wallet_id, r.token_id, r.id, r.timestamp, r.running
FROM (
    SELECT t.wallet_id, t.token_id, t.id, t.timestamp,
           SUM({_SIGNED}) OVER (
               PARTITION BY t.wallet_id, t.token_id ORDER BY t.timestamp, t.id ROWS UNBOUNDED PRECEDING
           ) AS running
    FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND {{where}}
) r
WHERE r.running < 0
ORDER BY r.wallet_id, r.timestamp, r.id
"""


def average_sql(value, qty):
    """SQL for value / qty rounded once, exactly, to 18 places, half away from zero.

    Not ``round(value / qty, 18)``: PostgreSQL first rounds the quotient to a scale of its own
    choosing (36 places here), and rounding twice is wrong when the exact quotient lies just below
    a half: 1.500000000000000002 / 3.000000000000000001 = 0.500000000000000000 4999…98 must give
    0.500000000000000000, but its 36-place rounding ends in 5000… and then rounds up. div() and
    mod() are exact, so this is the one rounding docs/ledger.md asks for. Both operands are >= 0
    (prices and amounts are constrained so); qty is NULL (no priced row) or > 0.
    """
    scaled = f"({value} * 1000000000000000000)"
    return (
        f"((div({scaled}, {qty}) + CASE WHEN 2 * mod({scaled}, {qty}) >= {qty} THEN 1 ELSE 0 END)"
        " * 0.000000000000000001)"
    )


UPSERT_SQL = f"""
WITH agg AS (
    SELECT t.wallet_id, t.token_id,
           SUM(CASE WHEN t.kind IN ('buy', 'transfer_in') THEN t.amount ELSE 0 END) AS total_in,
           SUM(CASE WHEN t.kind IN ('sell', 'transfer_out') THEN t.amount ELSE 0 END) AS total_out,
           SUM(CASE WHEN t.kind IN ('buy', 'transfer_in') THEN t.amount * t.price_usd END) AS buy_value,
           SUM(CASE WHEN t.kind IN ('buy', 'transfer_in') AND t.price_usd IS NOT NULL THEN t.amount END) AS buy_qty,
           SUM(CASE WHEN t.kind IN ('sell', 'transfer_out') THEN t.amount * t.price_usd END) AS sell_value,
           SUM(CASE WHEN t.kind IN ('sell', 'transfer_out') AND t.price_usd IS NOT NULL THEN t.amount END) AS sell_qty
    FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND {{where}}
    GROUP BY t.wallet_id, t.token_id
), calc AS (
    SELECT wallet_id, token_id, total_in, total_out, total_in - total_out AS amount, sell_qty,
           COALESCE(buy_qty, 0) AS priced_in_qty, COALESCE(buy_value, 0) AS priced_in_value,
           {average_sql("buy_value", "buy_qty")} AS avg_buy,
           {average_sql("sell_value", "sell_qty")} AS avg_sell
    FROM agg
)
INSERT INTO snapshots_balance AS b
    (wallet_id, token_id, amount, total_in, total_out,
     avg_buy_price_usd, avg_sell_price_usd, realized_pnl_usd, priced_in_qty, priced_in_value_usd, updated_at)
SELECT wallet_id, token_id, amount, total_in, total_out, avg_buy, avg_sell,
       COALESCE(round((avg_sell - avg_buy) * sell_qty, 18), 0), priced_in_qty, priced_in_value, now()
FROM calc
ON CONFLICT (wallet_id, token_id) DO UPDATE SET
    amount = EXCLUDED.amount,
    total_in = EXCLUDED.total_in,
    total_out = EXCLUDED.total_out,
    avg_buy_price_usd = EXCLUDED.avg_buy_price_usd,
    avg_sell_price_usd = EXCLUDED.avg_sell_price_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    priced_in_qty = EXCLUDED.priced_in_qty,
    priced_in_value_usd = EXCLUDED.priced_in_value_usd,
    updated_at = EXCLUDED.updated_at
WHERE (b.amount, b.total_in, b.total_out, b.avg_buy_price_usd, b.avg_sell_price_usd, b.realized_pnl_usd,
       b.priced_in_qty, b.priced_in_value_usd)
      IS DISTINCT FROM
      (EXCLUDED.amount, EXCLUDED.total_in, EXCLUDED.total_out, EXCLUDED.avg_buy_price_usd,
       EXCLUDED.avg_sell_price_usd, EXCLUDED.realized_pnl_usd, EXCLUDED.priced_in_qty, EXCLUDED.priced_in_value_usd)
"""

DELETE_STALE_SQL = """
DELETE FROM snapshots_balance b
WHERE {where_b}
  AND NOT EXISTS (
      SELECT 1 FROM bagtracker_transaction t
      WHERE t.wallet_id = b.wallet_id AND t.token_id = b.token_id AND t.status = 'confirmed'
  )
"""


class LedgerError(RunningAmountNegative):
    """A change would drive a running amount below zero. Nothing of that wallet was changed.

    The message names the wallet, the token and the transaction at which the running amount first
    goes below zero. It is composed when the error is raised, inside the failing database
    transaction, where that transaction still exists (it may be the one being added).
    """

    def __init__(self, wallet_id, token_id, transaction_id, timestamp, running):
        self.wallet_id = wallet_id
        self.token_id = token_id
        self.transaction_id = transaction_id
        self.timestamp = timestamp
        self.running = running
        self.is_new_transaction = False
        wallet = Wallet.objects.select_related("chain").filter(pk=wallet_id).first()
        token = Token.objects.filter(pk=token_id).first()
        tx = Transaction.objects.filter(pk=transaction_id).values("kind", "amount").first()
        self._wallet_label = f"wallet {wallet_id}" + (f" ({wallet.address} on {wallet.chain.slug})" if wallet else "")
        self._token_label = token.symbol if token else f"token {token_id}"
        self._what = f"{tx['kind']} of {plain(tx['amount'])} " if tx else ""
        super().__init__(self._describe())

    def as_new_transaction(self):
        """The same error, told about a transaction being added (its id was never committed)."""
        self.is_new_transaction = True
        self.args = (self._describe(),)
        return self

    def _describe(self):
        which = "the new transaction" if self.is_new_transaction else f"transaction {self.transaction_id}"
        return (
            f"{self._wallet_label}, {self._token_label}: {which} ({self._what}at "
            f"{self.timestamp.isoformat()}) would make the running amount negative ({plain(self.running)})"
        )


class BalanceOverflowError(LedgerError):
    """A balance would not fit its column (NUMERIC(38,18) holds USD values below 10^20, NUMERIC(78,18)
    amounts below 10^60): a mistyped price can do that to the realized PnL. Nothing was changed."""

    def __init__(self, wallet_ids):
        self.wallet_ids = list(wallet_ids)
        self.wallet_id, self.token_id, self.transaction_id = self.wallet_ids[0], None, None
        self.is_new_transaction = False
        which = ", ".join(str(w) for w in self.wallet_ids)
        Exception.__init__(
            self,
            f"wallet {which}: a balance would not fit its column (a realized PnL of 10^20 USD or more, "
            "or an amount of 10^60 or more); check the prices and amounts",
        )

    def as_new_transaction(self):
        return self


@dataclass
class WalletFailure:
    wallet_id: int
    error: str


@dataclass
class RecalculationResult:
    wallets: int = 0
    balances_written: int = 0
    balances_removed: int = 0
    failures: list = field(default_factory=list)
    duration_seconds: float = 0.0

    def merge(self, other):
        self.wallets += other.wallets
        self.balances_written += other.balances_written
        self.balances_removed += other.balances_removed
        self.failures.extend(other.failures)

    @property
    def status(self):
        if not self.failures:
            return "success"
        return "partial_success" if self.wallets else "error"

    def as_dict(self):
        return {
            "status": self.status,
            "wallets": self.wallets,
            "balances_written": self.balances_written,
            "balances_removed": self.balances_removed,
            "failed_wallets": [{"wallet_id": f.wallet_id, "error": f.error} for f in self.failures],
            "duration_seconds": round(self.duration_seconds, 3),
        }


@dataclass
class WalletScope:
    """A set of wallets as an SQL condition on a wallet-id column, e.g. "{col} = ANY(%(ids)s)"."""

    condition: str
    params: dict

    def on(self, column):
        return self.condition.format(col=column)


def _lock_wallets(cursor, scope):
    # Serialises every ledger write of a wallet: a concurrent writer waits here, then (READ
    # COMMITTED) its own statements see the rows the first one committed. Ascending ids, so two
    # writers of several wallets cannot wait on each other. NO KEY UPDATE, not UPDATE: writers
    # conflict with each other but not with the KEY SHARE lock a foreign-key check takes on the
    # wallet row; with FOR UPDATE, two writers whose inserts checked their foreign keys at once
    # (SET CONSTRAINTS ALL IMMEDIATE, raw SQL) deadlocked, each waiting for the other's check.
    cursor.execute(
        f"SELECT id FROM bagtracker_wallet WHERE {scope.on('id')} ORDER BY id FOR NO KEY UPDATE", scope.params
    )


def _first_negatives(cursor, scope):
    cursor.execute(FIRST_NEGATIVE_SQL.format(where=scope.on("t.wallet_id")), scope.params)
    return [LedgerError(*row) for row in cursor.fetchall()]


def _write(cursor, scope):
    cursor.execute(UPSERT_SQL.format(where=scope.on("t.wallet_id")), scope.params)
    written = cursor.rowcount
    cursor.execute(DELETE_STALE_SQL.format(where_b=scope.on("b.wallet_id")), scope.params)
    return written, cursor.rowcount


def apply_to_wallets(wallet_ids):
    """Rebuild the balances of these wallets inside the caller's transaction.

    Raises LedgerError (naming wallet, token, transaction) if any running amount would go
    negative; the caller's transaction must then roll back, so nothing changes. This is what
    transaction writes (admin, importer) call before they commit.
    """
    wallet_ids = sorted({int(w) for w in wallet_ids})
    if not wallet_ids:
        return 0, 0
    scope = WalletScope("{col} = ANY(%(ids)s)", {"ids": wallet_ids})
    with connection.cursor() as cursor:
        _lock_wallets(cursor, scope)
        negatives = _first_negatives(cursor, scope)
        if negatives:
            raise negatives[0]
        try:
            return _write(cursor, scope)
        except DataError as error:
            raise BalanceOverflowError(wallet_ids) from error


def recalculate_wallet(wallet_id):
    """Repair one wallet's balances from its history, in its own transaction."""
    started = time.monotonic()
    if not Wallet.objects.filter(pk=wallet_id).exists():
        raise Wallet.DoesNotExist(f"wallet {wallet_id} does not exist")
    result = RecalculationResult()
    try:
        with transaction.atomic():
            result.balances_written, result.balances_removed = apply_to_wallets([wallet_id])
        result.wallets = 1
    except LedgerError as error:
        result.failures.append(WalletFailure(wallet_id, str(error)))
    result.duration_seconds = time.monotonic() - started
    return result


def recalculate_all_wallets(batch_size=None, progress=None):
    """Repair every wallet's balances, one committed batch of wallet ids at a time.

    A wallet whose history is inconsistent is left untouched and listed in ``failures``; the others
    are rebuilt. ``progress(done, total)`` is called after each batch.
    """
    batch_size = batch_size or RECALCULATE_BATCH_WALLETS
    started = time.monotonic()
    result = RecalculationResult()
    bounds = Wallet.objects.order_by("id").values_list("id", flat=True)
    total = bounds.count()
    done = 0
    lowest = 0
    while True:
        ids = list(bounds.filter(id__gt=lowest)[:batch_size])
        if not ids:
            break
        lowest = ids[-1]
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                scope = WalletScope("{col} BETWEEN %(lo)s AND %(hi)s", {"lo": ids[0], "hi": ids[-1]})
                cursor.execute(RECALCULATE_WORK_MEM_SQL)
                _lock_wallets(cursor, scope)
                negatives = _first_negatives(cursor, scope)
                healthy = WalletScope(
                    scope.condition + " AND {col} <> ALL(%(bad)s::bigint[])",
                    {**scope.params, "bad": [e.wallet_id for e in negatives]},
                )
                written, removed = _write(cursor, healthy)
                cursor.execute("SET LOCAL work_mem TO DEFAULT")  # in case a caller's transaction goes on
        except DataError:
            # A balance of this batch overflows its column: nothing of the batch was written.
            # Wallet by wallet, to rebuild the others and name the culprit.
            for wallet_id in ids:
                result.merge(recalculate_wallet(wallet_id))
        else:
            result.failures.extend(WalletFailure(e.wallet_id, str(e)) for e in negatives)
            result.balances_written += written
            result.balances_removed += removed
            result.wallets += len(ids) - len(negatives)
        done += len(ids)
        if progress:
            progress(done, total)
    result.duration_seconds = time.monotonic() - started
    return result
