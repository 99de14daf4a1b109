-- Ad-hoc data for bench/snapshots_adhoc.py: 100,000 wallets x 10 tokens = 1,000,000 balances (one buy each
-- over the last 30 days), 20,000 recent sells, hourly prices. Load into an empty migrated database,
-- then run recalculate --all (or snapshots.services.ledger.recalculate_all_wallets) and VACUUM ANALYZE.
INSERT INTO bagtracker_chain (slug, name) VALUES ('ethereum', 'Ethereum');
INSERT INTO bagtracker_token (chain_id, symbol, name, contract_address, decimals)
SELECT 1, 'T' || i, '', CASE WHEN i = 1 THEN '' ELSE '0x' || i END, 18 FROM generate_series(1, 20) i;
INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at)
SELECT 1, '0x' || lpad(to_hex(i), 40, '0'), '', true, now() FROM generate_series(1, 100000) i;
-- one buy per (wallet, token) over the last 30 days: 100k wallets x 10 tokens = 1M balances
INSERT INTO bagtracker_transaction (wallet_id, token_id, kind, status, amount, price_usd, timestamp, tx_hash, created_at)
SELECT w, t, 'buy', 'confirmed', round((random() * 1000)::numeric, 12) + 1, round((random() * 100)::numeric, 8),
       now() - interval '30 days' + random() * interval '29 days', NULL, now()
FROM generate_series(1, 100000) w, generate_series(1, 10) t;
-- some recent activity (last 2 hours): 20k sells of small amounts
INSERT INTO bagtracker_transaction (wallet_id, token_id, kind, status, amount, price_usd, timestamp, tx_hash, created_at)
SELECT 1 + (i * 7) % 100000, 1 + i % 10, 'sell', 'confirmed', 0.5, 10, now() - random() * interval '2 hours', NULL, now()
FROM generate_series(1, 20000) i;
INSERT INTO bagtracker_price (token_id, as_of, price_usd, source)
SELECT t, now() - (h || ' hours')::interval, round((random() * 100)::numeric, 6), 'gen'
FROM generate_series(1, 15) t, generate_series(1, 720) h;
