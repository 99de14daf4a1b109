"""The SQL that writes one snapshot (period, as_of): a single statement, so it reads one consistent
view of the ledger and writes every row of the boundary, and its wallet summaries, at once.

The ledger as of the boundary (docs/ledger.md, "As of a boundary"):

- a (wallet, token) with no confirmed transaction at or after the boundary is its Balance, read as
  it is (amount, cost basis, realized PnL, buy average, method) — almost every pair, for a current
  boundary;
- the pairs that moved since (found through the (timestamp) WHERE confirmed index) are walked from
  scratch over their transactions before the boundary by bt_ledger_walk, with the current method.

So every row equals a from-scratch computation over the transactions before the boundary
(tests/test_snapshot_ledger.py checks this for both methods).

Price at T (docs/snapshots.md): the latest Price with as_of <= T, else the price of the token's
latest priced confirmed transaction with timestamp <= T (any wallet), else null. It is looked up
once per token, through the (token, as_of) and (token, timestamp) indexes.

Wallet summaries (snapshots_walletsnapshot): one per active wallet of the scope with a confirmed
transaction before the boundary: value_usd sums its rows' values (rows without a price are left
out and counted in unpriced_rows), cost_basis_usd and realized_pnl_usd sum all its (wallet, token)
states, closed and dust positions included.

Writes: a boundary with no rows yet gets a plain INSERT … SELECT. A boundary taken before is
compared with its existing rows in the same statement: INSERT … ON CONFLICT DO UPDATE of the rows
that are new or differ (re-taking an unchanged snapshot writes nothing) and DELETE of the rows that
no longer qualify — data-modifying CTEs of one statement, touching disjoint rows. Summaries are
upserted the same way, and those of scoped wallets the boundary no longer covers are deleted.
"""

from psycopg import sql

from snapshots.cost_basis import current_method
from snapshots.services.ledger import average_sql

# The largest value NUMERIC(38,18) holds once rounded to 18 places, plus one unit in the last place.
MAX_VALUE_USD = sql.Literal("99999999999999999999.9999999999999999995")

# The rows of the snapshot and the wallets' states: CTEs that the statements below share.
# {scope_t}, {scope_b}, {priced_tokens} are conditions from WalletScope.
SNAPSHOT_ROWS_CTES = sql.SQL("""
WITH recent AS MATERIALIZED (
    -- The pairs that moved at or after the boundary: their Balance is not their state as of it.
    SELECT DISTINCT t.wallet_id, t.token_id
    FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND t.timestamp >= %(as_of)s AND {scope_t}
), walked AS (
    SELECT w.*
    FROM bt_ledger_walk(
        %(method)s, NULL, NULL,
        ARRAY(SELECT r.wallet_id FROM recent r ORDER BY r.wallet_id, r.token_id),
        ARRAY(SELECT r.token_id FROM recent r ORDER BY r.wallet_id, r.token_id),
        %(as_of)s
    ) w
), prices AS MATERIALIZED (
    -- MATERIALIZED: one lookup per token, never one per row.
    SELECT tk.id AS token_id, COALESCE(
        (SELECT p.price_usd FROM bagtracker_price p
         WHERE p.token_id = tk.id AND p.as_of <= %(as_of)s
         ORDER BY p.as_of DESC LIMIT 1),
        (SELECT t.price_usd FROM bagtracker_transaction t
         WHERE t.token_id = tk.id AND t.status = 'confirmed' AND t.price_usd IS NOT NULL
           AND t.timestamp <= %(as_of)s
         ORDER BY t.timestamp DESC, t.id DESC LIMIT 1)
    ) AS price_usd
    FROM bagtracker_token tk
    WHERE {priced_tokens}
), state AS MATERIALIZED (
    -- Every (wallet, token) of the scope's active wallets with a confirmed transaction before as_of.
    SELECT b.wallet_id, b.token_id, a.amount, a.avg_buy, a.cost_basis, a.realized, a.method,
           a.amount > %(dust)s AS is_row
    FROM snapshots_balance b
    JOIN bagtracker_wallet wa ON wa.id = b.wallet_id AND (wa.is_active OR {covered})
    LEFT JOIN recent r ON r.wallet_id = b.wallet_id AND r.token_id = b.token_id
    LEFT JOIN walked w ON w.wallet_id = b.wallet_id AND w.token_id = b.token_id
    CROSS JOIN LATERAL (
        -- Unmoved pairs read their Balance; moved ones their walk (no row: nothing before as_of).
        SELECT CASE WHEN r.wallet_id IS NULL THEN b.amount ELSE w.amount END AS amount,
               CASE WHEN r.wallet_id IS NULL THEN b.avg_buy_price_usd
                    WHEN w.priced_in_qty > 0 THEN {avg_buy} END AS avg_buy,
               CASE WHEN r.wallet_id IS NULL THEN b.cost_basis_usd ELSE w.cost_basis END AS cost_basis,
               CASE WHEN r.wallet_id IS NULL THEN b.realized_pnl_usd ELSE w.realized END AS realized,
               CASE WHEN r.wallet_id IS NULL THEN b.cost_basis_method ELSE %(method)s END AS method
    ) a
    WHERE (r.wallet_id IS NULL OR w.wallet_id IS NOT NULL) AND {scope_b}
), snapshot AS (
    SELECT s.wallet_id, s.token_id, s.amount, p.price_usd,
           -- A value that does not fit NUMERIC(38,18) (>= 10^20 USD: a spam token's absurd price)
           -- is unknown, rather than a failure of every wallet's snapshot at this boundary.
           CASE WHEN abs(s.amount * p.price_usd) < {max_value} THEN round(s.amount * p.price_usd, 18) END
               AS value_usd,
           s.avg_buy, s.cost_basis, s.realized, s.method
    FROM state s
    JOIN prices p ON p.token_id = s.token_id
    WHERE s.is_row
), summary AS (
    SELECT s.wallet_id,
           COALESCE(SUM(n.value_usd), 0) AS value_usd,
           count(n.wallet_id) AS rows,
           count(n.wallet_id) FILTER (WHERE n.value_usd IS NULL) AS unpriced_rows,
           SUM(s.cost_basis) AS cost_basis,
           SUM(s.realized) AS realized,
           -- One method, or '' when the wallet's tokens were computed with different ones.
           CASE WHEN min(s.method) = max(s.method) THEN min(s.method) ELSE '' END AS method
    FROM state s
    LEFT JOIN snapshot n ON n.wallet_id = s.wallet_id AND n.token_id = s.token_id
    GROUP BY s.wallet_id
)
""")

