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

Storage (docs/snapshots.md, "How it is stored"): the boundaries taken (snapshots_boundary); the
rows as state intervals (snapshots_balancestate: a (wallet, token)'s state at every taken boundary
of the period that covers the wallet with valid_from <= as_of < valid_to); the wallet summaries'
price-independent parts as intervals too (snapshots_walletstate: the wallet is covered at every
taken boundary its intervals hold); one price per (boundary, token) (snapshots_boundaryprice) and
the overview's totals per (boundary, token) (snapshots_boundarytotal). snapshots_balancesnapshot
and snapshots_walletsnapshot are views that expand them, values computed there.

Wallet summaries: one per active wallet of the scope with a confirmed transaction before the
boundary: value_usd sums its rows' values (rows without a price are left out and counted in
unpriced_rows), cost_basis_usd and realized_pnl_usd sum all its (wallet, token) states, closed and
dust positions included.

Writes: one statement compares the new rows and summaries with the stored intervals that hold the
boundary (hash joins) and writes only the keys that differ (WRITE_SNAPSHOT_SQL, INTERVAL_WRITES_SQL),
upserts the prices and keeps the totals — data-modifying CTEs of one statement, touching disjoint
rows. Re-taking an unchanged boundary writes nothing.
"""

import enum

from psycopg import sql

from snapshots.cost_basis import current_method
from snapshots.services.ledger import average_sql
from snapshots.services.scope import EVERY_WALLET, WalletScope

# The largest value NUMERIC(38,18) holds once rounded to 18 places, plus one unit in the last place.
MAX_VALUE_USD = sql.Literal("99999999999999999999.9999999999999999995")

# Price at as_of (docs/snapshots.md, "Prices") of the tokens {priced_tokens} names, one lookup per token.
PRICES_SQL = sql.SQL("""
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
""")

# The rows of the snapshot and the wallets' states: CTEs that the statements below share.
# {scope_t}, {scope_b}, {covered} are conditions from a WalletScope (services/scope.py); {prices} is PRICES_SQL.
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
    {prices}
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
)
""")

# The wallet summaries (after the states' writes, INTERVAL_WRITES_SQL, whose CTEs they may read):
# from all the wallet's (wallet, token) states, closed and dust positions included. Its rows are its
# states that are rows (is_row): `snapshot` is exactly those, since `prices` has a row (a price or
# NULL) for every token of the scope's balances, which `state` reads — counted without joining them
# (at 1,000,000 balances the join sorted both a million rows twice).
SUMMARY_SQL = sql.SQL("""
, summary AS (
    SELECT s.wallet_id,
           count(*) FILTER (WHERE s.is_row) AS rows,
           SUM(s.cost_basis) AS cost_basis,
           SUM(s.realized) AS realized,
           -- One method, or '' when the wallet's tokens were computed with different ones.
           CASE WHEN min(s.method) = max(s.method) THEN min(s.method) ELSE '' END AS method
    FROM state s
    GROUP BY s.wallet_id
)""")

# A pair scope's summaries (the fast path, docs/snapshots.md "What a boundary costs"): rows, cost
# basis and realized PnL are sums over the wallet's tokens of values rounded each, so the summary at
# as_of is the one holding as_of (still p's, open) − the moved pairs' stored states there (`existing`:
# every moved pair had one, a row) + their states now (`state`, dust included), exactly. The method
# is carried: the caller sends only wallets whose method is not '' and whose moved pairs keep it.
SUMMARY_BY_DIFFERENCE_SQL = sql.SQL("""
, summary AS (
    SELECT ws.wallet_id,
           ws.rows - COALESCE(o.rows, 0) + COALESCE(n.rows, 0) AS rows,
           ws.cost_basis - COALESCE(o.cost_basis, 0) + COALESCE(n.cost_basis, 0) AS cost_basis,
           ws.realized - COALESCE(o.realized, 0) + COALESCE(n.realized, 0) AS realized,
           ws.method
    FROM snapshots_walletstate ws
    LEFT JOIN (
        SELECT e.wallet_id, count(*) AS rows, SUM(e.cost_basis) AS cost_basis, SUM(e.realized) AS realized
        FROM existing e GROUP BY e.wallet_id
    ) o ON o.wallet_id = ws.wallet_id
    LEFT JOIN (
        SELECT s.wallet_id, count(*) FILTER (WHERE s.is_row) AS rows, SUM(s.cost_basis) AS cost_basis,
               SUM(s.realized) AS realized
        FROM state s
        GROUP BY s.wallet_id
    ) n ON n.wallet_id = ws.wallet_id
    WHERE ws.period = %(period)s AND ws.valid_from <= %(as_of)s AND ws.valid_to > %(as_of)s AND {scope_ws}
)""")

# The boundary's rows and its wallet summaries are stored as states valid over intervals of taken
# boundaries (docs/snapshots.md, "How it is stored", "Wallet summaries as intervals"); both are
# written by this one template. The new states are compared with the intervals that hold the
# boundary (a hash join): only the keys whose state differs are written. For each, the interval E
# holding as_of is cut to [E.from, as_of) — deleted when that is empty, rewritten in place when E
# starts at as_of — its right part is kept from g, and the new state is inserted as [as_of, g); g is
# the next taken boundary after as_of (snapshots_boundary), else infinity (always, for the newest
# boundary). Every CTE writes disjoint rows (the statement sees one snapshot). {p} prefixes the CTE
# names; {key}, {vals} are column lists (psycopg.sql); {new} names the CTE of the new states.
INTERVAL_WRITES_SQL = sql.SQL("""
, {p}existing AS MATERIALIZED (
    SELECT {e_key}, e.valid_from, e.valid_to, {e_vals}, e.source, e.created_at
    FROM {table} e
    WHERE e.period = %(period)s AND e.valid_to > %(as_of)s AND e.valid_from <= %(as_of)s AND {scope_e}{open_only}
), {p}changed AS MATERIALIZED (
    SELECT {key_either}, n.wallet_id IS NOT NULL AS has_new, {n_vals},
           e.valid_from AS e_from, e.valid_to AS e_to, {e_vals_as}, e.source AS e_source,
           e.created_at AS e_created_at
    FROM {new} n
    FULL JOIN {p}existing e ON {key_join}
    WHERE n.wallet_id IS NULL OR e.valid_from IS NULL OR ({n_vals}) IS DISTINCT FROM ({e_vals})
), {p}ending AS (
    SELECT EXISTS (SELECT 1 FROM {table} x WHERE x.period = %(period)s AND x.valid_to = %(as_of)s) AS any
), {p}cut AS MATERIALIZED (
    -- Equal neighbours merge instead of fragmenting: the key's interval ending at as_of (when none
    -- holds as_of, or the one holding it starts there) and, when none holds as_of, the one starting
    -- at g. So a newest-first catch-up or a healing pass leaves one interval per unchanged run.
    SELECT c.*, (SELECT t.g FROM next_taken t) AS g, pv.valid_from AS p_from, nx.valid_to AS nx_to
    FROM {p}changed c
    LEFT JOIN LATERAL (
        SELECT x.valid_from FROM {table} x
        WHERE (SELECT l.any FROM {p}ending l) AND c.has_new AND (c.e_from IS NULL OR c.e_from = %(as_of)s)
          AND x.period = %(period)s AND x.valid_to = %(as_of)s AND {x_key_c}
          AND ({x_vals}) IS NOT DISTINCT FROM ({c_vals})
    ) pv ON true
    LEFT JOIN LATERAL (
        SELECT x.valid_to FROM {table} x
        WHERE c.has_new AND c.e_from IS NULL AND (SELECT t.g FROM next_taken t) < 'infinity'
          AND x.period = %(period)s AND {x_key_c} AND x.valid_from = (SELECT t.g FROM next_taken t)
          AND ({x_vals}) IS NOT DISTINCT FROM ({c_vals})
    ) nx ON true
), {p}closed AS ({closed}
), {p}dropped AS (
    DELETE FROM {table} s
    USING {p}cut c
    WHERE {s_key_c} AND s.valid_from = c.e_from AND c.e_from = %(as_of)s AND (NOT c.has_new OR c.p_from IS NOT NULL)
      AND {holding}
    RETURNING 1
), {p}rewritten AS (
    UPDATE {table} s
    SET valid_to = c.g, {set_vals}, source = %(source)s, created_at = now()
    FROM {p}cut c
    WHERE {s_key_c} AND s.valid_from = c.e_from AND c.e_from = %(as_of)s AND c.has_new AND c.p_from IS NULL
      AND {holding}
    RETURNING 1
), {p}extended_back AS (
    UPDATE {table} s SET valid_to = COALESCE(c.nx_to, c.g)
    FROM {p}cut c
    WHERE {s_key_c} AND s.valid_from = c.p_from AND s.period = %(period)s AND s.valid_to = %(as_of)s
    RETURNING 1
), {p}merged_away AS (
    DELETE FROM {table} s
    USING {p}cut c WHERE {s_key_c} AND s.valid_from = c.g AND c.nx_to IS NOT NULL AND c.p_from IS NOT NULL AND {holding}
    RETURNING 1
), {p}extended_forward AS (
    UPDATE {table} s SET valid_from = %(as_of)s
    FROM {p}cut c WHERE {s_key_c} AND s.valid_from = c.g AND c.nx_to IS NOT NULL AND c.p_from IS NULL AND {holding}
    RETURNING 1
), {p}inserted AS (
    INSERT INTO {table} (period, {key}, valid_from, valid_to, {vals}, source, created_at)
    SELECT %(period)s, {key}, %(as_of)s, g, {vals}, %(source)s, now()
    FROM {p}cut WHERE has_new AND (e_from IS NULL OR e_from < %(as_of)s) AND p_from IS NULL AND nx_to IS NULL
    UNION ALL
    SELECT %(period)s, {key}, g, e_to, {e_vals_named}, e_source, e_created_at
    FROM {p}cut WHERE e_from IS NOT NULL AND g < e_to
    RETURNING 1
), {p}writes AS (
    SELECT (SELECT count(*) FROM {p}closed) + (SELECT count(*) FROM {p}dropped) + (SELECT count(*) FROM {p}rewritten)
           + (SELECT count(*) FROM {p}extended_back) + (SELECT count(*) FROM {p}merged_away)
           + (SELECT count(*) FROM {p}extended_forward) + (SELECT count(*) FROM {p}inserted) AS n
)""")


