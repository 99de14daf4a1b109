# The ledger's walk with fewer numeric operations per transaction (docs/ledger.md, "The cost of a
# step"): the same function, signature and results as snapshots.0010's. Measured as backend CPU on
# one pair of 1,000,000 transactions (BENCHMARKS.md), the cost of a step is its numeric operations
# (each allocates its result; ~0.1-0.15 µs) more than its statements, so:
#
# - the query hands over the amount and the value q·p with their scale trimmed (trim_scale: the
#   same values, but 1.5 rather than 1.500000000000000000, and products of 12 places rather than
#   36): every sum and product of the step works on the digits the numbers have;
# - average keeps C as bought − sold − moved (Σ round(q·p) of the priced acquisitions less the cost
#   taken by priced sells and by the other disposals), so a disposal is one assignment of the cost
#   it takes, and R = Σ round(q·s) − sold at the end of the pair; the amount is total_in −
#   total_out, not a variable of its own;
# - fifo keeps the lot being consumed in two scalars (its rest and unit cost): a disposal within it
#   reads and writes no array element and computes its cost inside the realized sum; only a priced
#   sell rounds (a transfer_out or an unpriced sell realizes nothing).
#
# bagtracker.0004 puts the acquisitions-first key into the ledger-order index, so the walk's read
# of a pair needs no sort.

