"""The set-based SQL of the importers (bagtracker.services.imports), in one place.

Validated rows are COPYed into a temporary table (dropped at commit) with psycopg's own
``Copy.write_row`` (it adapts and escapes each value), then every step is one statement over the
whole file: create missing chains, wallets and tokens; resolve ids; refuse
conflicts; insert what is new in file order. Statements that can fail name the line to blame.
"""

# Serialises imports: two imports of overlapping files must not both decide a row is new.
IMPORT_LOCK_SQL = "SELECT pg_advisory_xact_lock(7161343720261)"

# --- transactions ---------------------------------------------------------------------------------

TX_STAGE_SQL = [
    "DROP TABLE IF EXISTS pg_temp.import_tx_rows, pg_temp.import_tx_resolved, pg_temp.import_tx_new",
    """CREATE TEMP TABLE import_tx_rows (
        line integer NOT NULL, chain text NOT NULL, wallet text NOT NULL, token text NOT NULL,
        kind text NOT NULL, status text NOT NULL, amount numeric NOT NULL, price_usd numeric,
        ts timestamptz NOT NULL, tx_hash text
    ) ON COMMIT DROP""",
]

TX_COPY_SQL = (
    "COPY import_tx_rows (line, chain, wallet, token, kind, status, amount, price_usd, ts, tx_hash) FROM STDIN"
)

# Created in order of first appearance in the file, so ids follow the file.
CREATE_CHAINS_SQL = """
INSERT INTO bagtracker_chain (slug, name)
SELECT chain, initcap(translate(chain, '-_', '  ')) FROM import_tx_rows GROUP BY chain ORDER BY min(line)
ON CONFLICT (slug) DO NOTHING
"""

CREATE_WALLETS_SQL = """
INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at)
SELECT c.id, r.wallet, '', true, now()
FROM import_tx_rows r JOIN bagtracker_chain c ON c.slug = r.chain
GROUP BY c.id, r.wallet ORDER BY min(r.line)
ON CONFLICT (chain_id, address) DO NOTHING
"""

# A token first seen in an import is taken as native-less and 18 decimals (docs/interfaces.md).
CREATE_TOKENS_SQL = """
INSERT INTO bagtracker_token (chain_id, symbol, name, contract_address, decimals)
SELECT c.id, r.token, '', '', 18
FROM import_tx_rows r JOIN bagtracker_chain c ON c.slug = r.chain
GROUP BY c.id, r.token ORDER BY min(r.line)
ON CONFLICT (chain_id, symbol) DO NOTHING
"""

RESOLVE_TX_SQL = """
CREATE TEMP TABLE import_tx_resolved ON COMMIT DROP AS
SELECT r.line, w.id AS wallet_id, t.id AS token_id, r.kind, r.status, r.amount, r.price_usd, r.ts, r.tx_hash
FROM import_tx_rows r
JOIN bagtracker_chain c ON c.slug = r.chain
JOIN bagtracker_wallet w ON w.chain_id = c.id AND w.address = r.wallet
JOIN bagtracker_token t ON t.chain_id = c.id AND t.symbol = r.token
"""

# Two lines of the file with the same (wallet, token, tx_hash, kind) but different values.
TX_FILE_CONFLICT_SQL = """
SELECT line, first_line FROM (
    SELECT line,
           first_value(line) OVER w AS first_line,
           (status, amount, price_usd, ts) IS DISTINCT FROM
           (first_value(status) OVER w, first_value(amount) OVER w,
            first_value(price_usd) OVER w, first_value(ts) OVER w) AS differs
    FROM import_tx_resolved
    WHERE tx_hash IS NOT NULL
    WINDOW w AS (PARTITION BY wallet_id, token_id, tx_hash, kind ORDER BY line)
) x
WHERE differs
ORDER BY line LIMIT 1
"""

# A line whose (wallet, token, tx_hash, kind) is already stored with different values.
TX_STORED_CONFLICT_SQL = """
SELECT r.line, t.id, r.tx_hash, r.kind
FROM import_tx_resolved r
JOIN bagtracker_transaction t
  ON t.wallet_id = r.wallet_id AND t.token_id = r.token_id AND t.tx_hash = r.tx_hash AND t.kind = r.kind
WHERE (t.status, t.amount, t.price_usd, t.timestamp) IS DISTINCT FROM (r.status, r.amount, r.price_usd, r.ts)
ORDER BY r.line LIMIT 1
"""