# The rows the writes above touch by key all lie in the period and end after as_of (an interval holding
# as_of, or the neighbour from g); the one extended back ends at as_of. Said, so that a partitioned
# table is pruned to those partitions (by LIST period, RANGE valid_to) instead of joined whole.
HOLDING_AFTER_SQL = sql.SQL("s.period = %(period)s AND s.valid_to > %(as_of)s")
# The fast path's new newest boundary (_write_moved): every interval holding it is open (each state
# starts at a taken boundary, none is taken after the previous one, which the open ones hold): only
# the open partition is read.
HOLDING_OPEN_SQL = sql.SQL("s.period = %(period)s AND s.valid_to = 'infinity'")
# The intervals holding as_of that changed are closed at as_of. Joined to the cut by hashing the
# table (a whole boundary: most of them), or, for the fast path's few moved pairs, looked up one by
# one in the primary key: the planner, estimating the moved pairs ten times too many, hashed the
# million open states to close 10,000 of them (640 ms of a 1.9 s statement at 1,000,000 balances).
# So the pairs come as arrays unnested (estimated at 10 rows: a nested loop of key lookups), one
# array per key column and one of the intervals' starts, all in the same order. (By their wallets
# alone, `wallet_id = ANY(…)`, the lookup read every token of those wallets: 100,000 states, 226 ms.)
CLOSE_JOINED_SQL = sql.SQL("""
    UPDATE {table} s SET valid_to = %(as_of)s
    FROM {p}cut c WHERE {s_key_c} AND s.valid_from = c.e_from AND c.e_from < %(as_of)s AND {holding}
    RETURNING 1""")
CLOSE_BY_KEY_SQL = sql.SQL("""
    UPDATE {table} s SET valid_to = %(as_of)s
    FROM unnest({arrays}) AS k({key}, e_from)
    WHERE {s_key_k} AND s.valid_from = k.e_from AND {holding}
    RETURNING 1""")
CUT_ARRAY_SQL = sql.SQL("ARRAY(SELECT c.{column} FROM {p}cut c WHERE c.e_from < %(as_of)s ORDER BY {c_key}, c.e_from)")


def _columns(prefix, names, alias=None):
    """``prefix.a, prefix.b`` (``AS alias_a`` … when ``alias``)."""
    parts: list[sql.Composable] = []
    for name in names:
        column = sql.Identifier(prefix, name) if prefix else sql.Identifier(name)
        parts.append(sql.SQL("{} AS {}").format(column, sql.Identifier(f"{alias}_{name}")) if alias else column)
    return sql.SQL(", ").join(parts)


def _key_equal(left, right, key):
    """``left.a = right.a AND left.b = right.b`` over the ``key`` columns."""
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k)) for k in key
    )


def interval_writes(p, table, key, vals, new, scope, newest=False):
    """INTERVAL_WRITES_SQL for ``table``: states of ``key`` columns with ``vals`` columns, new ones in CTE
    ``new``; ``newest``: the fast path's new newest boundary, whose holding intervals are all open and few."""
    holding = HOLDING_OPEN_SQL if newest else HOLDING_AFTER_SQL
    s_key_c = _key_equal("s", "c", key)
    if newest:
        closed = CLOSE_BY_KEY_SQL.format(
            table=sql.Identifier(table),
            key=_columns(None, key),
            s_key_k=_key_equal("s", "k", key),
            arrays=sql.SQL(", ").join(
                CUT_ARRAY_SQL.format(column=sql.Identifier(column), p=sql.SQL(p), c_key=_columns("c", key))
                for column in (*key, "e_from")
            ),
            holding=holding,
        )
    else:
        closed = CLOSE_JOINED_SQL.format(table=sql.Identifier(table), p=sql.SQL(p), s_key_c=s_key_c, holding=holding)
    return INTERVAL_WRITES_SQL.format(
        p=sql.SQL(p),
        table=sql.Identifier(table),
        key=_columns(None, key),
        vals=_columns(None, vals),
        e_key=_columns("e", key),
        e_vals=_columns("e", vals),
        n_vals=_columns("n", vals),
        c_vals=_columns("c", vals),
        x_vals=_columns("x", vals),
        e_vals_as=_columns("e", vals, alias="e"),
        e_vals_named=sql.SQL(", ").join(sql.Identifier(f"e_{name}") for name in vals),
        key_either=sql.SQL(", ").join(
            sql.SQL("COALESCE(n.{k}, e.{k}) AS {k}").format(k=sql.Identifier(k)) for k in key
        ),
        key_join=_key_equal("e", "n", key),
        x_key_c=_key_equal("x", "c", key),
        set_vals=sql.SQL(", ").join(sql.SQL("{k} = c.{k}").format(k=sql.Identifier(k)) for k in vals),
        new=sql.Identifier(new),
        scope_e=scope.condition("e"),
        open_only=sql.SQL(" AND e.valid_to = 'infinity'") if newest else sql.SQL(""),
        s_key_c=s_key_c,
        closed=closed,
        holding=holding,
    )


STATE_KEY, STATE_VALUES = ("wallet_id", "token_id"), ("amount", "avg_buy", "cost_basis", "realized", "method")
SUMMARY_KEY, SUMMARY_VALUES = ("wallet_id",), ("rows", "cost_basis", "realized", "method")

