# The ledger's walk, cheaper per transaction (docs/ledger.md, "What is computed, and where"): the same
# function, signature and results as snapshots.0005's, with the work per row cut down. A row of the
# walk's query now costs about as much to hand to PL/pgSQL as it costs to read and sort, so:
#
# - the query hands over five columns (pair, amount, price, and the kind and whether it is priced as
#   one small integer), not eight into a record: a record assignment per row cost more than the
#   whole arithmetic of an acquisition; the id and instant of a refused transaction are looked up
#   by bt_ledger_first_negative, only for a refused pair;
# - one loop per method (no method test per row); an acquisition is two or three assignments
#   (average: Q, Σ q·p, C += round(q·p); fifo: Q, Σ q·p and the lot's two array elements);
#   total_in and the priced quantities are derived once per pair from Q, total_out and the
#   unpriced sums;
# - a partial disposal's round(C·q/Q) is one exact div() inline, floor((2·C·q + Q) / 2Q), not a
#   call of the SQL function bt_round_div (not inlined into PL/pgSQL, and div() plus mod());
# - fifo rounds its exact Σ only at disposals and at the end, and keeps its lot arrays as long as
#   the open lots (a slice when more than half are consumed) instead of clearing consumed elements.

from django.db import migrations

# The first confirmed transaction of a pair (before a boundary, when given) at which the running
# amount in ledger order goes below zero: the transaction the walk reports for a refused pair.
FIRST_NEGATIVE_SQL = """
CREATE OR REPLACE FUNCTION bt_ledger_first_negative(wallet bigint, token bigint, before timestamptz,
                                                    OUT id bigint, OUT at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT s.id, s.timestamp
    FROM (
        SELECT t.id, t.timestamp, t.kind NOT IN ('buy', 'transfer_in') AS disposes,
               sum(CASE WHEN t.kind IN ('buy', 'transfer_in') THEN t.amount ELSE -t.amount END) OVER (
                   ORDER BY t.timestamp, t.kind NOT IN ('buy', 'transfer_in'), t.id ROWS UNBOUNDED PRECEDING
               ) AS running
        FROM bagtracker_transaction t
        WHERE t.status = 'confirmed' AND t.wallet_id = wallet AND t.token_id = token
          AND (before IS NULL OR t.timestamp < before)
    ) s
    WHERE s.running < 0
    ORDER BY s.timestamp, s.disposes, s.id
    LIMIT 1
$$;
"""

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
    fifo boolean := method = 'fifo';
    scope text;
    walk text;
    -- The current transaction: its pair, amount q, price p and k: 0 a priced acquisition,
    -- 1 an unpriced one, 2 a priced sell, 3 an unpriced one, 4 a priced transfer_out, 5 an unpriced one.
    t_wallet bigint; t_token bigint; q numeric; p numeric; k int;
    -- The current pair; cur_token is -1 once the pair is refused, so that its other rows are skipped.
    cur_wallet bigint := -1; cur_token bigint := -1;
    unpriced_in numeric; unpriced_out numeric;
    cost numeric;
    -- average
    held numeric;           -- C
    unknown_held boolean;   -- an unknown-cost acquisition since the amount was last 0
    -- fifo
    consumed numeric;       -- Σ q·p over the consumed parts of priced lots, exact
    lot_qty numeric[];      -- the open lots, oldest first: lot_qty[head .. lots]
    lot_cost numeric[];     -- their unit costs; NULL: unknown
    lots int;
    head int;
    unknown_lots int;       -- open lots of unknown cost
    need numeric;
    lot numeric;
    lot_p numeric;
