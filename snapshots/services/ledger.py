"""The ledger (docs/ledger.md): Balance rows rebuilt from confirmed transactions.

The walk over a scope's transactions in ledger order is the PL/pgSQL function bt_ledger_walk
(migrations snapshots.0005, 0010, 0014, 0015): one row per (wallet, token) with amount, cost basis, realized PnL, the
trade statistics' sums and the first transaction that would make the running amount negative.
One statement here writes its rows (INSERT … SELECT … ON CONFLICT … WHERE … IS DISTINCT FROM) and
reports the refused pairs; one DELETE removes balances that no longer have a confirmed transaction.

Rounding: every rounding is exact and single, half away from zero: round(q·p, 18) of an exact
product, and bt_round_div (div/mod scaled by 10^18) for a quotient, never round(a / b, 18).
"""

import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import DataError, connection, transaction
from django.utils.dateparse import parse_datetime
from psycopg import sql

from bagtracker.errors import RunningAmountNegative, check_wallet_exists
from bagtracker.models import Wallet
from bagtracker.numbers import plain
from snapshots.cost_basis import current_method
from snapshots.job_registry import Outcome
from snapshots.services.scope import WalletScope

# Wallets are processed in id ranges of this size by recalculate_all_wallets; each range commits.
# Transactions are stored in time order, so even a range of 2,000 wallets (2 % of the rows at
# 100,000 wallets) has rows on most heap pages: each batch reads most of the table. Larger ranges
# pay that fixed cost fewer times (BENCHMARKS.md); a batch of 10,000 wallets holds their locks for
# a few seconds at 50 transactions per wallet.
RECALCULATE_BATCH_WALLETS = 10000
# A batch sorts its transactions into ledger order: with the default 4MB the sort spills to disk.
# Server memory, for the batch's transaction only.
RECALCULATE_WORK_MEM_SQL = "SET LOCAL work_mem = '64MB'"


def average_sql(value, qty):
    """SQL for value / qty rounded once, exactly, to 18 places, half away from zero.

    Not ``round(value / qty, 18)``: PostgreSQL first rounds the quotient to a scale of its own
    choosing (36 places here), and rounding twice is wrong when the exact quotient lies just below
    a half: 1.500000000000000002 / 3.000000000000000001 = 0.500000000000000000 4999…98 must give
    0.500000000000000000, but its 36-place rounding ends in 5000… and then rounds up. div() and
    mod() are exact (bt_round_div), so this is the one rounding docs/ledger.md asks for. Both operands are
    >= 0; qty is NULL (no priced row) or > 0. ``value`` and ``qty`` are SQL fragments (psycopg.sql) or text.
    """
    value, qty = (part if isinstance(part, sql.Composable) else sql.SQL(part) for part in (value, qty))
    return sql.SQL("bt_round_div({value}, {qty})").format(value=value, qty=qty)