# Replaces the totals of (%(period)s, %(as_of)s) for the tokens %(tokens)s (every token when null)
# by the rows of a CTE `fresh` (token_id, value_usd, rows, unpriced_rows), writing only those that
# differ: after a statement's `WITH fresh AS (…), `.
REPLACE_TOTALS_SQL = sql.SQL("""
gone AS (
    DELETE FROM snapshots_boundarytotal t
    WHERE t.period = %(period)s AND t.as_of = %(as_of)s
      AND (%(tokens)s::bigint[] IS NULL OR t.token_id = ANY(%(tokens)s::bigint[]))
      AND t.token_id NOT IN (SELECT token_id FROM fresh)
    RETURNING 1
), set AS (
    INSERT INTO snapshots_boundarytotal AS t (period, as_of, token_id, value_usd, rows, unpriced_rows)
    SELECT %(period)s, %(as_of)s, token_id, value_usd, rows, unpriced_rows FROM fresh
    ON CONFLICT (period, as_of, token_id) DO UPDATE SET
        value_usd = EXCLUDED.value_usd, rows = EXCLUDED.rows, unpriced_rows = EXCLUDED.unpriced_rows
    WHERE (t.value_usd, t.rows, t.unpriced_rows)
          IS DISTINCT FROM (EXCLUDED.value_usd, EXCLUDED.rows, EXCLUDED.unpriced_rows)
    RETURNING 1
)""")

# The boundary's totals per token (docs/snapshots.md, "Wallet summaries as intervals"): a whole take
# sets them from its rows; a wallet-scoped one adds its wallets' new rows and takes away their old
# ones (the rows b read before: states of wallets it covered, at its stored prices) — for tokens
# whose price at b it does not change; those are recomputed afterwards (RECOMPUTE_TOTALS_SQL). A
# shard of a period's first boundary (FIRST_WRITE_SQL) adds its rows: nothing of its range was read
# at b before. A shard that compares leaves them (TOTALS_NONE) to the last shard, which recomputes
# them all (SnapshotRun.totals_stale). The fast path keeps its own (FAST_TOTALS_SQL).
# (TOTALS_SET_SQL's %(tokens)s is its scope's, every wallet's: null, so every token's total is replaced.)
FRESH_TOTALS_SQL = sql.SQL("""
, fresh AS (
    SELECT n.token_id, COALESCE(SUM(n.value_usd), 0) AS value_usd, count(*) AS rows,
           count(*) FILTER (WHERE n.value_usd IS NULL) AS unpriced_rows
    FROM snapshot n GROUP BY n.token_id
)""")
TOTALS_SET_SQL = sql.SQL("""{fresh}, {replace_totals}
, totals_set AS (SELECT 1 FROM set), totals_gone AS (SELECT 1 FROM gone)""").format(
    fresh=FRESH_TOTALS_SQL, replace_totals=REPLACE_TOTALS_SQL
)
# Adds the rows of a CTE {delta} (token_id, value_usd, rows, unpriced_rows) to the boundary's totals.
# In token order: the shards of a boundary add to the same totals side by side, and take their row
# locks in one order (never a deadlock); a shard waits at most for another's commit.
ADD_TOTALS_SQL = sql.SQL("""totals_set AS (
    INSERT INTO snapshots_boundarytotal AS t (period, as_of, token_id, value_usd, rows, unpriced_rows)
    SELECT %(period)s, %(as_of)s, token_id, value_usd, rows, unpriced_rows FROM {delta}
    WHERE (value_usd, rows, unpriced_rows) <> (0, 0, 0)
    ORDER BY token_id
    ON CONFLICT (period, as_of, token_id) DO UPDATE SET
        value_usd = t.value_usd + EXCLUDED.value_usd, rows = t.rows + EXCLUDED.rows,
        unpriced_rows = t.unpriced_rows + EXCLUDED.unpriced_rows
    RETURNING 1
), totals_gone AS (SELECT 1 WHERE false)""")
# A shard of a first boundary: its rows, added.
TOTALS_FRESH_ADD_SQL = sql.SQL("{fresh}, {add}").format(
    fresh=FRESH_TOTALS_SQL, add=ADD_TOTALS_SQL.format(delta=sql.Identifier("fresh"))
)
TOTALS_ADD_SQL = sql.SQL("""
, old_rows AS (
    SELECT e.token_id,
           CASE WHEN abs(e.amount * o.price_usd) < {max_value} THEN round(e.amount * o.price_usd, 18) END AS value_usd
    FROM existing e
    JOIN w_existing we ON we.wallet_id = e.wallet_id
    LEFT JOIN old_prices o ON o.token_id = e.token_id
), delta AS (
    SELECT d.token_id, SUM(d.value_usd) AS value_usd, SUM(d.rows) AS rows, SUM(d.unpriced_rows) AS unpriced_rows
    FROM (
        SELECT n.token_id, COALESCE(n.value_usd, 0) AS value_usd, 1 AS rows, (n.value_usd IS NULL)::int AS unpriced_rows
        FROM snapshot n
        UNION ALL
        SELECT o.token_id, -COALESCE(o.value_usd, 0), -1, -(o.value_usd IS NULL)::int FROM old_rows o
    ) d
    WHERE d.token_id NOT IN (SELECT token_id FROM repriced)
    GROUP BY d.token_id
), {add}""").format(max_value=MAX_VALUE_USD, add=ADD_TOTALS_SQL.format(delta=sql.Identifier("delta")))
TOTALS_NONE_SQL = sql.SQL("""
, totals_set AS (SELECT 1 WHERE false), totals_gone AS (SELECT 1 WHERE false)""")

# The next boundary of the period taken after as_of, else infinity: where a state written at as_of ends.
NEXT_TAKEN_SQL = sql.SQL("""next_taken AS (
    SELECT COALESCE(min(b.as_of), 'infinity') AS g FROM snapshots_boundary b
    WHERE b.period = %(period)s AND b.as_of > %(as_of)s
)""")

# The boundary's prices of the tokens {held} names (a query), upserted. A price stored already is not
# touched (nor row-locked): the shards of one boundary, whose prices its plan wrote, never wait for
# each other here.
PRICED_SQL = sql.SQL("""priced AS (
    INSERT INTO snapshots_boundaryprice AS bp (period, as_of, token_id, price_usd)
    SELECT %(period)s, %(as_of)s, p.token_id, p.price_usd FROM prices p WHERE p.token_id IN ({held})
      AND NOT EXISTS (SELECT 1 FROM snapshots_boundaryprice o WHERE o.period = %(period)s AND o.as_of = %(as_of)s
                      AND o.token_id = p.token_id AND o.price_usd IS NOT DISTINCT FROM p.price_usd)
    ON CONFLICT (period, as_of, token_id) DO UPDATE SET price_usd = EXCLUDED.price_usd
    WHERE bp.price_usd IS DISTINCT FROM EXCLUDED.price_usd
    RETURNING 1
)""")

WRITE_SNAPSHOT_SQL = sql.SQL("""{ctes}
, {next_taken}{states}{summary}{summaries}
, old_prices AS (
    SELECT bp.token_id, bp.price_usd FROM snapshots_boundaryprice bp
    WHERE bp.period = %(period)s AND bp.as_of = %(as_of)s
), held AS MATERIALIZED (
    SELECT DISTINCT n.token_id FROM snapshot n
), repriced AS MATERIALIZED (
    SELECT p.token_id FROM prices p JOIN old_prices o ON o.token_id = p.token_id
    WHERE p.price_usd IS DISTINCT FROM o.price_usd AND p.token_id IN (SELECT token_id FROM held)
), {priced}{totals}{delta}
SELECT (SELECT count(*) FROM snapshot),
       (SELECT count(*) FROM snapshot n
        LEFT JOIN cut c ON c.has_new AND c.wallet_id = n.wallet_id AND c.token_id = n.token_id
        WHERE c.wallet_id IS NOT NULL OR n.token_id IN (SELECT token_id FROM repriced)),
       (SELECT count(*) FROM cut WHERE NOT has_new),
       (SELECT n FROM writes) + (SELECT n FROM w_writes) + (SELECT count(*) FROM priced)
       + (SELECT count(*) FROM totals_set) + (SELECT count(*) FROM totals_gone),
       ARRAY(SELECT token_id FROM repriced){delta_arrays}
""")

