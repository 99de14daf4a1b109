# A balance state is found by its key (docs/snapshots.md, "A state is found by its key"): the primary key of
# snapshots_balancestate is (period, wallet_id, token_id, valid_from, valid_to) — the key and the
# start of its interval, with the partition keys a unique constraint of a partitioned table must
# hold — and replaces both the surrogate (id, period, valid_to) key and the (period, wallet_id,
# token_id, valid_from) index it duplicated. The id column stays, without an index: it only makes
# the view's row ids (snapshots_balancesnapshot.id = state id × 10⁹ + the boundary's hour).
#
# Why: ids from one sequence put every state a boundary inserts at the right-hand edge of the id
# index. Two shards inserting side by side waited on that page's lock, and the index cost one WAL
# record and 77 MB per 1,000,000 states (BENCHMARKS.md, "The state's key instead of its id"). Every
# lookup by id — the interval writes, the view's write triggers, the totals of a deleted wallet —
# now goes by key; snapshots_add_to_totals(ids) gives way to snapshots_add_states_to_totals, which
# selects the states by period, wallet and optionally token and a boundary they hold.

from importlib import import_module

from django.db import migrations

# What 0013 installed, for the way back (a migration's SQL never changes).
SUMMARY_INTERVALS = import_module("snapshots.migrations.0013_summary_intervals")

PERIODS = "ARRAY['hourly', 'daily', 'weekly', 'monthly']"
VALUE = SUMMARY_INTERVALS.VALUE

KEY = """
ALTER TABLE snapshots_balancestate DROP CONSTRAINT snapshots_balancestate_pkey;
DROP INDEX balance_state_from;
ALTER TABLE snapshots_balancestate
    ADD CONSTRAINT snapshots_balancestate_pkey PRIMARY KEY (period, wallet_id, token_id, valid_from, valid_to);
"""
KEY_BACK = """
ALTER TABLE snapshots_balancestate DROP CONSTRAINT snapshots_balancestate_pkey;
ALTER TABLE snapshots_balancestate ADD CONSTRAINT snapshots_balancestate_pkey PRIMARY KEY (id, period, valid_to);
CREATE INDEX balance_state_from ON snapshots_balancestate (period, wallet_id, token_id, valid_from);
"""

# The totals follow every write that bypasses a boundary's statement: add (sign 1) or take away
# (sign -1) what the states of these periods and wallets (of one token, holding one boundary, when
# given) contribute at the boundaries in [since, until) where they are read. Found through the
# primary key's (period, wallet_id, token_id) prefix.
ADD_STATES_TO_TOTALS = f"""
DROP FUNCTION snapshots_add_to_totals(bigint[], integer, timestamptz, timestamptz);
CREATE FUNCTION snapshots_add_states_to_totals(
    periods text[], wallet_ids bigint[], sign integer, token bigint DEFAULT NULL, held timestamptz DEFAULT NULL,
    since timestamptz DEFAULT '-infinity', until timestamptz DEFAULT 'infinity')
RETURNS void LANGUAGE sql AS $$
INSERT INTO snapshots_boundarytotal AS t (period, as_of, token_id, value_usd, rows, unpriced_rows)
SELECT s.period, bd.as_of, s.token_id, sign * COALESCE(sum(v.value_usd), 0), sign * count(*),
       sign * count(*) FILTER (WHERE v.value_usd IS NULL)
FROM snapshots_balancestate s
JOIN snapshots_boundary bd ON bd.period = s.period AND bd.as_of >= s.valid_from AND bd.as_of < s.valid_to
JOIN snapshots_walletstate c
  ON c.period = s.period AND c.wallet_id = s.wallet_id AND c.valid_from <= bd.as_of AND c.valid_to > bd.as_of
LEFT JOIN snapshots_boundaryprice p ON p.period = s.period AND p.as_of = bd.as_of AND p.token_id = s.token_id
CROSS JOIN LATERAL (SELECT {VALUE} AS value_usd) v
WHERE s.period = ANY(periods) AND s.wallet_id = ANY(wallet_ids) AND (token IS NULL OR s.token_id = token)
  AND (held IS NULL OR (s.valid_from <= held AND s.valid_to > held))
  AND bd.as_of >= since AND bd.as_of < until
GROUP BY s.period, bd.as_of, s.token_id
ON CONFLICT (period, as_of, token_id) DO UPDATE SET
    value_usd = t.value_usd + EXCLUDED.value_usd, rows = t.rows + EXCLUDED.rows,
    unpriced_rows = t.unpriced_rows + EXCLUDED.unpriced_rows
$$;
"""

