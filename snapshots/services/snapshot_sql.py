"""The SQL that writes one snapshot (period, as_of): a single statement, so it reads one consistent
view of the ledger and writes every row of the boundary at once.

The ledger as of the boundary is the current Balance minus the confirmed transactions at or after
the boundary (an index range scan over recent history, not a scan of all of it):

    amount(as_of)        = balance.amount              − Σ signed qty   of txs with timestamp >= as_of
    priced_in_qty(as_of) = balance.priced_in_qty       − Σ qty          of priced acquisitions since
    priced_in_value      = balance.priced_in_value_usd − Σ qty·price    of priced acquisitions since
    avg_buy_price_usd    = priced_in_value / priced_in_qty rounded once to 18 places (ledger.average_sql),
                           null when no priced acquisition

Sums are exact (NUMERIC), so the subtraction gives the same numbers as a computation from scratch
over the transactions before the boundary (tests/test_snapshot_ledger.py checks this).

Price at T (docs/snapshots.md): the latest Price with as_of <= T, else the price of the token's
latest priced confirmed transaction with timestamp <= T (any wallet), else null. It is looked up
once per token, through the (token, as_of) and (token, timestamp) indexes.

Writes: a boundary with no rows yet gets a plain INSERT … SELECT. A boundary taken before is
compared with its existing rows in the same statement: INSERT … ON CONFLICT DO UPDATE of the rows
that are new or differ (re-taking an unchanged snapshot writes nothing) and DELETE of the rows that
no longer qualify — data-modifying CTEs of one statement, touching disjoint rows.
"""

from snapshots.services.ledger import average_sql

_ACQUISITION = "t.kind IN ('buy', 'transfer_in')"
# The largest value NUMERIC(38,18) holds once rounded to 18 places, plus one unit in the last place.
MAX_VALUE_USD = "99999999999999999999.9999999999999999995"

# The rows of the snapshot: CTEs that the two statements below share.
SNAPSHOT_ROWS_CTES = f"""
WITH recent AS (
    SELECT t.wallet_id, t.token_id,
           SUM(CASE WHEN {_ACQUISITION} THEN t.amount ELSE -t.amount END) AS net,
           SUM(t.amount) FILTER (WHERE {_ACQUISITION} AND t.price_usd IS NOT NULL) AS priced_in_qty,
           SUM(t.amount * t.price_usd) FILTER (WHERE {_ACQUISITION}) AS priced_in_value
    FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND t.timestamp >= %(as_of)s AND {{scope_t}}
    GROUP BY t.wallet_id, t.token_id
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
    WHERE {{priced_tokens}}
), snapshot AS (
    SELECT b.wallet_id, b.token_id, a.amount, p.price_usd,
           -- A value that does not fit NUMERIC(38,18) (>= 10^20 USD: a spam token's absurd price)
           -- is unknown, rather than a failure of every wallet's snapshot at this boundary.
           CASE WHEN abs(a.amount * p.price_usd) < {MAX_VALUE_USD} THEN round(a.amount * p.price_usd, 18) END
               AS value_usd,
           a.avg_buy
    FROM snapshots_balance b
    JOIN bagtracker_wallet w ON w.id = b.wallet_id AND (w.is_active OR {{covered}})
    LEFT JOIN recent r ON r.wallet_id = b.wallet_id AND r.token_id = b.token_id
    CROSS JOIN LATERAL (
        -- Most balances saw nothing since the boundary: their current values are the as-of ones
        -- (the same sums, so the same rounded average), and no arithmetic is spent on them.
        SELECT CASE WHEN r.net IS NULL THEN b.amount ELSE b.amount - r.net END AS amount,
               CASE WHEN r.priced_in_qty IS NULL THEN b.avg_buy_price_usd
                    WHEN b.priced_in_qty > r.priced_in_qty
                    THEN {
    average_sql("(b.priced_in_value_usd - r.priced_in_value)", "(b.priced_in_qty - r.priced_in_qty)")
}
               END AS avg_buy
    ) a
    JOIN prices p ON p.token_id = b.token_id
    WHERE a.amount > %(dust)s AND {{scope_b}}
)
"""


def _upsert_from(rows):
    return f"""
INSERT INTO snapshots_balancesnapshot AS s
    (wallet_id, token_id, period, as_of, amount, price_usd, value_usd, avg_buy_price_usd, source, created_at)
SELECT wallet_id, token_id, %(period)s, %(as_of)s, amount, price_usd, value_usd, avg_buy, %(source)s, now()
FROM {rows}
ON CONFLICT (period, as_of, wallet_id, token_id) DO UPDATE SET
    amount = EXCLUDED.amount,
    price_usd = EXCLUDED.price_usd,
    value_usd = EXCLUDED.value_usd,
    avg_buy_price_usd = EXCLUDED.avg_buy_price_usd,
    source = EXCLUDED.source
WHERE (s.amount, s.price_usd, s.value_usd, s.avg_buy_price_usd)
      IS DISTINCT FROM (EXCLUDED.amount, EXCLUDED.price_usd, EXCLUDED.value_usd, EXCLUDED.avg_buy_price_usd)
"""