# A whole take (or a shard) of a boundary that nothing of its period is stored at or after, in its
# scope: no state and no wallet state ends at or after it (the period's first boundary, a new
# deployment, or the first after every interval expired). WRITE_SNAPSHOT_SQL would compare every
# new state with nothing, find no neighbour to merge with (one would end at as_of or start after
# it) and insert each as [as_of, g); at 1,000,000 balances the compare, its no-op writes and the
# count of written rows were 2.5 s of a 11 s boundary. This statement inserts them directly: the
# same rows, the same summaries, prices and totals (docs/snapshots.md, "Writing boundary b"). A
# shard checks its own wallet range, whose cells it holds locked.
NOTHING_STORED_AFTER_SQL = sql.SQL("""
SELECT NOT EXISTS (SELECT 1 FROM snapshots_balancestate s
                   WHERE s.period = %(period)s AND s.valid_to >= %(as_of)s AND {scope_s})
   AND NOT EXISTS (SELECT 1 FROM snapshots_walletstate c
                   WHERE c.period = %(period)s AND c.valid_to >= %(as_of)s AND {scope_c})
""")
FIRST_WRITE_SQL = sql.SQL("""{ctes}
, {next_taken}
, inserted AS (
    INSERT INTO snapshots_balancestate
        (period, wallet_id, token_id, valid_from, valid_to, amount, avg_buy, cost_basis, realized, method, source,
         created_at)
    SELECT %(period)s, s.wallet_id, s.token_id, %(as_of)s, t.g, s.amount, s.avg_buy, s.cost_basis, s.realized,
           s.method, %(source)s, now()
    FROM state s, next_taken t WHERE s.is_row
    RETURNING 1
){summary}
, w_inserted AS (
    INSERT INTO snapshots_walletstate
        (period, wallet_id, valid_from, valid_to, rows, cost_basis, realized, method, source, created_at)
    SELECT %(period)s, s.wallet_id, %(as_of)s, t.g, s.rows, s.cost_basis, s.realized, s.method, %(source)s, now()
    FROM summary s, next_taken t
    RETURNING 1
){totals}
, {priced}
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM w_inserted), (SELECT count(*) FROM priced),
       (SELECT count(*) FROM totals_set), (SELECT count(*) FROM totals_gone)
""")


# Before a wallet-scoped write of a boundary not taken yet (a wallet's backfill in a gap): the
# boundary is taken now, and the wallet states holding it would cover their wallets there, which it
# never did. Cut them around it: [from, as_of) and [next taken, to).
UNCOVER_SQL = sql.SQL("""
WITH {next_taken}, holding AS MATERIALIZED (
    SELECT c.* FROM snapshots_walletstate c
    WHERE c.period = %(period)s AND c.valid_from < %(as_of)s AND c.valid_to > %(as_of)s
), cut AS (
    UPDATE snapshots_walletstate c SET valid_to = %(as_of)s FROM holding h WHERE c.id = h.id
)
INSERT INTO snapshots_walletstate
    (period, wallet_id, valid_from, valid_to, rows, cost_basis, realized, method, source, created_at)
SELECT h.period, h.wallet_id, t.g, h.valid_to, h.rows, h.cost_basis, h.realized, h.method, h.source, h.created_at
FROM holding h, next_taken t WHERE t.g < h.valid_to
""").format(next_taken=NEXT_TAKEN_SQL)

# A boundary is taken by its first write, whatever its scope (docs/snapshots.md). No row lock on a
# boundary taken already: the shards of one boundary never wait for each other here.
TAKE_BOUNDARY_SQL = sql.SQL("""
INSERT INTO snapshots_boundary (period, as_of, source, created_at) VALUES (%(period)s, %(as_of)s, %(source)s, now())
ON CONFLICT (period, as_of) DO NOTHING
RETURNING 1
""")

# The totals of a boundary for the tokens %(tokens)s (every token when null), from its rows as read.
RECOMPUTE_TOTALS_SQL = sql.SQL("""
WITH fresh AS MATERIALIZED (
    SELECT s.token_id, COALESCE(SUM(s.value_usd), 0) AS value_usd, count(*) AS rows,
           count(*) FILTER (WHERE s.value_usd IS NULL) AS unpriced_rows
    FROM snapshots_balancesnapshot s
    WHERE s.period = %(period)s AND s.as_of = %(as_of)s
      AND (%(tokens)s::bigint[] IS NULL OR s.token_id = ANY(%(tokens)s::bigint[]))
    GROUP BY s.token_id
), {replace_totals}
SELECT COALESCE(SUM(rows), 0) FROM fresh
""").format(replace_totals=REPLACE_TOTALS_SQL)

# The fast path of a new newest boundary (docs/snapshots.md, "What a boundary costs"). When the
# previous boundary p of the period is the latest taken and complete, a wallet whose history did
# not move since p reads at as_of exactly as at p: its states are the open intervals, its cost
# basis, realized PnL and row count are p's summary's; only its value moves with the prices. So
# only the pairs that moved are written (_write_moved: their wallets' summaries by difference, some
# wallets in full); the others' states and wallet states are open and hold as_of already.
FAST_PLAN_SQL = sql.SQL("""
SELECT r.as_of, r.horizon FROM snapshots_snapshotrun r
WHERE r.period = %(period)s AND r.status = 'completed' AND r.as_of < %(as_of)s AND r.horizon IS NOT NULL
  -- (the boundary itself may be recorded already: its write records it first)
  AND r.as_of = (SELECT max(b.as_of) FROM snapshots_boundary b WHERE b.period = %(period)s AND b.as_of <> %(as_of)s)
""")

# A run's horizon (SnapshotRun.horizon): every ledger write its statement may not have seen began
# at or after it — the write's transaction was in progress then (its start is no earlier than the
# oldest start of this database's open transactions) or began later. The ledger stamps a Balance
# with updated_at = now(), its transaction's start; so the Balances rewritten since a run are those
# with updated_at >= its horizon. Read just before the boundary's statement (whose snapshot is
# later). pg_stat_activity shows the start of the transactions of the same role (the app's). Only
# client backends write the ledger: an autovacuum worker's transaction (minutes on a large table)
# would push the horizon back and make every Balance rewritten since look moved.
HORIZON_SQL = sql.SQL("""
SELECT LEAST(clock_timestamp(),
             (SELECT min(a.xact_start) FROM pg_stat_activity a
              WHERE a.datname = current_database() AND a.backend_type = 'client backend'))
""")

