"""The bare SQL each job is compared with: one plain statement that writes the same rows.

Bare statements write into tables of the same shape, indexes, constraints and foreign keys as the
job's (CREATE TABLE … (LIKE … INCLUDING ALL) plus the foreign keys, which LIKE does not copy), so
the difference is what the job adds: batching, locking, run bookkeeping, its process, its plan.
They compute the same values (the same price rule, the same exact rounding), and the benchmark
checks that the rows are identical.
"""

from psycopg import sql

BARE_SNAPSHOT = "bench_bare_snapshot"
# The floor of the ledger (issue 10): the same shape as snapshots_balance, no foreign keys, emptied
# before each measurement.
FLOOR_BALANCE = "bench_floor_balance"


def average_sql(value, qty):
    """The ledger's exact average, rounded once to 18 places (snapshots.services.ledger.average_sql,
    repeated here because importing it needs a configured Django): the rows must be identical."""
    scaled = f"({value} * 1000000000000000000)"
    return (
        f"((div({scaled}, {qty}) + CASE WHEN 2 * mod({scaled}, {qty}) >= {qty} THEN 1 ELSE 0 END)"
        " * 0.000000000000000001)"
    )


_ACQ = "t.kind IN ('buy', 'transfer_in')"
_DISP = "t.kind IN ('sell', 'transfer_out')"

_FOREIGN_KEYS_SQL = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = %s::regclass AND contype = 'f'
"""


def create_tables(conn):
    """An empty copy of snapshots_balancesnapshot (foreign keys included) and the ledger's floor table."""
    for bare, real in ((BARE_SNAPSHOT, "snapshots_balancesnapshot"),):
        table = sql.Identifier(bare)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(table, sql.Identifier(real)))
        for name, definition in conn.execute(_FOREIGN_KEYS_SQL, [real]).fetchall():
            # The definition is PostgreSQL's own text for the constraint (pg_get_constraintdef).
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    table, sql.Identifier(f"bare_{name}"), sql.SQL(definition)
                )
            )
    floor = sql.Identifier(FLOOR_BALANCE)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(floor))
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE snapshots_balance INCLUDING ALL)").format(floor))


# The floor of recalculate (issue 10): one GROUP BY over the confirmed transactions (of {where})
# INSERTed into an empty table of the balance's shape without foreign keys. It computes what a
# GROUP BY can (amounts, totals, the trade statistics); the ledger's cost basis and realized PnL
# need the walk in ledger order on top of it.
FLOOR_SQL = f"""
INSERT INTO {FLOOR_BALANCE}
    (wallet_id, token_id, amount, total_in, total_out, avg_buy_price_usd, avg_sell_price_usd,
     realized_pnl_usd, priced_in_qty, priced_in_value_usd, updated_at)
SELECT wallet_id, token_id, total_in - total_out, total_in, total_out,
       {average_sql("buy_value", "buy_qty")}, {average_sql("sell_value", "sell_qty")},
       0, COALESCE(buy_qty, 0), COALESCE(buy_value, 0), now()
FROM (
    SELECT t.wallet_id, t.token_id,
           SUM(CASE WHEN {_ACQ} THEN t.amount ELSE 0 END) AS total_in,
           SUM(CASE WHEN {_DISP} THEN t.amount ELSE 0 END) AS total_out,
           SUM(t.amount * t.price_usd) FILTER (WHERE {_ACQ}) AS buy_value,
           SUM(t.amount) FILTER (WHERE {_ACQ} AND t.price_usd IS NOT NULL) AS buy_qty,
           SUM(t.amount * t.price_usd) FILTER (WHERE {_DISP}) AS sell_value,
           SUM(t.amount) FILTER (WHERE {_DISP} AND t.price_usd IS NOT NULL) AS sell_qty
    FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND {{where}}
    GROUP BY t.wallet_id, t.token_id
) sums
"""

# The price rule of docs/snapshots.md, once per token.
_PRICES_CTE = """
prices AS MATERIALIZED (
    SELECT tk.id AS token_id, COALESCE(
        (SELECT p.price_usd FROM bagtracker_price p
         WHERE p.token_id = tk.id AND p.as_of <= %(as_of)s ORDER BY p.as_of DESC LIMIT 1),
        (SELECT t.price_usd FROM bagtracker_transaction t
         WHERE t.token_id = tk.id AND t.status = 'confirmed' AND t.price_usd IS NOT NULL
           AND t.timestamp <= %(as_of)s ORDER BY t.timestamp DESC, t.id DESC LIMIT 1)
    ) AS price_usd
    FROM bagtracker_token tk
)"""

_UPSERT_SNAPSHOT = f"""
INSERT INTO {BARE_SNAPSHOT} AS s
    (wallet_id, token_id, period, as_of, amount, price_usd, value_usd, avg_buy_price_usd, source, created_at)
SELECT wallet_id, token_id, %(period)s, %(as_of)s, amount, price_usd, round(amount * price_usd, 18), avg_buy,
       %(source)s, now()
FROM rows
WHERE amount > %(dust)s
ON CONFLICT (period, as_of, wallet_id, token_id) DO UPDATE SET
    amount = EXCLUDED.amount, price_usd = EXCLUDED.price_usd, value_usd = EXCLUDED.value_usd,
    avg_buy_price_usd = EXCLUDED.avg_buy_price_usd, source = EXCLUDED.source
WHERE (s.amount, s.price_usd, s.value_usd, s.avg_buy_price_usd)
      IS DISTINCT FROM (EXCLUDED.amount, EXCLUDED.price_usd, EXCLUDED.value_usd, EXCLUDED.avg_buy_price_usd)
"""