from django.db import migrations

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
-- Listed wallets are read in the ledger-order index's order. The planner otherwise sometimes took
-- the wallet_id index with an incremental sort presorted on the wallet alone (for one wallet: a
-- full sort of its rows, estimated as cheap as the index's order): 3.1 s of backend CPU instead of
-- 2.3 s for a pair of 1,000,000 transactions. For the walk's query only (and the refused pair's).
SET enable_incremental_sort = off
LANGUAGE plpgsql AS $fn$
DECLARE
    scope text;
    walk text;
    -- The current transaction: its pair, amount q, value v = q·p (NULL: no price), unit price p
    -- (fifo only) and k: 0 a priced acquisition, 1 an unpriced one, 2 a priced sell, 3 an unpriced
    -- one, 4 a priced transfer_out, 5 an unpriced one.
    t_wallet bigint; t_token bigint; q numeric; v numeric; p numeric; k int;
    -- The current pair; cur_token is -1 once the pair is refused, so that its other rows are skipped.
    cur_wallet bigint := -1; cur_token bigint := -1;
    -- The amount held is total_in − total_out (not kept: one assignment less per disposal).
    unpriced_in numeric; unpriced_out numeric;
    -- average: C = bought − sold − moved
    bought numeric;         -- Σ round(q·p) over the priced acquisitions
    sold numeric;           -- Σ cost taken by priced sells (R = Σ round(q·s) − sold)
    moved numeric;          -- Σ cost taken by the other disposals
    unknown_held boolean;   -- an unknown-cost acquisition since the amount was last 0
    -- fifo
    consumed numeric;       -- Σ q·p over the consumed parts of priced lots, exact
    lot_qty numeric[];      -- the lots, oldest first: lot_qty[head + 1 .. lots] not yet started
    lot_cost numeric[];     -- their unit costs; NULL: unknown
    lots int;
    head int;               -- the lot being consumed (its rest in head_left, its cost in head_p)
    head_left numeric;      -- 0: none started (the next disposal starts lot head + 1)
    head_p numeric;
    unknown_lots int;       -- open lots of unknown cost
    need numeric;
    before_cost numeric;
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
    walk := 'SELECT t.wallet_id, t.token_id, trim_scale(t.amount), trim_scale(t.amount * t.price_usd),'
         || CASE WHEN method = 'fifo' THEN ' trim_scale(t.price_usd),' ELSE '' END
         || '       CASE WHEN t.kind IN (''buy'', ''transfer_in'') THEN 0 WHEN t.kind = ''sell'' THEN 2 ELSE 4 END'
            '       + CASE WHEN t.price_usd IS NULL THEN 1 ELSE 0 END'
         || scope
         -- A range of wallets (recalculate --all) is scanned and sorted: its rows lie all over the
         -- heap (stored in time order), and reading them through the ledger-order index costs
         -- ~40 % more CPU even when the table is cached, which the planner does not see
         -- (wallet_id + 0 keeps it from taking the index's order). Listed wallets or pairs (an
         -- import, an edit, recalculate --wallet, a boundary's moved pairs) are read in index order.
         || CASE WHEN only_wallets IS NULL THEN ' ORDER BY t.wallet_id + 0,' ELSE ' ORDER BY t.wallet_id,' END
         || ' t.token_id, t.timestamp, t.kind NOT IN (''buy'', ''transfer_in''), t.id';

    IF method = 'average' THEN
    FOR t_wallet, t_token, q, v, k IN EXECUTE walk
        USING coalesce(wallet_lo, 0), coalesce(wallet_hi, 9223372036854775807), only_wallets, only_tokens, before
    LOOP
        IF t_token <> cur_token OR t_wallet <> cur_wallet THEN
            IF t_wallet = wallet_id AND t_token = token_id THEN
                CONTINUE;  -- a refused pair
            END IF;
            IF wallet_id IS NOT NULL THEN
                IF negative_tx IS NULL THEN
                    amount := total_in - total_out;
                    priced_in_qty := total_in - unpriced_in;
                    priced_out_qty := total_out - unpriced_out;
                    cost_basis := bought - sold - moved;
                    realized := realized - sold;
                    cost_basis_complete := NOT unknown_held;
                END IF;
                RETURN NEXT;
            END IF;
            wallet_id := t_wallet; token_id := t_token; cur_wallet := t_wallet; cur_token := t_token;
            total_in := 0; total_out := 0; unpriced_in := 0; unpriced_out := 0;
            priced_in_value := 0; priced_out_value := 0; realized := 0; realized_complete := true;
            negative_tx := NULL; negative_at := NULL; negative_running := NULL;
            bought := 0; sold := 0; moved := 0; unknown_held := false;
        END IF;
        IF k = 0 THEN
            total_in := total_in + q;
            priced_in_value := priced_in_value + v;
            bought := bought + round(v, 18);
        ELSIF k = 1 THEN
            total_in := total_in + q;
            unpriced_in := unpriced_in + q;
            unknown_held := true;
        ELSIF q < total_in - total_out THEN
            -- A partial disposal takes round(C·q/Q) exactly, once: floor((2·C·q + Q) / 2Q) at 18
            -- places (div() truncates the exact quotient; both operands are >= 0).
            IF k = 2 THEN
                priced_out_value := priced_out_value + v;
                realized := realized + round(v, 18);
                IF unknown_held THEN
                    realized_complete := false;  -- a sell of units of unknown cost
                END IF;
                sold := sold + div((bought - sold - moved) * q * 2000000000000000000 + total_in - total_out,
                                   (total_in - total_out) * 2) * 0.000000000000000001;
            ELSE
                IF k = 4 THEN
                    priced_out_value := priced_out_value + v;
                ELSE
                    unpriced_out := unpriced_out + q;
                    IF k = 3 THEN
                        realized_complete := false;  -- a sell without a price
                    END IF;
                END IF;
                moved := moved + div((bought - sold - moved) * q * 2000000000000000000 + total_in - total_out,
                                     (total_in - total_out) * 2) * 0.000000000000000001;
            END IF;
            total_out := total_out + q;
        ELSIF q = total_in - total_out THEN
            -- A full disposal takes C: the cost basis is 0 after it.
            IF k = 2 THEN
                priced_out_value := priced_out_value + v;
                realized := realized + round(v, 18);
                IF unknown_held THEN
                    realized_complete := false;
                END IF;
                sold := bought - moved;
            ELSE
                IF k = 4 THEN
                    priced_out_value := priced_out_value + v;
                ELSE
                    unpriced_out := unpriced_out + q;
                    IF k = 3 THEN
                        realized_complete := false;
                    END IF;
                END IF;
                moved := bought - sold;
            END IF;
            total_out := total_out + q;
            unknown_held := false;
        ELSE
            -- A disposal of more than the amount: the pair is refused.
            negative_running := round(total_in - total_out - q, 18);
            amount := total_in - total_out;
            total_out := total_out + q;
            IF v IS NULL THEN
                unpriced_out := unpriced_out + q;
            ELSE
                priced_out_value := priced_out_value + v;
            END IF;
            priced_in_qty := total_in - unpriced_in;
            priced_out_qty := total_out - unpriced_out;
            cost_basis := bought - sold - moved;
            realized := realized - sold;
            cost_basis_complete := true;
            SELECT f.id, f.at INTO negative_tx, negative_at FROM bt_ledger_first_negative(t_wallet, t_token, before) f;
            cur_token := -1;
        END IF;
    END LOOP;
    IF wallet_id IS NOT NULL THEN
        IF negative_tx IS NULL THEN
            amount := total_in - total_out;
            priced_in_qty := total_in - unpriced_in;
            priced_out_qty := total_out - unpriced_out;
            cost_basis := bought - sold - moved;
            realized := realized - sold;
            cost_basis_complete := NOT unknown_held;
        END IF;
        RETURN NEXT;
    END IF;
    RETURN;
    END IF;

    FOR t_wallet, t_token, q, v, p, k IN EXECUTE walk
        USING coalesce(wallet_lo, 0), coalesce(wallet_hi, 9223372036854775807), only_wallets, only_tokens, before
    LOOP
        IF t_token <> cur_token OR t_wallet <> cur_wallet THEN
            IF t_wallet = wallet_id AND t_token = token_id THEN
                CONTINUE;  -- a refused pair
            END IF;
            IF wallet_id IS NOT NULL THEN
                IF negative_tx IS NULL THEN
                    amount := total_in - total_out;
                    priced_in_qty := total_in - unpriced_in;
                    priced_out_qty := total_out - unpriced_out;
                    cost_basis := round(priced_in_value - consumed, 18);
                    cost_basis_complete := unknown_lots = 0;
                END IF;
                RETURN NEXT;
            END IF;
            wallet_id := t_wallet; token_id := t_token; cur_wallet := t_wallet; cur_token := t_token;
            total_in := 0; total_out := 0; unpriced_in := 0; unpriced_out := 0;
            priced_in_value := 0; priced_out_value := 0; realized := 0; realized_complete := true;
            negative_tx := NULL; negative_at := NULL; negative_running := NULL;
            consumed := 0; lot_qty := '{}'; lot_cost := '{}'; lots := 0; head := 0; head_left := 0;
            unknown_lots := 0;
        END IF;
        IF k = 0 THEN
            total_in := total_in + q;
            priced_in_value := priced_in_value + v;
            lots := lots + 1;
            lot_qty[lots] := q;
            lot_cost[lots] := p;
        ELSIF k = 1 THEN
            total_in := total_in + q;
            unpriced_in := unpriced_in + q;
            lots := lots + 1;
            lot_qty[lots] := q;
            lot_cost[lots] := NULL;
            unknown_lots := unknown_lots + 1;
        ELSIF q < head_left THEN
            -- A disposal within the lot being consumed (the common case): consumed grows by q·p,
            -- the cost taken is round(Σ before) − round(Σ after).
            total_out := total_out + q;
            head_left := head_left - q;
            IF k = 2 THEN
                priced_out_value := priced_out_value + v;
                IF head_p IS NULL THEN
                    realized := realized + round(v, 18);
                    realized_complete := false;  -- a sell of units of unknown cost
                ELSE
                    realized := realized + round(v, 18) - round(priced_in_value - consumed, 18)
                                + round(priced_in_value - consumed - q * head_p, 18);
                    consumed := consumed + q * head_p;
                END IF;
            ELSE
                IF k = 4 THEN
                    priced_out_value := priced_out_value + v;
                ELSE
                    unpriced_out := unpriced_out + q;
                    IF k = 3 THEN
                        realized_complete := false;  -- a sell without a price
                    END IF;
                END IF;
                IF head_p IS NOT NULL THEN
                    consumed := consumed + q * head_p;
                ELSIF k = 3 THEN
                    realized_complete := false;
                END IF;
            END IF;
        ELSIF q <= total_in - total_out THEN
            -- A disposal that finishes the lot being consumed and perhaps starts later ones.
            total_out := total_out + q;
            IF k = 2 THEN
                priced_out_value := priced_out_value + v;
                before_cost := round(priced_in_value - consumed, 18);
            ELSIF k = 4 THEN
                priced_out_value := priced_out_value + v;
            ELSE
                unpriced_out := unpriced_out + q;
                IF k = 3 THEN
                    realized_complete := false;  -- a sell without a price
                END IF;
            END IF;
            need := q;
            LOOP
                IF head_left = 0 THEN
                    head := head + 1;
                    head_left := lot_qty[head];
                    head_p := lot_cost[head];
                END IF;
                IF head_p IS NULL AND k < 4 THEN
                    realized_complete := false;  -- a sell of units of unknown cost
                END IF;
                IF head_left > need THEN
                    IF head_p IS NOT NULL THEN
                        consumed := consumed + need * head_p;
                    END IF;
                    head_left := head_left - need;
                    EXIT;
                END IF;
                IF head_p IS NOT NULL THEN
                    consumed := consumed + head_left * head_p;
                ELSE
                    unknown_lots := unknown_lots - 1;
                END IF;
                need := need - head_left;
                head_left := 0;
                EXIT WHEN need = 0;
            END LOOP;
            IF head > 1024 AND head > lots - head THEN
                -- Keep the arrays as long as the lots not yet started (amortised O(1) per lot).
                lot_qty := lot_qty[head + 1:lots];
                lot_cost := lot_cost[head + 1:lots];
                lots := lots - head;
                head := 0;
            END IF;
            IF k = 2 THEN
                realized := realized + round(v, 18) - before_cost + round(priced_in_value - consumed, 18);
            END IF;
        ELSE
            -- A disposal of more than the amount: the pair is refused.
            negative_running := round(total_in - total_out - q, 18);
            amount := total_in - total_out;
            total_out := total_out + q;
            IF v IS NULL THEN
                unpriced_out := unpriced_out + q;
            ELSE
                priced_out_value := priced_out_value + v;
            END IF;
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
            amount := total_in - total_out;
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

    return import_module("snapshots.migrations.0010_ledger_walk_per_row").LEDGER_WALK_SQL


class Migration(migrations.Migration):
    dependencies = [
        ("snapshots", "0013_summary_intervals"),
        ("bagtracker", "0004_ledger_order_kind"),
    ]

    operations = [migrations.RunSQL(LEDGER_WALK_SQL, _previous_walk())]