# The walk's rows of a scope, written into snapshots_balance; refused pairs are not written, and
# neither is any other pair of a wallet with a refused pair (a wallet is refused as a whole).
WRITE_SQL = sql.SQL("""
WITH walk AS MATERIALIZED (
    SELECT * FROM bt_ledger_walk(%(method)s, %(lo)s, %(hi)s, %(wallets)s, %(tokens)s, NULL)
), refused AS (
    SELECT DISTINCT ON (w.wallet_id) w.wallet_id, w.token_id, w.negative_tx, w.negative_at, w.negative_running
    FROM walk w
    WHERE w.negative_tx IS NOT NULL
    ORDER BY w.wallet_id, w.negative_at, w.negative_tx
), written AS (
    INSERT INTO snapshots_balance AS b
        (wallet_id, token_id, amount, total_in, total_out, avg_buy_price_usd, avg_sell_price_usd,
         cost_basis_usd, avg_cost_usd, realized_pnl_usd, cost_basis_complete, realized_pnl_complete,
         cost_basis_method, priced_in_qty, priced_in_value_usd, updated_at)
    SELECT w.wallet_id, w.token_id, w.amount, w.total_in, w.total_out,
           CASE WHEN w.priced_in_qty > 0 THEN {avg_buy} END,
           CASE WHEN w.priced_out_qty > 0 THEN {avg_sell} END,
           w.cost_basis, CASE WHEN w.amount > 0 THEN {avg_cost} END, w.realized,
           w.cost_basis_complete, w.realized_complete, %(method)s, w.priced_in_qty, w.priced_in_value, now()
    FROM walk w
    WHERE w.wallet_id NOT IN (SELECT r.wallet_id FROM refused r)
    ON CONFLICT (wallet_id, token_id) DO UPDATE SET
        amount = EXCLUDED.amount,
        total_in = EXCLUDED.total_in,
        total_out = EXCLUDED.total_out,
        avg_buy_price_usd = EXCLUDED.avg_buy_price_usd,
        avg_sell_price_usd = EXCLUDED.avg_sell_price_usd,
        cost_basis_usd = EXCLUDED.cost_basis_usd,
        avg_cost_usd = EXCLUDED.avg_cost_usd,
        realized_pnl_usd = EXCLUDED.realized_pnl_usd,
        cost_basis_complete = EXCLUDED.cost_basis_complete,
        realized_pnl_complete = EXCLUDED.realized_pnl_complete,
        cost_basis_method = EXCLUDED.cost_basis_method,
        priced_in_qty = EXCLUDED.priced_in_qty,
        priced_in_value_usd = EXCLUDED.priced_in_value_usd,
        updated_at = EXCLUDED.updated_at
    WHERE (b.amount, b.total_in, b.total_out, b.avg_buy_price_usd, b.avg_sell_price_usd, b.cost_basis_usd,
           b.avg_cost_usd, b.realized_pnl_usd, b.cost_basis_complete, b.realized_pnl_complete, b.cost_basis_method,
           b.priced_in_qty, b.priced_in_value_usd)
          IS DISTINCT FROM
          (EXCLUDED.amount, EXCLUDED.total_in, EXCLUDED.total_out, EXCLUDED.avg_buy_price_usd,
           EXCLUDED.avg_sell_price_usd, EXCLUDED.cost_basis_usd, EXCLUDED.avg_cost_usd, EXCLUDED.realized_pnl_usd,
           EXCLUDED.cost_basis_complete, EXCLUDED.realized_pnl_complete, EXCLUDED.cost_basis_method,
           EXCLUDED.priced_in_qty, EXCLUDED.priced_in_value_usd)
    RETURNING 1
)
SELECT (SELECT count(*) FROM written),
       (SELECT coalesce(json_agg(json_build_array(
            r.wallet_id, r.token_id, r.negative_tx, r.negative_at, r.negative_running::text,
            wa.address, ch.slug, tk.symbol, tx.kind, tx.amount::text
        ) ORDER BY r.wallet_id), '[]')
        FROM refused r
        LEFT JOIN bagtracker_wallet wa ON wa.id = r.wallet_id
        LEFT JOIN bagtracker_chain ch ON ch.id = wa.chain_id
        LEFT JOIN bagtracker_token tk ON tk.id = r.token_id
        LEFT JOIN bagtracker_transaction tx ON tx.id = r.negative_tx)
""").format(
    avg_buy=average_sql("w.priced_in_value", "w.priced_in_qty"),
    avg_sell=average_sql("w.priced_out_value", "w.priced_out_qty"),
    avg_cost=average_sql("w.cost_basis", "w.amount"),
)

# Balances of the scope whose (wallet, token) no longer has a confirmed transaction.
DELETE_STALE_SQL = sql.SQL("""
DELETE FROM snapshots_balance b
WHERE {scope}
  AND b.wallet_id <> ALL(%(refused)s::bigint[])
  AND NOT EXISTS (
      SELECT 1 FROM bagtracker_transaction t
      WHERE t.wallet_id = b.wallet_id AND t.token_id = b.token_id AND t.status = 'confirmed'
  )
""")
LOCK_WALLETS_SQL = sql.SQL("SELECT b.id FROM bagtracker_wallet b WHERE {scope} ORDER BY b.id FOR NO KEY UPDATE")


class LedgerError(RunningAmountNegative):
    """A change would drive a running amount below zero. Nothing of that wallet was changed.

    The message names the wallet, the token and the transaction at which the running amount first
    goes below zero. Its parts come with the statement that found it (no query of its own, none
    under the wallet locks); the text is composed when it is first shown.
    """

    def __init__(
        self, wallet_id, token_id, transaction_id, timestamp, running, address=None, chain=None, symbol=None, kind=None,
        amount=None,
    ):  # fmt: skip
        self.wallet_id = wallet_id
        self.token_id = token_id
        self.transaction_id = transaction_id
        self.timestamp = timestamp
        self.running = running
        self.is_new_transaction = False
        self._labels = (address, chain, symbol, kind, amount)
        super().__init__(wallet_id, token_id, transaction_id)

    @classmethod
    def from_row(cls, row):
        wallet_id, token_id, tx_id, at, running, address, chain, symbol, kind, amount = row
        return cls(
            wallet_id, token_id, tx_id, parse_datetime(at), Decimal(running), address, chain, symbol, kind,
            None if amount is None else Decimal(amount),
        )  # fmt: skip

    def as_new_transaction(self):
        """The same error, told about a transaction being added (its id was never committed)."""
        self.is_new_transaction = True
        return self

    def __str__(self):
        address, chain, symbol, kind, amount = self._labels
        wallet = f"wallet {self.wallet_id}" + (f" ({address} on {chain})" if address else "")
        token = symbol or f"token {self.token_id}"
        what = f"{kind} of {plain(amount)} " if kind else ""
        which = "the new transaction" if self.is_new_transaction else f"transaction {self.transaction_id}"
        return (
            f"{wallet}, {token}: {which} ({what}at {self.timestamp.isoformat()}) "
            f"would make the running amount negative ({plain(self.running)})"
        )