_ROW_COLUMNS = sql.SQL(
    "wallet_id, token_id, period, as_of, amount, price_usd, value_usd, avg_buy_price_usd, cost_basis_usd,"
    " realized_pnl_usd, cost_basis_method, source, created_at"
)


def _upsert_rows_from(rows):
    return sql.SQL("""
INSERT INTO snapshots_balancesnapshot AS s ({columns})
SELECT wallet_id, token_id, %(period)s, %(as_of)s, amount, price_usd, value_usd, avg_buy, cost_basis, realized,
       method, %(source)s, now()
FROM {rows}
ON CONFLICT (period, as_of, wallet_id, token_id) DO UPDATE SET
    amount = EXCLUDED.amount,
    price_usd = EXCLUDED.price_usd,
    value_usd = EXCLUDED.value_usd,
    avg_buy_price_usd = EXCLUDED.avg_buy_price_usd,
    cost_basis_usd = EXCLUDED.cost_basis_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    cost_basis_method = EXCLUDED.cost_basis_method,
    source = EXCLUDED.source
WHERE (s.amount, s.price_usd, s.value_usd, s.avg_buy_price_usd, s.cost_basis_usd, s.realized_pnl_usd,
       s.cost_basis_method)
      IS DISTINCT FROM (EXCLUDED.amount, EXCLUDED.price_usd, EXCLUDED.value_usd, EXCLUDED.avg_buy_price_usd,
                        EXCLUDED.cost_basis_usd, EXCLUDED.realized_pnl_usd, EXCLUDED.cost_basis_method)
""").format(columns=_ROW_COLUMNS, rows=rows)


UPSERT_SUMMARIES = sql.SQL("""
INSERT INTO snapshots_walletsnapshot AS m
    (wallet_id, period, as_of, value_usd, rows, unpriced_rows, cost_basis_usd, realized_pnl_usd, cost_basis_method,
     source, created_at)
SELECT wallet_id, %(period)s, %(as_of)s, value_usd, rows, unpriced_rows, cost_basis, realized, method, %(source)s,
       now()
FROM summary
ON CONFLICT (period, as_of, wallet_id) DO UPDATE SET
    value_usd = EXCLUDED.value_usd,
    rows = EXCLUDED.rows,
    unpriced_rows = EXCLUDED.unpriced_rows,
    cost_basis_usd = EXCLUDED.cost_basis_usd,
    realized_pnl_usd = EXCLUDED.realized_pnl_usd,
    cost_basis_method = EXCLUDED.cost_basis_method,
    source = EXCLUDED.source
WHERE (m.value_usd, m.rows, m.unpriced_rows, m.cost_basis_usd, m.realized_pnl_usd, m.cost_basis_method)
      IS DISTINCT FROM (EXCLUDED.value_usd, EXCLUDED.rows, EXCLUDED.unpriced_rows, EXCLUDED.cost_basis_usd,
                        EXCLUDED.realized_pnl_usd, EXCLUDED.cost_basis_method)
RETURNING 1
""")