# What moved since p, per (wallet, token): a confirmed transaction at or after p (timestamp index), a
# Balance rewritten since p's horizon (HORIZON_SQL; updated_at index), a Balance deleted since
# (snapshots_balancegone, a trigger of migration 0009); and the wallets whose coverage changed:
# covered at p (a wallet state holding it), but inactive or without a balance now, or the reverse.
# A wallet covered at p none of whose Balances was deleted since still holds one, so only its
# active flag can uncover it; the balances are looked up only for the others (index probes).
MOVED_CTES = sql.SQL("""
moved_pairs AS MATERIALIZED (
    SELECT t.wallet_id, t.token_id FROM bagtracker_transaction t
    WHERE t.status = 'confirmed' AND t.timestamp >= %(previous)s
    UNION
    SELECT b.wallet_id, b.token_id FROM snapshots_balance b WHERE b.updated_at >= %(since)s
    UNION
    SELECT g.wallet_id, g.token_id FROM snapshots_balancegone g WHERE g.deleted_at >= %(since)s
), covered_at_p AS MATERIALIZED (
    SELECT m.wallet_id FROM snapshots_walletstate m
    WHERE m.period = %(period)s AND m.valid_from <= %(previous)s AND m.valid_to > %(previous)s
), checked AS MATERIALIZED (
    -- Active wallets whose coverage may have changed: not covered at p, or covered with a Balance
    -- deleted since (a Balance rewritten since is still there: its wallet still holds one).
    SELECT w.id AS wallet_id, w.id IN (SELECT c.wallet_id FROM covered_at_p c) AS covered
    FROM bagtracker_wallet w
    WHERE w.is_active
      AND (w.id NOT IN (SELECT c.wallet_id FROM covered_at_p c)
           OR w.id IN (SELECT g.wallet_id FROM snapshots_balancegone g WHERE g.deleted_at >= %(since)s))
), coverage_moved AS MATERIALIZED (
    -- Inactive wallets are few: each looked up in the wallet states (period, wallet_id, valid_from),
    -- not every wallet covered at p probed by id (100,000 probes at 1,000,000 balances: 170 ms).
    SELECT w.id AS wallet_id FROM bagtracker_wallet w
    WHERE NOT w.is_active AND EXISTS (
        SELECT 1 FROM snapshots_walletstate m
        WHERE m.period = %(period)s AND m.wallet_id = w.id
          AND m.valid_from <= %(previous)s AND m.valid_to > %(previous)s
    )
    UNION
    SELECT k.wallet_id FROM checked k
    LEFT JOIN LATERAL (SELECT true AS held FROM snapshots_balance b WHERE b.wallet_id = k.wallet_id LIMIT 1) h ON true
    WHERE k.covered <> (h.held IS NOT NULL)
)""")

# The moved pairs and the wallets whose coverage changed, and the balances (the planner's estimate,
# else counted: a table never analysed): the fast path writes pair by pair only while the moved
# pairs are a small share of them (FAST_PAIRS_SHARE).
MOVED_PAIRS_SQL = sql.SQL("""
WITH {moved}
SELECT ARRAY(SELECT m.wallet_id FROM moved_pairs m ORDER BY m.wallet_id, m.token_id),
       ARRAY(SELECT m.token_id FROM moved_pairs m ORDER BY m.wallet_id, m.token_id),
       ARRAY(SELECT v.wallet_id FROM coverage_moved v ORDER BY 1),
       (SELECT CASE WHEN c.reltuples > 0 THEN c.reltuples::bigint ELSE (SELECT count(*) FROM snapshots_balance) END
        FROM pg_class c WHERE c.oid = 'snapshots_balance'::regclass)
""").format(moved=MOVED_CTES)

# How the fast path writes them (docs/snapshots.md, "What a boundary costs"): the wallets computed in
# full — coverage changed; a confirmed transaction at or after the boundary (its pairs are walked);
# not covered at p, or its summary's method '' (mixed) there; a moved pair without a state holding p
# (dust or absent there: its part of p's cost basis and realized PnL is stored nowhere), or whose
# Balance now has another method than p's summary — and the moved pairs of every other wallet. The
# moved pairs are few: each is looked up by index (LATERAL … LIMIT 1), never by hashing a table.
BY_PAIR_SQL = sql.SQL("""
WITH moved_pairs AS MATERIALIZED (
    SELECT * FROM unnest(%(moved_wallets)s::bigint[], %(moved_tokens)s::bigint[]) AS m(wallet_id, token_id)
), in_full AS MATERIALIZED (
    SELECT unnest(%(coverage_moved)s::bigint[]) AS wallet_id
    UNION
    SELECT t.wallet_id FROM bagtracker_transaction t WHERE t.status = 'confirmed' AND t.timestamp >= %(as_of)s
    UNION
    SELECT m.wallet_id FROM moved_pairs m
    LEFT JOIN LATERAL (
        SELECT ws.method FROM snapshots_walletstate ws
        WHERE ws.period = %(period)s AND ws.wallet_id = m.wallet_id
          AND ws.valid_from <= %(previous)s AND ws.valid_to > %(previous)s
        LIMIT 1
    ) ws ON true
    LEFT JOIN LATERAL (
        SELECT b.cost_basis_method AS method FROM snapshots_balance b
        WHERE b.wallet_id = m.wallet_id AND b.token_id = m.token_id
        LIMIT 1
    ) b ON true
    LEFT JOIN LATERAL (
        -- p is the latest boundary taken: the state holding it is open (the open partition).
        SELECT true AS held FROM snapshots_balancestate s
        WHERE s.period = %(period)s AND s.valid_to = 'infinity' AND s.wallet_id = m.wallet_id
          AND s.token_id = m.token_id AND s.valid_from <= %(previous)s
        LIMIT 1
    ) s ON true
    WHERE ws.method IS NULL OR ws.method = '' OR b.method <> ws.method OR s.held IS NULL
), by_pair AS MATERIALIZED (
    SELECT m.wallet_id, m.token_id FROM moved_pairs m WHERE m.wallet_id NOT IN (SELECT f.wallet_id FROM in_full f)
)
SELECT ARRAY(SELECT f.wallet_id FROM in_full f ORDER BY 1),
       ARRAY(SELECT p.wallet_id FROM by_pair p ORDER BY p.wallet_id, p.token_id),
       ARRAY(SELECT p.token_id FROM by_pair p ORDER BY p.wallet_id, p.token_id)
""")

# Above this share of the balances (and above FAST_PAIRS_MIN pairs), the moved pairs are written as
# before: their wallets in full, planned by hashing, and every total from one pass over the open
# states. Measured at 100,000 balances (backend CPU): 1 % moved, 0.09 s by pairs against 0.23 s;
# all of them, 13 s by pairs against ~1.5 s.
FAST_PAIRS_SHARE = 0.05
FAST_PAIRS_MIN = 1000

# Comparing a boundary hashes a million rows and holds them once (CTE): with the default 4MB
# work_mem both spill to disk. Server memory, for this transaction only.
SNAPSHOT_WORK_MEM = "256MB"
SNAPSHOT_WORK_MEM_SQL = sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(SNAPSHOT_WORK_MEM))
# And no JIT: the statement's many CTEs compile for seconds (measured: 14.6 s of JIT in an 18.5 s
# boundary of 100,000 balances) to save far less.
NO_JIT_SQL = sql.SQL("SET LOCAL jit = off")
# The fast path's totals join open states with the wallet states holding the boundary. Both
# come from tables this run or the one before may just have filled, with no statistics yet
# (autovacuum has not passed; catch-up writes boundary after boundary): estimated at one row each,
# they were joined by a nested loop (carrying summaries that way took 10,000 wallets 32 s instead of
# 0.5 s). Hash joins only.
# Shards too: the shards of a boundary that starts a period's tables (a new deployment, or every
# state of the period expired) are planned on tables that are empty when each one starts, estimated
# at one row, and run while the other shards fill them. A nested loop that rescans the period's
# state partitions (or the wallet states) for every row of its range then reads what the others
# wrote over and over: a shard of 12,000 rows took 9-50 s instead of 0.4 s in about one run in
# seven of the workers benchmark (two or four workers, eight shards of 100,000 balances).
NO_NESTED_LOOPS_SQL = sql.SQL("SET LOCAL enable_nestloop = off")
# The fast path's moved pairs and wallets are few, but the statements' writes join them to the state
# table by key (INTERVAL_WRITES_SQL): at the default cost of a random page (4: a disk's), the planner
# found hashing every state of the period cheaper than an index lookup per pair — two such joins
# took 300 ms of a 490 ms statement for 1,000 pairs of 100,000 balances. The tables are in memory
# (the boundary just read them): an index lookup costs about a sequential page. The statements' CTEs
# still join each other by hashing.
BY_INDEX_SQL = sql.SQL("SET LOCAL random_page_cost = 1.1")
BY_INDEX_OFF_SQL = sql.SQL("SET LOCAL random_page_cost TO DEFAULT")