# A boundary with no rows yet (the usual scheduled run): a plain INSERT … SELECT, streamed, with
# nothing to compare and nothing stale. The advisory lock guarantees no one else writes it meanwhile.
WRITE_NEW_SNAPSHOT_SQL = SNAPSHOT_ROWS_CTES + _upsert_from("snapshot")

# A boundary taken before: one full join of the new rows with the boundary's existing rows finds
# what differs (written), what is new (inserted) and what no longer qualifies (deleted by ctid:
# the whole statement sees one snapshot). Unchanged rows — usually all of them — cost a hash probe,
# not an ON CONFLICT index probe and row lock each.
REFRESH_SNAPSHOT_SQL = (
    SNAPSHOT_ROWS_CTES
    + """\
, existing AS (
    SELECT e.ctid AS tid, e.wallet_id, e.token_id, e.amount, e.price_usd, e.value_usd, e.avg_buy_price_usd
    FROM snapshots_balancesnapshot e
    WHERE e.period = %(period)s AND e.as_of = %(as_of)s AND {scope_e}
), compared AS (
    SELECT n.*, e.tid AS existing_tid,
           n.wallet_id IS NOT NULL AS qualifies,
           n.wallet_id IS NOT NULL AND (
               e.wallet_id IS NULL
               OR (n.amount, n.price_usd, n.value_usd, n.avg_buy)
                  IS DISTINCT FROM (e.amount, e.price_usd, e.value_usd, e.avg_buy_price_usd)
           ) AS differs
    FROM snapshot n
    FULL JOIN existing e ON e.wallet_id = n.wallet_id AND e.token_id = n.token_id
), upserted AS ("""
    + _upsert_from("compared WHERE differs")
    + """\
RETURNING 1
), removed AS (
    DELETE FROM snapshots_balancesnapshot
    WHERE ctid = ANY(ARRAY(SELECT existing_tid FROM compared WHERE NOT qualifies))
    RETURNING 1
)
SELECT (SELECT count(*) FROM compared WHERE qualifies), (SELECT count(*) FROM upserted),
       (SELECT count(*) FROM removed)
"""
)

# Re-taking a boundary hashes a million rows and holds them once (CTE): with the default 4MB
# work_mem both spill to disk. Server memory, for this transaction only.
SNAPSHOT_WORK_MEM = "256MB"
SNAPSHOT_WORK_MEM_SQL = f"SET LOCAL work_mem = '{SNAPSHOT_WORK_MEM}'"

BOUNDARY_HAS_ROWS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of = %(as_of)s)"
)
COUNT_ROWS_SQL = "SELECT count(*) FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of = %(as_of)s"

# Two workers never compute the same (period, as_of) at once: the second waits here for the first
# to commit. Key: (a constant namespace, a hash of "period:as_of"); a hash collision only
# serialises two unrelated boundaries, it never skips one.
LOCK_NAMESPACE = 0x534E4150  # "SNAP"
LOCK_BOUNDARY_SQL = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"


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

    def condition(self, column):
        parts = []
        if self.only is not None:
            parts.append(f"{column} = ANY(%(only_wallets)s::bigint[])")
        if self.excluding:
            parts.append(f"{column} <> ALL(%(excluded_wallets)s::bigint[])")
        return " AND ".join(parts) or "TRUE"

    def priced_tokens(self):
        """Which tokens need a price: those with a balance (in scope, when only a few wallets are)."""
        if self.only is not None:
            return f"tk.id IN (SELECT b.token_id FROM snapshots_balance b WHERE {self.condition('b.wallet_id')})"
        return "EXISTS (SELECT 1 FROM snapshots_balance b WHERE b.token_id = tk.id)"

    def covered_condition(self, column):
        return f"{column} = ANY(%(covered_wallets)s::bigint[])" if self.covered else "FALSE"

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


def write_snapshot(cursor, period, as_of, source, dust, scope):
    """Write (period, as_of) for the wallets in ``scope``. Returns (rows, written, removed).

    Call it holding lock_boundary(period, as_of), inside the transaction."""
    params = {"period": period, "as_of": as_of, "source": source, "dust": dust, **scope.params()}
    conditions = {
        "scope_t": scope.condition("t.wallet_id"),
        "scope_b": scope.condition("b.wallet_id"),
        "scope_s": scope.condition("s.wallet_id"),
        "scope_e": scope.condition("e.wallet_id"),
        "priced_tokens": scope.priced_tokens(),
        "covered": scope.covered_condition("w.id"),
    }
    cursor.execute(SNAPSHOT_WORK_MEM_SQL)
    cursor.execute(BOUNDARY_HAS_ROWS_SQL, params)
    if cursor.fetchone()[0]:
        cursor.execute(REFRESH_SNAPSHOT_SQL.format(**conditions), params)
        rows, written, removed = cursor.fetchone()
    else:
        cursor.execute(WRITE_NEW_SNAPSHOT_SQL.format(**conditions), params)
        rows, written, removed = cursor.rowcount, cursor.rowcount, 0
    cursor.execute("SET LOCAL work_mem TO DEFAULT")  # in case the caller's transaction goes on
    return rows, written, removed


def count_rows(cursor, period, as_of):
    cursor.execute(COUNT_ROWS_SQL, {"period": period, "as_of": as_of})
    return cursor.fetchone()[0]