# A boundary with no rows yet (the usual scheduled run): a plain INSERT … SELECT of its rows and its
# summaries, with nothing to compare and nothing stale. The advisory lock guarantees no one else
# writes it meanwhile.
WRITE_NEW_SNAPSHOT_SQL = sql.SQL("""{ctes}
, inserted AS ({rows} RETURNING 1
), summaries AS ({summaries})
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM summaries)
""")

# A boundary taken before: one full join of the new rows with the boundary's existing rows finds
# what differs (written), what is new (inserted) and what no longer qualifies (deleted by ctid:
# the whole statement sees one snapshot). Unchanged rows — usually all of them — cost a hash probe,
# not an ON CONFLICT index probe and row lock each.
REFRESH_SNAPSHOT_SQL = sql.SQL("""{ctes}
, existing AS (
    SELECT e.ctid AS tid, e.wallet_id, e.token_id, e.amount, e.price_usd, e.value_usd, e.avg_buy_price_usd,
           e.cost_basis_usd, e.realized_pnl_usd, e.cost_basis_method
    FROM snapshots_balancesnapshot e
    WHERE e.period = %(period)s AND e.as_of = %(as_of)s AND {scope_e}
), compared AS (
    SELECT n.*, e.tid AS existing_tid,
           n.wallet_id IS NOT NULL AS qualifies,
           n.wallet_id IS NOT NULL AND (
               e.wallet_id IS NULL
               OR (n.amount, n.price_usd, n.value_usd, n.avg_buy, n.cost_basis, n.realized, n.method)
                  IS DISTINCT FROM (e.amount, e.price_usd, e.value_usd, e.avg_buy_price_usd, e.cost_basis_usd,
                                    e.realized_pnl_usd, e.cost_basis_method)
           ) AS differs
    FROM snapshot n
    FULL JOIN existing e ON e.wallet_id = n.wallet_id AND e.token_id = n.token_id
), upserted AS ({rows} RETURNING 1
), removed AS (
    DELETE FROM snapshots_balancesnapshot
    WHERE ctid = ANY(ARRAY(SELECT existing_tid FROM compared WHERE NOT qualifies))
    RETURNING 1
), summaries AS ({summaries}
), summaries_removed AS (
    DELETE FROM snapshots_walletsnapshot m
    WHERE m.period = %(period)s AND m.as_of = %(as_of)s AND {scope_m}
      AND m.wallet_id NOT IN (SELECT wallet_id FROM summary)
    RETURNING 1
)
SELECT (SELECT count(*) FROM compared WHERE qualifies), (SELECT count(*) FROM upserted),
       (SELECT count(*) FROM removed), (SELECT count(*) FROM summaries), (SELECT count(*) FROM summaries_removed)
""")

# Re-taking a boundary hashes a million rows and holds them once (CTE): with the default 4MB
# work_mem both spill to disk. Server memory, for this transaction only.
SNAPSHOT_WORK_MEM = "256MB"
SNAPSHOT_WORK_MEM_SQL = sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(SNAPSHOT_WORK_MEM))

BOUNDARY_HAS_ROWS_SQL = sql.SQL(
    "SELECT EXISTS (SELECT 1 FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of = %(as_of)s)"
    " OR EXISTS (SELECT 1 FROM snapshots_walletsnapshot WHERE period = %(period)s AND as_of = %(as_of)s)"
)
COUNT_ROWS_SQL = sql.SQL(
    "SELECT count(*) FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of = %(as_of)s"
)

# Two workers never compute the same (period, as_of) at once: the second waits here for the first
# to commit. Key: (a constant namespace, a hash of "period:as_of"); a hash collision only
# serialises two unrelated boundaries, it never skips one.
LOCK_NAMESPACE = 0x534E4150  # "SNAP"
LOCK_BOUNDARY_SQL = sql.SQL("SELECT pg_advisory_xact_lock(%s, hashtext(%s))")