# A boundary is taken when snapshots_boundary says so (its first write, of any scope, records it).
BOUNDARY_HAS_ROWS_SQL = sql.SQL(
    "SELECT EXISTS (SELECT 1 FROM snapshots_boundary WHERE period = %(period)s AND as_of = %(as_of)s)"
)
COUNT_ROWS_SQL = sql.SQL(
    "SELECT count(*) FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of = %(as_of)s"
)

# Writing a boundary cuts and extends the state intervals of its period, which other boundaries of
# the same period share: one writer per period at a time (a second waits for the first to commit,
# then reads the intervals it left). Boundaries of different periods never share a state.
STATE_NAMESPACE = 0x53544154  # "STAT"
LOCK_PERIOD_STATES_SQL = sql.SQL("SELECT pg_advisory_xact_lock(%s, hashtext(%s))")

# Two workers never compute the same (period, as_of) at once: the second waits here for the first
# to commit. Key: (a constant namespace, a hash of "period:as_of"); a hash collision only
# serialises two unrelated boundaries, it never skips one.
LOCK_NAMESPACE = 0x534E4150  # "SNAP"
LOCK_BOUNDARY_SQL = sql.SQL("SELECT pg_advisory_xact_lock(%s, hashtext(%s))")


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
    cursor.execute(LOCK_PERIOD_STATES_SQL, [STATE_NAMESPACE, period])


def wait_for_snapshots_in_progress(cursor, period):
    """Return once every snapshot of ``period`` in progress when called has committed or rolled back."""
    cursor.execute(WAIT_PERIOD_SQL, [PERIOD_NAMESPACE, period])  # session-level: never outlives this call
    cursor.execute(RELEASE_PERIOD_SQL, [PERIOD_NAMESPACE, period])


def _priced_tokens(scope):
    """Which tokens need a price: those with a balance (in scope, when the scope names some wallets;
    a pair scope's tokens, a price without a row costing nothing)."""
    if scope.tokens is not None:
        return sql.SQL("tk.id = ANY(%(tokens)s::bigint[])")
    if scope.is_bounded:
        return sql.SQL("tk.id IN (SELECT b.token_id FROM snapshots_balance b WHERE {})").format(scope.condition("b"))
    return sql.SQL("EXISTS (SELECT 1 FROM snapshots_balance b WHERE b.token_id = tk.id)")


class Totals(enum.Enum):
    """How a statement keeps its boundary's totals (TOTALS_SET_SQL, TOTALS_ADD_SQL)."""

    SET = "set"  # a whole take: from its rows
    ADD = "add"  # a wallet-scoped take: its wallets' rows, new minus old
    NONE = "none"  # the fast path's moved wallets, or a shard comparing: recomputed once afterwards


TOTALS_SQL = {Totals.SET: TOTALS_SET_SQL, Totals.ADD: TOTALS_ADD_SQL, Totals.NONE: TOTALS_NONE_SQL}


def _rows_ctes(scope):
    """SNAPSHOT_ROWS_CTES for ``scope``."""
    return SNAPSHOT_ROWS_CTES.format(
        scope_t=scope.condition("t"),
        scope_b=scope.condition("b"),
        prices=PRICES_SQL.format(priced_tokens=_priced_tokens(scope)),
        covered=scope.covered_condition("wa"),
        avg_buy=average_sql("w.priced_in_value", "w.priced_in_qty"),
        max_value=MAX_VALUE_USD,
    )


def _statement(scope, totals, pairs=False):
    """The statement that writes a boundary for ``scope``: a WalletScope of wallets, or, with
    ``pairs`` (the fast path's moved pairs, _write_moved), of (wallet, token) pairs whose wallets'
    summaries are carried from the ones holding the boundary by difference, a new newest boundary
    whose totals it returns by difference too (PAIR_DELTA_SQL: four more columns)."""
    if (scope.tokens is not None) != pairs:
        raise ValueError(f"a snapshot covers whole wallets, not (wallet, token) pairs: {scope!r}")
    ctes = _rows_ctes(scope)
    wallets = WalletScope(wallets=scope.wallets) if pairs else scope  # the same %(lo)s, %(hi)s, %(wallets)s
    summary = SUMMARY_BY_DIFFERENCE_SQL.format(scope_ws=wallets.condition("ws")) if pairs else SUMMARY_SQL
    return WRITE_SNAPSHOT_SQL.format(
        ctes=ctes,
        next_taken=NEXT_TAKEN_SQL,
        states=interval_writes("", "snapshots_balancestate", STATE_KEY, STATE_VALUES, "snapshot", scope, newest=pairs),
        summary=summary,
        summaries=interval_writes(
            "w_", "snapshots_walletstate", SUMMARY_KEY, SUMMARY_VALUES, "summary", wallets, newest=pairs
        ),
        totals=TOTALS_SQL[totals],
        priced=PRICED_SQL.format(held=sql.SQL("SELECT token_id FROM held")),
        delta=PAIR_DELTA_SQL.format(rows_delta=_rows_delta()) if pairs else sql.SQL(""),
        delta_arrays=sql.SQL(",") + DELTA_ARRAYS_SQL if pairs else sql.SQL(""),
    )


def _state_value():
    """ROW_VALUE_SQL of a state ``s`` at its token's price ``p``."""
    return ROW_VALUE_SQL.format(amount=sql.SQL("s.amount"), max_value=MAX_VALUE_USD)


def _rows_delta():
    """ROWS_DELTA_SQL, rows valued at their token's price at the boundary."""
    return ROWS_DELTA_SQL.format(value=_state_value())


def _first_statement(scope=EVERY_WALLET, shard=False):
    """FIRST_WRITE_SQL: a whole take (its totals replaced), or a shard (its rows' totals added), with
    nothing stored at or after its boundary (in its scope)."""
    return FIRST_WRITE_SQL.format(
        ctes=_rows_ctes(scope),
        next_taken=NEXT_TAKEN_SQL,
        summary=SUMMARY_SQL,
        totals=TOTALS_FRESH_ADD_SQL if shard else TOTALS_SET_SQL,
        priced=PRICED_SQL.format(held=sql.SQL("SELECT token_id FROM fresh")),
    )


def write_snapshot(cursor, period, as_of, source, dust, scope=EVERY_WALLET, method=None, shard=False):
    """Write (period, as_of) for the wallets in ``scope`` (a WalletScope): its rows and wallet
    summaries (as state intervals), its prices and totals. Returns (rows, written, removed), counting
    rows as read through the snapshots_balancesnapshot view: written = rows new or changed (a
    boundary taken for the first time: all of them), removed = rows that no longer qualify.

    Call it holding lock_boundary(period, as_of), inside the transaction. The pairs that moved
    since the boundary are walked with ``method`` (default: BALANCE_COST_BASIS).

    Returns (rows, written, removed, totals_kept). The totals are kept by every write but a
    ``shard`` of a planned boundary that compares with stored intervals or stores a price other
    than the one its plan stored (other shards' rows are then read at it): totals_kept is False,
    and the boundary's last shard recomputes every total (recompute_totals). A shard of a period's
    first boundary adds its rows to the totals."""
    params = {
        "period": period,
        "as_of": as_of,
        "source": source,
        "dust": dust,
        "method": method or current_method(),
        **scope.params(),
    }
    cursor.execute(SNAPSHOT_WORK_MEM_SQL)
    cursor.execute(NO_JIT_SQL)
    if shard:
        cursor.execute(NO_NESTED_LOOPS_SQL)
    cursor.execute(TAKE_BOUNDARY_SQL, params)
    taken_before = cursor.fetchone() is None
    previous = None
    if FAST_PATH and scope.is_everything and not scope.covered and not taken_before:
        cursor.execute(FAST_PLAN_SQL, params)
        previous = cursor.fetchone()
    first = False
    if FIRST_WRITE and previous is None and not scope.covered and (scope.is_everything or shard):
        stored_after = NOTHING_STORED_AFTER_SQL.format(
            scope_s=scope.wallets_condition("s"), scope_c=scope.wallets_condition("c")
        )
        cursor.execute(stored_after, params)
        first = cursor.fetchone()[0]
    totals_kept = True
    if first:
        # a whole take replaces every token's total (tokens null); a shard adds its rows' to them
        cursor.execute(_first_statement(scope, shard), {**params, "tokens": None})
        rows, _, priced, _, _ = cursor.fetchone()
        written, removed = rows, 0
        totals_kept = not (shard and priced)
    elif previous is None:
        if not taken_before and not scope.is_everything and not shard:
            cursor.execute(UNCOVER_SQL, params)
        totals = Totals.SET if scope.is_everything else Totals.NONE if shard else Totals.ADD
        cursor.execute(_statement(scope, totals), params)
        rows, written, removed, _, repriced = cursor.fetchone()
        if totals is Totals.ADD and repriced:
            recompute_totals(cursor, period, as_of, repriced)
        totals_kept = totals is not Totals.NONE
    else:
        rows, removed = _write_moved(cursor, params, *previous)
        written = rows
    if not taken_before:
        written = rows
    # the caller's transaction may go on
    cursor.execute("SET LOCAL work_mem TO DEFAULT; SET LOCAL jit TO DEFAULT; SET LOCAL enable_nestloop TO DEFAULT")
    return rows, written, removed, totals_kept