# Writing to a view (a repair from a shell, a test's "damage") writes the state read there — the
# one of the row's (period, wallet, token) whose interval holds its boundary — at every boundary of
# its interval, and keeps the totals true.
VIEW_WRITES = """
CREATE OR REPLACE FUNCTION snapshots_balancesnapshot_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM snapshots_add_states_to_totals(
        ARRAY[OLD.period]::text[], ARRAY[OLD.wallet_id], -1, OLD.token_id, OLD.as_of);
    IF TG_OP = 'DELETE' THEN
        DELETE FROM snapshots_balancestate
        WHERE period = OLD.period AND wallet_id = OLD.wallet_id AND token_id = OLD.token_id
          AND valid_from <= OLD.as_of AND valid_to > OLD.as_of;
        RETURN OLD;
    END IF;
    UPDATE snapshots_balancestate
    SET amount = NEW.amount, avg_buy = NEW.avg_buy_price_usd, cost_basis = NEW.cost_basis_usd,
        realized = NEW.realized_pnl_usd, method = NEW.cost_basis_method, source = NEW.source
    WHERE period = OLD.period AND wallet_id = OLD.wallet_id AND token_id = OLD.token_id
      AND valid_from <= OLD.as_of AND valid_to > OLD.as_of;
    PERFORM snapshots_add_states_to_totals(
        ARRAY[OLD.period]::text[], ARRAY[OLD.wallet_id], 1, OLD.token_id, OLD.as_of);
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION snapshots_walletsnapshot_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c snapshots_walletstate;
BEGIN
    SELECT * INTO c FROM snapshots_walletstate WHERE id = OLD.id / 1000000000;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM snapshots_add_states_to_totals(
            ARRAY[c.period]::text[], ARRAY[c.wallet_id], -1, since => c.valid_from, until => c.valid_to);
        DELETE FROM snapshots_walletstate WHERE id = c.id;
        RETURN OLD;
    END IF;
    UPDATE snapshots_walletstate
    SET rows = NEW.rows, cost_basis = NEW.cost_basis_usd, realized = NEW.realized_pnl_usd,
        method = NEW.cost_basis_method, source = NEW.source
    WHERE id = c.id;
    RETURN NEW;
END $$;
"""

FORGET_WALLETS = f"""
CREATE OR REPLACE FUNCTION snapshots_forget_wallets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM snapshots_add_states_to_totals({PERIODS}, ARRAY(SELECT id FROM old_rows), -1);
    DELETE FROM snapshots_balancestate
    WHERE period = ANY({PERIODS}) AND wallet_id IN (SELECT id FROM old_rows);
    DELETE FROM snapshots_walletstate WHERE wallet_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
"""

FORWARD = KEY + ADD_STATES_TO_TOTALS + VIEW_WRITES + FORGET_WALLETS

BACKWARD = (
    KEY_BACK
    + SUMMARY_INTERVALS.ADD_TO_TOTALS
    + """
DROP TRIGGER snapshots_walletsnapshot_write ON snapshots_walletsnapshot;
DROP FUNCTION snapshots_walletsnapshot_write();
DROP TRIGGER snapshots_balancesnapshot_write ON snapshots_balancesnapshot;
"""
    + SUMMARY_INTERVALS.VIEW_WRITES
    + SUMMARY_INTERVALS.FORGET_WALLETS
    + "DROP FUNCTION snapshots_add_states_to_totals"
    "(text[], bigint[], integer, bigint, timestamptz, timestamptz, timestamptz);"
)


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0018_open_states_without_valid_to_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveIndex(model_name="balancestate", name="balance_state_from")],
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
        )
    ]
