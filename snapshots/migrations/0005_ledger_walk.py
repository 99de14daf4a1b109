# The ledger's walk in PostgreSQL (docs/ledger.md, "What is computed, and where"): one pass over a
# scope's confirmed transactions in ledger order, one result row per (wallet, token). A later change
# to the function is a new migration with CREATE OR REPLACE.

from django.db import migrations

# value / qty rounded once, exactly, to 18 places, half away from zero (both >= 0, qty > 0).
# Not round(value / qty, 18): PostgreSQL rounds the quotient to a scale of its own first.
ROUND_DIV_SQL = """
CREATE OR REPLACE FUNCTION bt_round_div(num numeric, den numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (div(num * 1000000000000000000, den)
            + CASE WHEN 2 * mod(num * 1000000000000000000, den) >= den THEN 1 ELSE 0 END)
           * 0.000000000000000001
$$;
"""

# Scope: wallet ids in [wallet_lo, wallet_hi]; and, when only_wallets is given, only those wallets
# (only_tokens NULL) or only the (only_wallets[i], only_tokens[i]) pairs; and timestamp < before
# when before is given. The query is built with format() and run with EXECUTE … USING, so it is
# planned for the actual scope each time (a few pairs: index scans; a batch: one sort).
LEDGER_WALK_SQL = r"""
CREATE OR REPLACE FUNCTION bt_ledger_walk(
    method text, wallet_lo bigint, wallet_hi bigint, only_wallets bigint[], only_tokens bigint[],
    before timestamptz
) RETURNS TABLE (
    wallet_id bigint, token_id bigint, amount numeric, total_in numeric, total_out numeric,
    priced_in_qty numeric, priced_in_value numeric, priced_out_qty numeric, priced_out_value numeric,
    cost_basis numeric, realized numeric, cost_basis_complete boolean, realized_complete boolean,
    negative_tx bigint, negative_at timestamptz, negative_running numeric
)
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    fifo boolean := method = 'fifo';
    pair_scope text := '';
    cost numeric;
    need numeric;
    lot numeric;
    exact numeric;          -- fifo: Σ remaining qty × unit cost over the open lots, exact
    lot_qty numeric[];
    lot_cost numeric[];     -- NULL: unknown cost (counted as 0)
    lots int;
    head int;
    unknown_lots int;       -- fifo: open lots of unknown cost
    unknown_held boolean;   -- average: an unknown-cost acquisition since the amount was last 0
    started boolean := false;
BEGIN
    IF method NOT IN ('average', 'fifo') THEN
        RAISE EXCEPTION 'unknown cost basis method %', method;
    END IF;
    IF only_wallets IS NOT NULL AND only_tokens IS NOT NULL THEN
        pair_scope := ' AND (t.wallet_id, t.token_id) IN (SELECT * FROM unnest($3, $4))';
    ELSIF only_wallets IS NOT NULL THEN
        pair_scope := ' AND t.wallet_id = ANY($3)';
    END IF;
    FOR r IN EXECUTE
        'SELECT t.id, t.wallet_id, t.token_id, t.timestamp, t.amount, t.price_usd,'
        '       t.kind IN (''buy'', ''transfer_in'') AS acquires, t.kind = ''sell'' AS sells'
        ' FROM bagtracker_transaction t'
        ' WHERE t.status = ''confirmed'' AND t.wallet_id BETWEEN $1 AND $2'
        || pair_scope
        || CASE WHEN before IS NULL THEN '' ELSE ' AND t.timestamp < $5' END
        || ' ORDER BY t.wallet_id, t.token_id, t.timestamp, t.kind NOT IN (''buy'', ''transfer_in''), t.id'
        USING coalesce(wallet_lo, 0), coalesce(wallet_hi, 9223372036854775807), only_wallets, only_tokens, before
    LOOP
        IF NOT started OR r.wallet_id <> wallet_id OR r.token_id <> token_id THEN
            IF started THEN
                cost_basis_complete := negative_tx IS NOT NULL
                    OR (fifo AND unknown_lots = 0) OR NOT (fifo OR unknown_held);
                RETURN NEXT;
            END IF;
            started := true;
            wallet_id := r.wallet_id; token_id := r.token_id;
            amount := 0; total_in := 0; total_out := 0;
            priced_in_qty := 0; priced_in_value := 0; priced_out_qty := 0; priced_out_value := 0;
            cost_basis := 0; realized := 0; cost_basis_complete := true; realized_complete := true;
            negative_tx := NULL; negative_at := NULL; negative_running := NULL;
            exact := 0; lot_qty := '{}'; lot_cost := '{}'; lots := 0; head := 1; unknown_lots := 0;
            unknown_held := false;
        ELSIF negative_tx IS NOT NULL THEN
            CONTINUE;  -- this pair is refused; its numbers mean nothing after the first negative
        END IF;

        IF r.acquires THEN
            amount := amount + r.amount;
            total_in := total_in + r.amount;
            IF r.price_usd IS NOT NULL THEN
                priced_in_qty := priced_in_qty + r.amount;
                priced_in_value := priced_in_value + r.amount * r.price_usd;
            END IF;
            IF fifo THEN
                lots := lots + 1;
                lot_qty[lots] := r.amount;
                lot_cost[lots] := r.price_usd;
                IF r.price_usd IS NULL THEN
                    unknown_lots := unknown_lots + 1;
                ELSE
                    exact := exact + r.amount * r.price_usd;
                    cost_basis := round(exact, 18);
                END IF;
            ELSIF r.price_usd IS NULL THEN
                unknown_held := true;
            ELSE
                cost_basis := cost_basis + round(r.amount * r.price_usd, 18);
            END IF;
            CONTINUE;
        END IF;

        -- A disposal.
        total_out := total_out + r.amount;
        IF r.price_usd IS NOT NULL THEN
            priced_out_qty := priced_out_qty + r.amount;
            priced_out_value := priced_out_value + r.amount * r.price_usd;
        END IF;
        IF r.amount > amount THEN
            negative_tx := r.id; negative_at := r.timestamp; negative_running := amount - r.amount;
            CONTINUE;
        END IF;
        IF r.sells AND r.price_usd IS NULL THEN
            realized_complete := false;
        END IF;
        IF fifo THEN
            need := r.amount;
            WHILE need > 0 LOOP
                lot := lot_qty[head];
                IF lot_cost[head] IS NULL AND r.sells THEN
                    realized_complete := false;  -- cost taken from units of unknown cost
                END IF;
                IF lot <= need THEN
                    exact := exact - lot * coalesce(lot_cost[head], 0);
                    need := need - lot;
                    IF lot_cost[head] IS NULL THEN
                        unknown_lots := unknown_lots - 1;
                    END IF;
                    lot_qty[head] := NULL; lot_cost[head] := NULL;  -- let a long history's arrays stay small in memory
                    head := head + 1;
                ELSE
                    exact := exact - need * coalesce(lot_cost[head], 0);
                    lot_qty[head] := lot - need;
                    need := 0;
                END IF;
            END LOOP;
            cost := cost_basis - round(exact, 18);
        ELSE
            IF unknown_held AND r.sells THEN
                realized_complete := false;  -- cost taken from units of unknown cost
            END IF;
            IF r.amount = amount THEN
                cost := cost_basis;
            ELSE
                cost := bt_round_div(cost_basis * r.amount, amount);
            END IF;
        END IF;
        cost_basis := cost_basis - cost;
        amount := amount - r.amount;
        IF amount = 0 THEN
            unknown_held := false;
        END IF;
        IF r.sells AND r.price_usd IS NOT NULL THEN
            realized := realized + round(r.amount * r.price_usd, 18) - cost;
        END IF;
    END LOOP;
    IF started THEN
        cost_basis_complete := negative_tx IS NOT NULL
                    OR (fifo AND unknown_lots = 0) OR NOT (fifo OR unknown_held);
        RETURN NEXT;
    END IF;
END
$fn$;
"""


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0004_job_run_stats")]

    operations = [
        migrations.RunSQL(ROUND_DIV_SQL, "DROP FUNCTION IF EXISTS bt_round_div(numeric, numeric)"),
        migrations.RunSQL(
            LEDGER_WALK_SQL,
            "DROP FUNCTION IF EXISTS bt_ledger_walk(text, bigint, bigint, bigint[], bigint[], timestamptz)",
        ),
    ]