# Off: every boundary is computed in full.
FAST_PATH = True
# Off: a first boundary is compared with the (absent) intervals like any other (FIRST_WRITE_SQL).
FIRST_WRITE = True


def horizon(cursor):
    """The horizon of the boundary about to be written (HORIZON_SQL)."""
    cursor.execute(HORIZON_SQL)
    return cursor.fetchone()[0]


# The fast path's prices (docs/snapshots.md, "What a boundary costs"): at as_of, of every token with a
# balance or a total at p; and which of the tokens with a total at p have a price at as_of other than
# the one stored at p (their values move for every holder).
FAST_PRICES_SQL = sql.SQL("""
WITH prices AS MATERIALIZED ({prices})
SELECT ARRAY(SELECT p.token_id FROM prices p ORDER BY p.token_id),
       ARRAY(SELECT p.price_usd FROM prices p ORDER BY p.token_id),
       ARRAY(SELECT p.token_id FROM prices p
             JOIN snapshots_boundarytotal t
               ON t.period = %(period)s AND t.as_of = %(previous)s AND t.token_id = p.token_id
             WHERE NOT EXISTS (SELECT 1 FROM snapshots_boundaryprice o
                               WHERE o.period = %(period)s AND o.as_of = %(previous)s AND o.token_id = p.token_id
                                 AND o.price_usd IS NOT DISTINCT FROM p.price_usd)
             ORDER BY p.token_id)
""")
FAST_PRICED_TOKENS = sql.SQL(
    "(EXISTS (SELECT 1 FROM snapshots_balance b WHERE b.token_id = tk.id) OR EXISTS (SELECT 1 FROM"
    " snapshots_boundarytotal t WHERE t.period = %(period)s AND t.as_of = %(previous)s AND t.token_id = tk.id))"
)

# The fast path's totals by difference, for the tokens whose price did not move (%(repriced)s aside):
# Σ per token of the values at the boundary's prices (those of p) of the rows of CTE moved_rows
# (token_id, sign: +1 a row at as_of, −1 a row at p; amount). Read as four arrays (DELTA_ARRAYS_SQL),
# which FAST_TOTALS_SQL adds to p's totals.
ROWS_DELTA_SQL = sql.SQL("""delta_prices AS MATERIALIZED (
    SELECT * FROM unnest(%(price_tokens)s::bigint[], %(price_values)s::numeric[]) AS p(token_id, price_usd)
), moved_values AS (
    SELECT s.token_id, s.sign, {value} AS value_usd
    FROM moved_rows s LEFT JOIN delta_prices p ON p.token_id = s.token_id
    WHERE s.token_id <> ALL(%(repriced)s::bigint[])
), row_delta AS (
    SELECT v.token_id, SUM(v.sign * COALESCE(v.value_usd, 0)) AS value_usd, SUM(v.sign) AS rows,
           SUM(CASE WHEN v.value_usd IS NULL THEN v.sign ELSE 0 END) AS unpriced_rows
    FROM moved_values v GROUP BY v.token_id
)""")
DELTA_ARRAYS_SQL = sql.SQL("""
       ARRAY(SELECT d.token_id FROM row_delta d ORDER BY d.token_id),
       ARRAY(SELECT d.value_usd FROM row_delta d ORDER BY d.token_id),
       ARRAY(SELECT d.rows FROM row_delta d ORDER BY d.token_id),
       ARRAY(SELECT d.unpriced_rows FROM row_delta d ORDER BY d.token_id)""")

# The moved pairs' part, in their own statement (_statement with pairs): the rows it changed, each
# pair's new state at as_of when it is a row (+) and the interval it cut, which held p (−). Each by-pair
# wallet is covered at p and at as_of (a change of coverage puts it in full), and every pair it did
# not change reads the same at both, at the same price.
PAIR_DELTA_SQL = sql.SQL("""
, moved_rows AS (
    SELECT c.token_id, 1 AS sign, c.amount FROM changed c WHERE c.has_new
    UNION ALL
    SELECT c.token_id, -1, c.e_amount FROM changed c WHERE c.e_from IS NOT NULL
), {rows_delta}""")

# The wallets written in full (few: coverage changed, a transaction after as_of, a pair without a
# state at p…): their rows at as_of (+) and at p (−), each state with the wallet state covering it
# there, all at the price of as_of, which is p's.
FAST_DELTA_SQL = sql.SQL("""
WITH touched AS MATERIALIZED (
    SELECT s.wallet_id, s.token_id, s.amount, s.valid_from, s.valid_to
    FROM snapshots_balancestate s
    WHERE s.period = %(period)s AND s.wallet_id = ANY(%(full_wallets)s::bigint[]) AND s.valid_to > %(previous)s
), covering AS MATERIALIZED (
    SELECT c.wallet_id, c.valid_from, c.valid_to FROM snapshots_walletstate c
    WHERE c.period = %(period)s AND c.valid_to > %(previous)s AND c.wallet_id = ANY(%(full_wallets)s::bigint[])
), moved_rows AS (
    SELECT s.token_id, 1 AS sign, s.amount FROM touched s
    JOIN covering c ON c.wallet_id = s.wallet_id AND c.valid_from <= %(as_of)s AND c.valid_to > %(as_of)s
    WHERE s.valid_from <= %(as_of)s AND s.valid_to > %(as_of)s
    UNION ALL
    SELECT s.token_id, -1, s.amount FROM touched s
    JOIN covering c ON c.wallet_id = s.wallet_id AND c.valid_from <= %(previous)s AND c.valid_to > %(previous)s
    WHERE s.valid_from <= %(previous)s AND s.valid_to > %(previous)s
), {rows_delta}
SELECT {delta_arrays}
""")