# What is new, with transaction ids drawn in line order (so same-instant rows keep file order):
# - with a tx_hash: the first line of each (wallet, token, tx_hash, kind) not already stored;
# - without: the file's copies of an identical row beyond the copies already stored (a multiset),
#   so two genuinely identical trades both land and a re-import still adds nothing.
TX_NEW_SQL = """
CREATE TEMP TABLE import_tx_new ON COMMIT DROP AS
SELECT nextval(pg_get_serial_sequence('bagtracker_transaction', 'id')) AS id, n.*
FROM (
    SELECT * FROM (
        SELECT DISTINCT ON (r.wallet_id, r.token_id, r.tx_hash, r.kind)
               r.line, r.wallet_id, r.token_id, r.kind, r.status, r.amount, r.price_usd, r.ts, r.tx_hash
        FROM import_tx_resolved r
        WHERE r.tx_hash IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM bagtracker_transaction t
              WHERE t.wallet_id = r.wallet_id AND t.token_id = r.token_id
                AND t.tx_hash = r.tx_hash AND t.kind = r.kind)
        ORDER BY r.wallet_id, r.token_id, r.tx_hash, r.kind, r.line
    ) hashed
    UNION ALL
    SELECT f.line, f.wallet_id, f.token_id, f.kind, f.status, f.amount, f.price_usd, f.ts, f.tx_hash
    FROM (
        SELECT r.*, row_number() OVER (
                   PARTITION BY r.wallet_id, r.token_id, r.kind, r.status, r.amount, r.price_usd, r.ts
                   ORDER BY r.line) AS copy_no
        FROM import_tx_resolved r
        WHERE r.tx_hash IS NULL
    ) f
    LEFT JOIN (
        SELECT t.wallet_id, t.token_id, t.kind, t.status, t.amount, t.price_usd, t.timestamp, count(*) AS copies
        FROM bagtracker_transaction t
        WHERE t.tx_hash IS NULL
          AND t.wallet_id IN (SELECT wallet_id FROM import_tx_resolved WHERE tx_hash IS NULL)
        GROUP BY t.wallet_id, t.token_id, t.kind, t.status, t.amount, t.price_usd, t.timestamp
    ) stored
      ON stored.wallet_id = f.wallet_id AND stored.token_id = f.token_id AND stored.kind = f.kind
     AND stored.status = f.status AND stored.amount = f.amount AND stored.timestamp = f.ts
     AND stored.price_usd IS NOT DISTINCT FROM f.price_usd
    WHERE f.copy_no > COALESCE(stored.copies, 0)
    ORDER BY line
) n
"""

INSERT_TX_SQL = """
INSERT INTO bagtracker_transaction
    (id, wallet_id, token_id, kind, status, amount, price_usd, timestamp, tx_hash, created_at)
SELECT id, wallet_id, token_id, kind, status, amount, price_usd, ts, tx_hash, now()
FROM import_tx_new ORDER BY id
ON CONFLICT (wallet_id, token_id, tx_hash, kind) WHERE tx_hash IS NOT NULL DO NOTHING
"""

TOUCHED_PAIRS_SQL = "SELECT DISTINCT wallet_id, token_id FROM import_tx_new"

LINE_OF_NEW_TX_SQL = "SELECT line FROM import_tx_new WHERE id = %s"

# When the transaction that goes negative was already stored, blame the file's first confirmed
# disposal of that wallet and token at or before it (else its first line for them).
LINE_TO_BLAME_SQL = """
SELECT line FROM import_tx_new
WHERE wallet_id = %(wallet)s AND token_id = %(token)s
ORDER BY (status = 'confirmed' AND kind = ANY(%(disposals)s) AND ts <= %(at)s) DESC, line
LIMIT 1
"""

# --- prices ---------------------------------------------------------------------------------------

PRICE_STAGE_SQL = [
    "DROP TABLE IF EXISTS pg_temp.import_price_rows",
    """CREATE TEMP TABLE import_price_rows (
        line integer NOT NULL, token_id bigint NOT NULL, as_of timestamptz NOT NULL, price_usd numeric NOT NULL
    ) ON COMMIT DROP""",
]

PRICE_COPY_SQL = "COPY import_price_rows (line, token_id, as_of, price_usd) FROM STDIN"

PRICE_FILE_CONFLICT_SQL = """
SELECT line, first_line FROM (
    SELECT line, first_value(line) OVER w AS first_line,
           price_usd <> first_value(price_usd) OVER w AS differs
    FROM import_price_rows
    WINDOW w AS (PARTITION BY token_id, as_of ORDER BY line)
) x
WHERE differs
ORDER BY line LIMIT 1
"""

PRICE_STORED_CONFLICT_SQL = """
SELECT r.line, p.price_usd, p.source
FROM import_price_rows r JOIN bagtracker_price p ON p.token_id = r.token_id AND p.as_of = r.as_of
WHERE p.price_usd <> r.price_usd
ORDER BY r.line LIMIT 1
"""

INSERT_PRICES_SQL = """
INSERT INTO bagtracker_price (token_id, as_of, price_usd, source)
SELECT token_id, as_of, price_usd, %(source)s FROM (
    SELECT DISTINCT ON (token_id, as_of) line, token_id, as_of, price_usd
    FROM import_price_rows ORDER BY token_id, as_of, line
) first_lines
ORDER BY line
ON CONFLICT (token_id, as_of) DO NOTHING
"""