class WalletScope:
    """Which wallets a snapshot write covers: all, only some, or all but some."""

    def __init__(self, only=None, excluding=None, covered=None):
        self.only = None if only is None else sorted({int(w) for w in only})
        self.excluding = sorted({int(w) for w in excluding or ()})
        # Wallets the boundary covered when it was first taken: refreshed even if deactivated
        # since (docs/snapshots.md: the wallets a boundary covers are fixed when it is first taken).
        self.covered = sorted({int(w) for w in covered or ()})

    @property
    def is_everything(self):
        return self.only is None and not self.excluding

    def condition(self, table):
        """A condition on ``table``.wallet_id (psycopg.sql)."""
        column = sql.Identifier(table, "wallet_id")
        parts = []
        if self.only is not None:
            parts.append(sql.SQL("{} = ANY(%(only_wallets)s::bigint[])").format(column))
        if self.excluding:
            parts.append(sql.SQL("{} <> ALL(%(excluded_wallets)s::bigint[])").format(column))
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")

    def priced_tokens(self):
        """Which tokens need a price: those with a balance (in scope, when only a few wallets are)."""
        if self.only is not None:
            return sql.SQL("tk.id IN (SELECT b.token_id FROM snapshots_balance b WHERE {})").format(self.condition("b"))
        return sql.SQL("EXISTS (SELECT 1 FROM snapshots_balance b WHERE b.token_id = tk.id)")

    def covered_condition(self, table):
        """Whether ``table``.id is one of the covered wallets (psycopg.sql)."""
        if not self.covered:
            return sql.SQL("FALSE")
        return sql.SQL("{} = ANY(%(covered_wallets)s::bigint[])").format(sql.Identifier(table, "id"))

    def params(self):
        return {"only_wallets": self.only or [], "excluded_wallets": self.excluding, "covered_wallets": self.covered}


# A snapshot in progress also holds its period's key in shared mode, until it commits. A rebuild
# after a recalculation takes that key exclusively for an instant before it lists the boundaries
# to re-take: it waits for every snapshot that may have read the ledger before the repair, so it
# sees their boundaries (and re-takes them) instead of missing them and letting them commit rows
# of the damaged ledger after it. Snapshots never wait on each other for it (shared), and a
# ledger writer never waits at all.
PERIOD_NAMESPACE = 0x534E5050  # "SNPP"
SHARE_PERIOD_SQL = "SELECT pg_advisory_xact_lock_shared(%s, hashtext(%s))"
WAIT_PERIOD_SQL = "SELECT pg_advisory_lock(%s, hashtext(%s))"
RELEASE_PERIOD_SQL = "SELECT pg_advisory_unlock(%s, hashtext(%s))"


def lock_boundary(cursor, period, as_of):
    cursor.execute(SHARE_PERIOD_SQL, [PERIOD_NAMESPACE, period])
    cursor.execute(LOCK_BOUNDARY_SQL, [LOCK_NAMESPACE, f"{period}:{as_of.isoformat()}"])


def wait_for_snapshots_in_progress(cursor, period):
    """Return once every snapshot of ``period`` in progress when called has committed or rolled back."""
    cursor.execute(WAIT_PERIOD_SQL, [PERIOD_NAMESPACE, period])  # session-level: never outlives this call
    cursor.execute(RELEASE_PERIOD_SQL, [PERIOD_NAMESPACE, period])


def _statements(scope):
    """The (new boundary, refresh) statements for ``scope``."""
    ctes = SNAPSHOT_ROWS_CTES.format(
        scope_t=scope.condition("t"),
        scope_b=scope.condition("b"),
        priced_tokens=scope.priced_tokens(),
        covered=scope.covered_condition("wa"),
        avg_buy=average_sql("w.priced_in_value", "w.priced_in_qty"),
        max_value=MAX_VALUE_USD,
    )
    write_new = WRITE_NEW_SNAPSHOT_SQL.format(
        ctes=ctes, rows=_upsert_rows_from(sql.SQL("snapshot")), summaries=UPSERT_SUMMARIES
    )
    refresh = REFRESH_SNAPSHOT_SQL.format(
        ctes=ctes,
        rows=_upsert_rows_from(sql.SQL("compared WHERE differs")),
        summaries=UPSERT_SUMMARIES,
        scope_e=scope.condition("e"),
        scope_m=scope.condition("m"),
    )
    return write_new, refresh


def write_snapshot(cursor, period, as_of, source, dust, scope, method=None):
    """Write (period, as_of) for the wallets in ``scope``: its rows and its wallet summaries.
    Returns (rows, written, removed), counting rows.

    Call it holding lock_boundary(period, as_of), inside the transaction. The pairs that moved
    since the boundary are walked with ``method`` (default: BALANCE_COST_BASIS)."""
    params = {
        "period": period,
        "as_of": as_of,
        "source": source,
        "dust": dust,
        "method": method or current_method(),
        **scope.params(),
    }
    write_new, refresh = _statements(scope)
    cursor.execute(SNAPSHOT_WORK_MEM_SQL)
    cursor.execute(BOUNDARY_HAS_ROWS_SQL, params)
    if cursor.fetchone()[0]:
        cursor.execute(refresh, params)
        rows, written, removed, _, _ = cursor.fetchone()
    else:
        cursor.execute(write_new, params)
        rows, _ = cursor.fetchone()
        written, removed = rows, 0
    cursor.execute("SET LOCAL work_mem TO DEFAULT")  # in case the caller's transaction goes on
    return rows, written, removed


def count_rows(cursor, period, as_of):
    cursor.execute(COUNT_ROWS_SQL, {"period": period, "as_of": as_of})
    return cursor.fetchone()[0]