class BalanceOverflowError(LedgerError):
    """A balance would not fit its column (NUMERIC(38,18) holds USD values below 10^20, NUMERIC(78,18)
    amounts below 10^60): a mistyped price can do that to the cost basis or realized PnL. Nothing
    was changed."""

    def __init__(self, wallet_ids):
        self.wallet_ids = list(wallet_ids)
        self.wallet_id, self.token_id, self.transaction_id = self.wallet_ids[0], None, None
        self.is_new_transaction = False
        Exception.__init__(self, *self.wallet_ids)

    def as_new_transaction(self):
        return self

    def __str__(self):
        which = ", ".join(str(w) for w in self.wallet_ids)
        return (
            f"wallet {which}: a balance would not fit its column (a cost basis or realized PnL of 10^20 USD "
            "or more, or an amount of 10^60 or more); check the prices and amounts"
        )


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
            return Outcome.SUCCESS
        return Outcome.PARTIAL_SUCCESS if self.wallets else Outcome.ERROR

    def as_dict(self):
        return {
            "status": str(self.status),
            "wallets": self.wallets,
            "balances_written": self.balances_written,
            "balances_removed": self.balances_removed,
            "failed_wallets": [{"wallet_id": f.wallet_id, "error": f.error} for f in self.failures],
            "duration_seconds": round(self.duration_seconds, 3),
        }


def _lock_wallets(cursor, scope):
    # Serialises every ledger write of a wallet: a concurrent writer waits here, then (READ
    # COMMITTED) its own statements see the rows the first one committed. Ascending ids, so two
    # writers of several wallets cannot wait on each other. NO KEY UPDATE, not UPDATE: writers
    # conflict with each other but not with the KEY SHARE lock a foreign-key check takes on the
    # wallet row; with FOR UPDATE, two writers whose inserts checked their foreign keys at once
    # (SET CONSTRAINTS ALL IMMEDIATE, raw SQL) deadlocked, each waiting for the other's check.
    cursor.execute(LOCK_WALLETS_SQL.format(scope=scope.wallets_condition("b", "id")), scope.params())


def _write(cursor, scope, method=None):
    """Walk and write the scope's balances. Returns (written, removed, [LedgerError of refused wallets])."""
    if scope.excluding or scope.covered:
        raise ValueError(f"the ledger walks wallet ranges, wallets or pairs, not {scope!r}")
    cursor.execute(WRITE_SQL, {**scope.params(), "method": method or current_method()})
    written, refused = cursor.fetchone()
    errors = [LedgerError.from_row(row) for row in refused]
    refused_ids = [e.wallet_id for e in errors]
    cursor.execute(DELETE_STALE_SQL.format(scope=scope.condition("b")), {**scope.params(), "refused": refused_ids})
    return written, cursor.rowcount, errors


def _apply(scope):
    with connection.cursor() as cursor:
        _lock_wallets(cursor, scope)
        try:
            written, removed, errors = _write(cursor, scope)
        except DataError as error:
            raise BalanceOverflowError(scope.wallet_ids) from error
    if errors:
        raise errors[0]
    return written, removed


def apply_to_wallets(wallet_ids):
    """Rebuild the balances of these wallets inside the caller's transaction.

    Raises LedgerError (naming wallet, token, transaction) if any running amount would go
    negative; the caller's transaction must then roll back, so nothing changes. This is what
    transaction writes (admin, importer) call before they commit.
    """
    wallet_ids = sorted({int(w) for w in wallet_ids})
    if not wallet_ids:
        return 0, 0
    return _apply(WalletScope(wallets=wallet_ids))


def apply_to_pairs(pairs):
    """apply_to_wallets for only these (wallet_id, token_id) histories (an import knows which it touched)."""
    pairs = sorted({(int(w), int(t)) for w, t in pairs})
    if not pairs:
        return 0, 0
    return _apply(WalletScope(wallets=[w for w, _ in pairs], tokens=[t for _, t in pairs]))


def recalculate_wallet(wallet_id):
    """Repair one wallet's balances from its history, in its own transaction."""
    started = time.monotonic()
    check_wallet_exists(wallet_id)
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
                scope = WalletScope(id_range=(ids[0], ids[-1]))
                cursor.execute(RECALCULATE_WORK_MEM_SQL)
                _lock_wallets(cursor, scope)
                written, removed, negatives = _write(cursor, scope)
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