# A snapshot of the current ledger (an hourly run): the balances, less what happened since the
# boundary.
SNAPSHOT_SQL = f"""
WITH {_PRICES_CTE}, recent AS (
    SELECT t.wallet_id, t.token_id,
           SUM(CASE WHEN {_ACQ} THEN t.amount ELSE -t.amount END) AS net,
           SUM(t.amount) FILTER (WHERE {_ACQ} AND t.price_usd IS NOT NULL) AS qty,
           SUM(t.amount * t.price_usd) FILTER (WHERE {_ACQ}) AS value
    FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND t.timestamp >= %(as_of)s
    GROUP BY t.wallet_id, t.token_id
), rows AS (
    SELECT b.wallet_id, b.token_id, b.amount - COALESCE(r.net, 0) AS amount, p.price_usd,
           CASE WHEN r.qty IS NULL THEN b.avg_buy_price_usd
                WHEN b.priced_in_qty > r.qty
                THEN {average_sql("(b.priced_in_value_usd - r.value)", "(b.priced_in_qty - r.qty)")}
           END AS avg_buy
    FROM snapshots_balance b
    JOIN bagtracker_wallet w ON w.id = b.wallet_id AND w.is_active
    LEFT JOIN recent r ON r.wallet_id = b.wallet_id AND r.token_id = b.token_id
    JOIN prices p ON p.token_id = b.token_id
)
{_UPSERT_SNAPSHOT}
"""

# The bare counterpart of the naive ORM loops (bench/naive_orm.py): the first N balances as they
# are, priced, into the bare table.
FIRST_BALANCES_SQL = f"""
WITH {_PRICES_CTE}, rows AS (
    SELECT b.wallet_id, b.token_id, b.amount, p.price_usd, b.avg_buy_price_usd AS avg_buy
    FROM snapshots_balance b
    JOIN prices p ON p.token_id = b.token_id
    WHERE b.amount > %(dust)s
    ORDER BY b.wallet_id, b.token_id
    LIMIT %(limit)s
)
{_UPSERT_SNAPSHOT}
"""

# One backfill boundary, from scratch: every confirmed transaction of the wallets before as_of.
BACKFILL_BOUNDARY_SQL = f"""
WITH {_PRICES_CTE}, sums AS (
    SELECT t.wallet_id, t.token_id,
           SUM(CASE WHEN {_ACQ} THEN t.amount ELSE -t.amount END) AS amount,
           SUM(t.amount) FILTER (WHERE {_ACQ} AND t.price_usd IS NOT NULL) AS qty,
           SUM(t.amount * t.price_usd) FILTER (WHERE {_ACQ}) AS value
    FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND t.timestamp < %(as_of)s AND t.wallet_id BETWEEN %(first)s AND %(last)s
    GROUP BY t.wallet_id, t.token_id
), rows AS (
    SELECT s.wallet_id, s.token_id, s.amount, p.price_usd, {average_sql("s.value", "s.qty")} AS avg_buy
    FROM sums s
    JOIN bagtracker_wallet w ON w.id = s.wallet_id AND w.is_active
    JOIN prices p ON p.token_id = s.token_id
)
{_UPSERT_SNAPSHOT}
"""

DELETE_EXPIRED_SQL = "DELETE FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of < %(cutoff)s"

_COLUMNS = "wallet_id, token_id, period, as_of, amount, price_usd, value_usd, avg_buy_price_usd"

# Rows of the job's table and of the bare table that the other lacks (0 and 0: identical).
DIFFERENCE_SQL = f"""
SELECT
  (SELECT count(*) FROM (SELECT {_COLUMNS} FROM snapshots_balancesnapshot WHERE {{where}}
                         EXCEPT ALL SELECT {_COLUMNS} FROM {BARE_SNAPSHOT} WHERE {{where}}) a),
  (SELECT count(*) FROM (SELECT {_COLUMNS} FROM {BARE_SNAPSHOT} WHERE {{where}}
                         EXCEPT ALL SELECT {_COLUMNS} FROM snapshots_balancesnapshot WHERE {{where}}) b)
"""

# What a GROUP BY computes too (the cost basis and realized PnL need the ledger's walk).
_BALANCE_COLUMNS = (
    "wallet_id, token_id, amount, total_in, total_out, avg_buy_price_usd, avg_sell_price_usd, "
    "priced_in_qty, priced_in_value_usd"
)
BALANCE_DIFFERENCE_SQL = f"""
SELECT
  (SELECT count(*) FROM (SELECT {_BALANCE_COLUMNS} FROM snapshots_balance WHERE {{where}}
                         EXCEPT ALL SELECT {_BALANCE_COLUMNS} FROM {FLOOR_BALANCE}) a),
  (SELECT count(*) FROM (SELECT {_BALANCE_COLUMNS} FROM {FLOOR_BALANCE}
                         EXCEPT ALL SELECT {_BALANCE_COLUMNS} FROM snapshots_balance WHERE {{where}}) b)
"""