BEGIN
    IF method NOT IN ('average', 'fifo') THEN
        RAISE EXCEPTION 'unknown cost basis method %', method;
    END IF;
    scope := ' FROM bagtracker_transaction t'
           ' WHERE t.status = ''confirmed'' AND t.wallet_id BETWEEN $1 AND $2'
        || CASE WHEN only_wallets IS NULL THEN ''
                WHEN only_tokens IS NULL THEN ' AND t.wallet_id = ANY($3)'
                ELSE ' AND (t.wallet_id, t.token_id) IN (SELECT * FROM unnest($3, $4))' END
        || CASE WHEN before IS NULL THEN '' ELSE ' AND t.timestamp < $5' END;
    walk := 'SELECT t.wallet_id, t.token_id, t.amount, t.price_usd,'
            '       CASE WHEN t.kind IN (''buy'', ''transfer_in'') THEN 0 WHEN t.kind = ''sell'' THEN 2 ELSE 4 END'
            '       + CASE WHEN t.price_usd IS NULL THEN 1 ELSE 0 END'
         || scope
         || ' ORDER BY t.wallet_id, t.token_id, t.timestamp, t.kind NOT IN (''buy'', ''transfer_in''), t.id';

    IF NOT fifo THEN
    FOR t_wallet, t_token, q, p, k IN EXECUTE walk
        USING coalesce(wallet_lo, 0), coalesce(wallet_hi, 9223372036854775807), only_wallets, only_tokens, before
    LOOP
        IF t_token <> cur_token OR t_wallet <> cur_wallet THEN
            IF t_wallet = wallet_id AND t_token = token_id THEN
                CONTINUE;  -- a refused pair
            END IF;
            IF wallet_id IS NOT NULL THEN
                IF negative_tx IS NULL THEN
                    total_in := amount + total_out;
                    priced_in_qty := total_in - unpriced_in;
                    priced_out_qty := total_out - unpriced_out;
                    cost_basis := held;
                    cost_basis_complete := NOT unknown_held;
                END IF;
                RETURN NEXT;
            END IF;
            wallet_id := t_wallet; token_id := t_token; cur_wallet := t_wallet; cur_token := t_token;
            amount := 0; total_out := 0; unpriced_in := 0; unpriced_out := 0;
            priced_in_value := 0; priced_out_value := 0; realized := 0; realized_complete := true;
            negative_tx := NULL; negative_at := NULL; negative_running := NULL;
            held := 0; unknown_held := false;
        END IF;
        IF k = 0 THEN
            amount := amount + q;
            priced_in_value := priced_in_value + q * p;
            held := held + round(q * p, 18);
        ELSIF k = 1 THEN
            amount := amount + q;
            unpriced_in := unpriced_in + q;
            unknown_held := true;
        ELSIF q <= amount THEN
            -- A disposal.
            total_out := total_out + q;
            IF p IS NULL THEN
                unpriced_out := unpriced_out + q;
            ELSE
                priced_out_value := priced_out_value + q * p;
            END IF;
            IF k = 3 OR (k = 2 AND unknown_held) THEN
                realized_complete := false;  -- a sell without a price, or of units of unknown cost
            END IF;
            IF q < amount THEN
                -- round(C·q/Q) exactly, once: floor((2·C·q + Q) / 2Q) at 18 places; div() is exact
                cost := div(held * q * 2000000000000000000 + amount, amount * 2) * 0.000000000000000001;
                amount := amount - q;
            ELSE
                cost := held;
                amount := 0;
                unknown_held := false;
            END IF;
            held := held - cost;
            IF k = 2 THEN
                realized := realized + round(q * p, 18) - cost;
            END IF;
        ELSE
            -- A disposal of more than the amount: the pair is refused.
            total_out := total_out + q;
            IF p IS NULL THEN
                unpriced_out := unpriced_out + q;
            ELSE
                priced_out_value := priced_out_value + q * p;
            END IF;
            negative_running := amount - q;
            total_in := amount + total_out - q;
            priced_in_qty := total_in - unpriced_in;
            priced_out_qty := total_out - unpriced_out;
            cost_basis := held;
            cost_basis_complete := true;
            SELECT f.id, f.at INTO negative_tx, negative_at FROM bt_ledger_first_negative(t_wallet, t_token, before) f;
            cur_token := -1;
        END IF;
    END LOOP;
    IF wallet_id IS NOT NULL THEN
        IF negative_tx IS NULL THEN
            total_in := amount + total_out;
            priced_in_qty := total_in - unpriced_in;
            priced_out_qty := total_out - unpriced_out;
            cost_basis := held;
            cost_basis_complete := NOT unknown_held;
        END IF;
        RETURN NEXT;
    END IF;
    RETURN;
    END IF;

    FOR t_wallet, t_token, q, p, k IN EXECUTE walk
        USING coalesce(wallet_lo, 0), coalesce(wallet_hi, 9223372036854775807), only_wallets, only_tokens, before
    LOOP
        IF t_token <> cur_token OR t_wallet <> cur_wallet THEN
            IF t_wallet = wallet_id AND t_token = token_id THEN
                CONTINUE;  -- a refused pair
            END IF;
            IF wallet_id IS NOT NULL THEN
                IF negative_tx IS NULL THEN
                    total_in := amount + total_out;
                    priced_in_qty := total_in - unpriced_in;
                    priced_out_qty := total_out - unpriced_out;
                    cost_basis := round(priced_in_value - consumed, 18);
                    cost_basis_complete := unknown_lots = 0;
                END IF;
                RETURN NEXT;
            END IF;
            wallet_id := t_wallet; token_id := t_token; cur_wallet := t_wallet; cur_token := t_token;
            amount := 0; total_out := 0; unpriced_in := 0; unpriced_out := 0;
            priced_in_value := 0; priced_out_value := 0; realized := 0; realized_complete := true;
            negative_tx := NULL; negative_at := NULL; negative_running := NULL;
            consumed := 0; lot_qty := '{}'; lot_cost := '{}'; lots := 0; head := 1; unknown_lots := 0;
        END IF;
        IF k = 0 THEN
            amount := amount + q;
            priced_in_value := priced_in_value + q * p;
            lots := lots + 1;
            lot_qty[lots] := q;
            lot_cost[lots] := p;
        ELSIF k = 1 THEN
            amount := amount + q;
            unpriced_in := unpriced_in + q;
            lots := lots + 1;
            lot_qty[lots] := q;
            lot_cost[lots] := NULL;
            unknown_lots := unknown_lots + 1;
        ELSIF q <= amount THEN
            -- A disposal: it consumes the oldest lots.
            total_out := total_out + q;
            IF p IS NULL THEN
                unpriced_out := unpriced_out + q;
                IF k = 3 THEN
                    realized_complete := false;  -- a sell without a price
                END IF;
            ELSE
                priced_out_value := priced_out_value + q * p;
            END IF;
            amount := amount - q;
            cost := round(priced_in_value - consumed, 18);
            lot := lot_qty[head];
            IF lot > q THEN
                -- Part of the oldest lot (the common case).
                lot_p := lot_cost[head];
                IF lot_p IS NOT NULL THEN
                    consumed := consumed + q * lot_p;
                ELSIF k < 4 THEN
                    realized_complete := false;  -- a sell of units of unknown cost
                END IF;
                lot_qty[head] := lot - q;
            ELSE
                need := q;
                LOOP
                    lot_p := lot_cost[head];
                    IF lot_p IS NULL THEN
                        IF k < 4 THEN
                            realized_complete := false;  -- a sell of units of unknown cost
                        END IF;
                        IF lot > need THEN
                            lot_qty[head] := lot - need;
                            EXIT;
                        END IF;
                        unknown_lots := unknown_lots - 1;
                    ELSIF lot > need THEN
                        consumed := consumed + need * lot_p;
                        lot_qty[head] := lot - need;
                        EXIT;
                    ELSE
                        consumed := consumed + lot * lot_p;
                    END IF;
                    head := head + 1;
                    need := need - lot;
                    EXIT WHEN need = 0;
                    lot := lot_qty[head];
                END LOOP;
                IF head > 1024 AND head > lots - head THEN
                    -- Keep the arrays as long as the open lots (amortised O(1) per lot).
                    lot_qty := lot_qty[head:lots];
                    lot_cost := lot_cost[head:lots];
                    lots := lots - head + 1;
                    head := 1;
                END IF;
            END IF;
            cost := cost - round(priced_in_value - consumed, 18);
            IF k = 2 THEN
                realized := realized + round(q * p, 18) - cost;
            END IF;
        ELSE
            -- A disposal of more than the amount: the pair is refused.
            total_out := total_out + q;
            IF p IS NULL THEN
                unpriced_out := unpriced_out + q;
            ELSE
                priced_out_value := priced_out_value + q * p;
            END IF;
            negative_running := amount - q;
            total_in := amount + total_out - q;
            priced_in_qty := total_in - unpriced_in;
            priced_out_qty := total_out - unpriced_out;
            cost_basis := round(priced_in_value - consumed, 18);
            cost_basis_complete := true;
            SELECT f.id, f.at INTO negative_tx, negative_at FROM bt_ledger_first_negative(t_wallet, t_token, before) f;
            cur_token := -1;
        END IF;
    END LOOP;
    IF wallet_id IS NOT NULL THEN
        IF negative_tx IS NULL THEN
            total_in := amount + total_out;
            priced_in_qty := total_in - unpriced_in;
            priced_out_qty := total_out - unpriced_out;
            cost_basis := round(priced_in_value - consumed, 18);
            cost_basis_complete := unknown_lots = 0;
        END IF;
        RETURN NEXT;
    END IF;
END
$fn$;
"""


def _previous_walk():
    from importlib import import_module

    return import_module("snapshots.migrations.0005_ledger_walk").LEDGER_WALK_SQL


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0009_fast_boundaries")]

    operations = [
        migrations.RunSQL(
            FIRST_NEGATIVE_SQL,
            "DROP FUNCTION IF EXISTS bt_ledger_first_negative(bigint, bigint, timestamptz)",
        ),
        migrations.RunSQL(LEDGER_WALK_SQL, _previous_walk()),
    ]