# Then the totals, and the prices (of the tokens held there). A token whose price moved
# (%(repriced)s): one pass over the open states (a scan: they have no token index) of those tokens in
# the wallets the boundary covers; none when no price moved (a one-time filter on the array).
# Every other token: its total at p plus that difference (every other row reads at as_of exactly as
# at p, at the same price).
FAST_TOTALS_SQL = sql.SQL("""
WITH prices AS MATERIALIZED (
    SELECT * FROM unnest(%(price_tokens)s::bigint[], %(price_values)s::numeric[]) AS p(token_id, price_usd)
), held_rows AS MATERIALIZED (
    SELECT s.token_id, {value} AS value_usd
    FROM snapshots_balancestate s
    JOIN snapshots_walletstate c
      ON c.period = s.period AND c.wallet_id = s.wallet_id AND c.valid_from <= %(as_of)s AND c.valid_to > %(as_of)s
    JOIN prices p ON p.token_id = s.token_id
    WHERE s.period = %(period)s AND s.valid_to > %(as_of)s AND s.valid_from <= %(as_of)s
      AND s.token_id = ANY(%(repriced)s::bigint[]) AND cardinality(%(repriced)s::bigint[]) > 0
), carried AS (
    SELECT t.token_id, t.value_usd, t.rows, t.unpriced_rows FROM snapshots_boundarytotal t
    WHERE t.period = %(period)s AND t.as_of = %(previous)s AND t.token_id <> ALL(%(repriced)s::bigint[])
    UNION ALL
    SELECT * FROM unnest(%(delta_tokens)s::bigint[], %(delta_values)s::numeric[], %(delta_rows)s::bigint[],
                         %(delta_unpriced)s::bigint[])
), fresh AS MATERIALIZED (
    SELECT r.token_id, COALESCE(SUM(r.value_usd), 0) AS value_usd, count(*) AS rows,
           count(*) FILTER (WHERE r.value_usd IS NULL) AS unpriced_rows
    FROM held_rows r GROUP BY r.token_id
    UNION ALL
    SELECT c.token_id, SUM(c.value_usd), SUM(c.rows)::bigint, SUM(c.unpriced_rows)::bigint
    FROM carried c GROUP BY c.token_id HAVING SUM(c.rows) > 0
), priced AS (
    INSERT INTO snapshots_boundaryprice (period, as_of, token_id, price_usd)
    SELECT %(period)s, %(as_of)s, p.token_id, p.price_usd FROM prices p
    WHERE p.token_id IN (SELECT f.token_id FROM fresh f)
    ON CONFLICT (period, as_of, token_id) DO NOTHING
), {replace_totals}
SELECT COALESCE(SUM(rows), 0) FROM fresh
""")
# A row's value at its token's price p.price_usd (the view's expression: empty at >= 10^20 USD).
ROW_VALUE_SQL = sql.SQL(
    "CASE WHEN abs({amount} * p.price_usd) < {max_value} THEN round({amount} * p.price_usd, 18) END"
)


def _write_moved(cursor, params, previous, previous_horizon):
    """The fast path of a new newest boundary (FAST_PLAN_SQL; docs/snapshots.md, "What a boundary
    costs"): the pairs that moved since ``previous`` (MOVED_PAIRS_SQL), their wallets' summaries by
    difference, or some wallets in full; the totals by difference for the tokens whose price did not
    move, one pass over the open states of those whose price did. Every other pair's state and
    every other wallet's wallet state are open and hold the boundary already. Returns (rows, removed)."""
    params = {**params, "previous": previous, "since": previous_horizon}
    cursor.execute(MOVED_PAIRS_SQL, params)
    moved_wallets, moved_tokens, coverage_moved, balances = cursor.fetchone()
    by_pairs = len(moved_wallets) <= max(FAST_PAIRS_MIN, FAST_PAIRS_SHARE * balances)
    if by_pairs:
        pairs = {"moved_wallets": moved_wallets, "moved_tokens": moved_tokens, "coverage_moved": coverage_moved}
        cursor.execute(BY_PAIR_SQL, {**params, **pairs})
        in_full, pair_wallets, pair_tokens = cursor.fetchone()
        cursor.execute(BY_INDEX_SQL)
    else:
        in_full, pair_wallets, pair_tokens = sorted({*moved_wallets, *coverage_moved}), [], []
    # The boundary's prices first: the moved pairs' statement values its difference with them.
    cursor.execute(FAST_PRICES_SQL.format(prices=PRICES_SQL.format(priced_tokens=FAST_PRICED_TOKENS)), params)
    price_tokens, price_values, repriced = cursor.fetchone()
    if not by_pairs:
        repriced = price_tokens  # every token valued again: one pass over the open states
    params = {**params, "price_tokens": price_tokens, "price_values": price_values, "repriced": repriced}
    # tokens, values, rows, unpriced rows: the totals' statement sums a token's parts
    delta: tuple[list, list, list, list] = ([], [], [], [])
    removed = 0
    if in_full:
        scope = WalletScope(wallets=in_full)
        cursor.execute(_statement(scope, Totals.NONE), {**params, **scope.params()})
        removed += cursor.fetchone()[2]
    if pair_wallets:
        scope = WalletScope(wallets=pair_wallets, tokens=pair_tokens)
        cursor.execute(_statement(scope, Totals.NONE, pairs=True), {**params, **scope.params()})
        row = cursor.fetchone()
        removed += row[2]
        _extend(delta, row[5:9])
    if by_pairs and in_full:
        cursor.execute(
            FAST_DELTA_SQL.format(rows_delta=_rows_delta(), delta_arrays=DELTA_ARRAYS_SQL),
            {**params, "full_wallets": in_full},
        )
        _extend(delta, cursor.fetchone())
    if by_pairs:
        cursor.execute(BY_INDEX_OFF_SQL)
    cursor.execute(NO_NESTED_LOOPS_SQL)
    cursor.execute(
        FAST_TOTALS_SQL.format(value=_state_value(), replace_totals=REPLACE_TOTALS_SQL),
        {
            **params,
            "tokens": None,
            **dict(zip(("delta_tokens", "delta_values", "delta_rows", "delta_unpriced"), delta, strict=True)),
        },
    )
    rows = cursor.fetchone()[0]
    cursor.execute("SET LOCAL enable_nestloop TO DEFAULT")
    return rows, removed


def _extend(delta, arrays):
    for column, values in zip(delta, arrays, strict=True):
        column.extend(values)


def recompute_totals(cursor, period, as_of, tokens=None):
    """Set the totals of (period, as_of) — of ``tokens``, else all — from its rows as read. Returns its rows."""
    cursor.execute(RECOMPUTE_TOTALS_SQL, {"period": period, "as_of": as_of, "tokens": tokens})
    return cursor.fetchone()[0]


def take_boundary(cursor, period, as_of, source):
    """Record (period, as_of) as taken, covering nobody yet (a shard plan, before its shards write)."""
    params = {"period": period, "as_of": as_of, "source": source}
    cursor.execute(TAKE_BOUNDARY_SQL, params)
    if cursor.fetchone() is not None:
        # The wallet states are the period's, which shards of its other boundaries may be writing.
        cursor.execute(LOCK_PERIOD_STATES_SQL, [STATE_NAMESPACE, period])
        cursor.execute(UNCOVER_SQL, params)


def count_rows(cursor, period, as_of):
    cursor.execute(COUNT_ROWS_SQL, {"period": period, "as_of": as_of})
    return cursor.fetchone()[0]


def takes_fast_path(cursor, period, as_of):
    """Whether a whole take of (period, as_of) would write only the wallets that moved (FAST_PLAN_SQL)."""
    params = {"period": period, "as_of": as_of}
    cursor.execute(BOUNDARY_HAS_ROWS_SQL, params)
    if not FAST_PATH or cursor.fetchone()[0]:
        return False
    cursor.execute(FAST_PLAN_SQL, params)
    return cursor.fetchone() is not None


# The prices of a boundary taken in shards, written by its plan before any shard runs
# (snapshots/services/shards.py): for every token with a balance.
WRITE_PRICES_SQL = sql.SQL("""
WITH prices AS MATERIALIZED ({prices})
INSERT INTO snapshots_boundaryprice AS bp (period, as_of, token_id, price_usd)
SELECT %(period)s, %(as_of)s, token_id, price_usd FROM prices
ON CONFLICT (period, as_of, token_id) DO UPDATE SET price_usd = EXCLUDED.price_usd
WHERE bp.price_usd IS DISTINCT FROM EXCLUDED.price_usd
""")


def write_prices(cursor, period, as_of, scope=EVERY_WALLET):
    """Store the prices of (period, as_of) for the tokens ``scope`` holds; call it holding the
    boundary's lock."""
    statement = WRITE_PRICES_SQL.format(prices=PRICES_SQL.format(priced_tokens=_priced_tokens(scope)))
    cursor.execute(statement, {"period": period, "as_of": as_of, **scope.params()})
