"""The benchmark's data set, built in SQL (generate_series), never through the ORM.

One chain, T tokens (18 decimals), W wallets each holding every token (W × T balances) and M
transactions spread evenly over the (wallet, token) pairs and over SPAN_DAYS days ending at ``end``:

- each pair's first transaction is a confirmed buy of 1,000–10,000 units;
- the others: 35 % buy, 20 % transfer_in, 30 % sell, 15 % transfer_out; 93 % confirmed, the rest
  failed, cancelled or pending; buys and sells 90 % priced, transfers 20 %;
- a disposal is at most 1,000 / k units (k = transactions per pair), so even k − 1 disposals in a
  row never take a running amount below zero: every history is valid for the ledger;
- the heap is in time order (rows inserted as they would have happened), the hard case for
  wallet-range scans; amounts and prices have 6 decimal places.

Prices: one per token and day over the span, one per hour over the last 7 days.

Everything is valid by construction, so the rows are loaded with triggers (the integrity trigger
and the deferred foreign-key checks) off and the transaction table's secondary indexes dropped and
rebuilt afterwards: a 5,000,000-row load then takes about a minute instead of many.
"""

from datetime import timedelta

from psycopg import sql

SPAN_DAYS = 180
HOURLY_PRICE_DAYS = 7


def _exec(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.rowcount


def _one(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


CHAIN_SQL = "INSERT INTO bagtracker_chain (slug, name) VALUES ('benchnet', 'Bench Net') RETURNING id"

TOKENS_SQL = """
INSERT INTO bagtracker_token (chain_id, symbol, name, contract_address, decimals)
SELECT %(chain)s, 'TK' || lpad(g::text, 3, '0'), 'Bench token ' || g, '', 18
FROM generate_series(1, %(tokens)s) g
"""

WALLETS_SQL = """
INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at)
SELECT %(chain)s, '0x' || lpad(to_hex(g), 40, '0'), '', true, now()
FROM generate_series(1, %(wallets)s) g
"""

# i = 0 .. M-1: slot n = i / P (0 = the pair's opening buy), pair = i % P; the pair's n-th
# transaction lies at a random instant inside the n-th of k equal slots of the span, so each
# pair's history is in time order and the span is covered evenly.
TRANSACTIONS_SQL = """
INSERT INTO bagtracker_transaction
       (wallet_id, token_id, kind, status, amount, price_usd, timestamp, tx_hash, created_at)
SELECT wallet_id, token_id, kind, status, amount,
       CASE WHEN priced THEN round((token_price * (0.5 + r_price))::numeric, 6) END,
       ts, NULL, now()
FROM (
    SELECT %(first_wallet)s + (g.i %% %(pairs)s) / %(tokens)s AS wallet_id,
           %(first_token)s + (g.i %% %(pairs)s) %% %(tokens)s AS token_id,
           (1 + (g.i %% %(pairs)s) %% %(tokens)s) * 1.7 AS token_price,
           g.i / %(pairs)s AS n,
           %(start)s::timestamptz + (g.i / %(pairs)s + r.r_time) * %(slot)s::interval AS ts,
           r.*
    FROM generate_series(0, %(transactions)s - 1) g(i)
    CROSS JOIN LATERAL (SELECT random() AS r_kind, random() AS r_status, random() AS r_amount,
                               random() AS r_priced, random() AS r_price, random() AS r_time
                        WHERE g.i IS NOT NULL) r
) s
CROSS JOIN LATERAL (
    SELECT CASE WHEN n = 0 THEN 'buy'
                WHEN r_kind < 0.35 THEN 'buy'
                WHEN r_kind < 0.55 THEN 'transfer_in'
                WHEN r_kind < 0.85 THEN 'sell'
                ELSE 'transfer_out' END AS kind,
           CASE WHEN n = 0 OR r_status < 0.93 THEN 'confirmed'
                WHEN r_status < 0.96 THEN 'failed'
                WHEN r_status < 0.98 THEN 'cancelled'
                ELSE 'pending' END AS status
) k
CROSS JOIN LATERAL (
    SELECT CASE WHEN n = 0 THEN round((1000 + r_amount * 9000)::numeric, 6)
                WHEN k.kind IN ('buy', 'transfer_in') THEN round((1 + r_amount * 99)::numeric, 6)
                ELSE round((r_amount * 1000 / %(per_pair)s)::numeric, 6) + 0.000001 END AS amount,
           CASE WHEN k.kind IN ('buy', 'sell') THEN r_priced < 0.9 ELSE r_priced < 0.2 END AS priced
) a
ORDER BY ts
"""

PRICES_SQL = """
INSERT INTO bagtracker_price (token_id, as_of, price_usd, source)
SELECT tk.id, at, round(((1 + tk.id - %(first_token)s) * 1.7 * (0.5 + random()))::numeric, 6), 'bench'
FROM bagtracker_token tk
CROSS JOIN (
    SELECT generate_series(date_trunc('day', %(start)s::timestamptz), %(end)s::timestamptz, '1 day') AS at
    UNION
    SELECT generate_series(date_trunc('hour', %(end)s::timestamptz) - %(hourly_days)s * interval '1 day',
                           %(end)s::timestamptz, '1 hour')
) a
"""

SECONDARY_INDEXES_SQL = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = 'bagtracker_transaction'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""


def build(conn, wallets, tokens, transactions, end, seed=0.42):
    """Load the data set into an empty, migrated database. ``end`` is the latest instant of history.

    Returns a dict of what was loaded. ``conn`` is a psycopg connection in autocommit mode.
    """
    pairs = wallets * tokens
    if transactions < pairs:
        raise ValueError(f"--transactions must be at least wallets × tokens ({pairs:,}): every pair opens with a buy")
    per_pair = -(-transactions // pairs)  # k: slots per pair
    start = end - timedelta(days=SPAN_DAYS)
    slot = timedelta(days=SPAN_DAYS) / per_pair

    with conn.transaction():
        _exec(conn, "SET LOCAL synchronous_commit = off")
        _exec(conn, "SET LOCAL work_mem = '512MB'")
        _exec(conn, "SET LOCAL maintenance_work_mem = '512MB'")
        (chain,) = _one(conn, CHAIN_SQL)
        _exec(conn, TOKENS_SQL, {"chain": chain, "tokens": tokens})
        _exec(conn, WALLETS_SQL, {"chain": chain, "wallets": wallets})
        first_token, last_token = _one(conn, "SELECT min(id), max(id) FROM bagtracker_token")
        first_wallet, last_wallet = _one(conn, "SELECT min(id), max(id) FROM bagtracker_wallet")
        # A fresh database: ids are consecutive, so a pair number maps to its ids by arithmetic.
        assert last_token - first_token + 1 == tokens and last_wallet - first_wallet + 1 == wallets

        indexes = conn.execute(SECONDARY_INDEXES_SQL).fetchall()
        for name, _ in indexes:
            _exec(conn, f'DROP INDEX "{name}"')
        # Valid by construction: no per-row integrity trigger, no deferred foreign-key checks.
        _exec(conn, "SET LOCAL session_replication_role = replica")
        _exec(conn, "SELECT setseed(%s)", [seed])
        loaded = _exec(
            conn,
            TRANSACTIONS_SQL,
            {
                "first_wallet": first_wallet,
                "first_token": first_token,
                "pairs": pairs,
                "tokens": tokens,
                "transactions": transactions,
                "per_pair": per_pair,
                "start": start,
                "slot": slot,
            },
        )
        _exec(conn, "SET LOCAL session_replication_role = origin")
        for _, definition in indexes:
            _exec(conn, definition)
        prices = _exec(
            conn,
            PRICES_SQL,
            {"first_token": first_token, "start": start, "end": end, "hourly_days": HOURLY_PRICE_DAYS},
        )
    for table in (
        "bagtracker_chain",
        "bagtracker_token",
        "bagtracker_wallet",
        "bagtracker_transaction",
        "bagtracker_price",
    ):
        _exec(conn, f"VACUUM (ANALYZE) {table}")
    return {
        "wallets": wallets,
        "tokens": tokens,
        "transactions": loaded,
        "prices": prices,
        "first_wallet": first_wallet,
        "start": start,
        "end": end,
        "per_pair": per_pair,
    }


# One (wallet, token) with a long history (the "one pair" step): a new wallet on the data set's
# chain, its transactions on the first token, a second apart, ending at ``end``; two buys then a
# sell, repeating (the sell takes less than a buy: never negative); 90 % priced.
LONG_HISTORY_SQL = """
INSERT INTO bagtracker_transaction
       (wallet_id, token_id, kind, status, amount, price_usd, timestamp, tx_hash, created_at)
SELECT %(wallet)s, %(token)s, CASE WHEN g %% 3 = 2 THEN 'sell' ELSE 'buy' END, 'confirmed',
       -- two buys of 1-10 then a sale of at most 2: the running amount never goes negative (a sale
       -- of up to 5 after two buys of 1-1.5 did, about one run in 70: the walk refused the history)
       round((1 + random() * 9)::numeric, 6) * CASE WHEN g %% 3 = 2 THEN 0.2 ELSE 1 END,
       CASE WHEN random() < 0.9 THEN round((1000 + random() * 1000)::numeric, 6) END,
       %(end)s::timestamptz - (%(count)s - g) * interval '1 second', NULL, now()
FROM generate_series(0, %(count)s - 1) g
"""


def add_long_history(conn, count, end):
    """A new wallet with ``count`` confirmed transactions of one token; returns its id (no balance yet)."""
    (chain,) = _one(conn, "SELECT min(id) FROM bagtracker_chain")
    (token,) = _one(conn, "SELECT min(id) FROM bagtracker_token")
    (wallet,) = _one(
        conn,
        "INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at)"
        " VALUES (%s, '0xlonghistory', '', true, now()) RETURNING id",
        [chain],
    )
    _exec(conn, "SET LOCAL session_replication_role = replica")  # valid by construction
    _exec(conn, LONG_HISTORY_SQL, {"wallet": wallet, "token": token, "count": count, "end": end})
    _exec(conn, "SET LOCAL session_replication_role = origin")
    _exec(conn, "ANALYZE bagtracker_transaction")
    return wallet


def remove_wallets(conn, wallet_ids):
    for table in ("snapshots_balance", "bagtracker_transaction"):
        conn.execute(sql.SQL("DELETE FROM {} WHERE wallet_id = ANY(%s)").format(sql.Identifier(table)), [wallet_ids])
    conn.execute("DELETE FROM bagtracker_wallet WHERE id = ANY(%s)", [wallet_ids])


IMPORTED_CHAINS = "(SELECT id FROM bagtracker_chain WHERE slug IN ('ethereum', 'solana'))"


def remove_imported(conn):
    """Undo an import of tests.csv_factory's file: its chains (ethereum, solana) and all on them."""
    wallets = [w for (w,) in conn.execute("SELECT id FROM bagtracker_wallet WHERE chain_id IN " + IMPORTED_CHAINS)]
    remove_wallets(conn, wallets)
    tokens = "SELECT id FROM bagtracker_token WHERE chain_id IN " + IMPORTED_CHAINS
    conn.execute(f"DELETE FROM bagtracker_price WHERE token_id IN ({tokens})")
    conn.execute("DELETE FROM bagtracker_token WHERE chain_id IN " + IMPORTED_CHAINS)
    conn.execute("DELETE FROM bagtracker_chain WHERE id IN " + IMPORTED_CHAINS)
