# The fifo walk with fewer operations per transaction (docs/ledger.md, "The cost of a step"): the
# same function, signature and results as snapshots.0014's; the average loop is unchanged. Measured
# as backend CPU on one pair of 1,000,000 transactions (BENCHMARKS.md), a fifo step was ~1.8 µs a
# sell and ~0.5 µs an acquisition, so:
#
# - R is not kept per priced sell while no rounding matters: a sell's cost round(Σ before) −
#   round(Σ after) equals the exact cost d it consumed when d has at most 18 places (Σ >= 0, and
#   rounding half up commutes with whole units of 10^-18), and round(q·s) = q·s likewise; while
#   the display scales of Σ d (consumed) and Σ q·s (priced_out_value) are <= 18 — they only grow —
#   R = (priced_out_value − the priced transfer_outs' Σ q·p) − (consumed − the other disposals'
#   Σ d), once per pair. The first sell past that keeps R from then on, with both roundings;
# - no total_in per acquisition: a disposal of more than the amount is found when no lot is left
#   to start, and total_in is total_out + what the open lots hold, summed at the end of the pair;
# - an unknown-cost lot costs 0 in the arrays and is listed in an integer array; the first one
#   not yet used up is an integer, so no lot's cost is tested for NULL;
# - a disposal that uses up the lot being consumed starts the next ones in a tighter loop;
# - the query hands fifo the price, not trim_scale(amount × price): the product of the stored
#   18-place operands cost ~0.13 µs a row, more than q·p of the trimmed ones where it is used.
#
# The function is copied here, not imported: this migration's SQL must not change with later code.

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
    -- The current transaction: its pair, amount q, value v = q·p (average; NULL: no price), unit
    -- price p (fifo; NULL: no price) and k: 0 a priced acquisition, 1 an unpriced one, 2 a priced
    -- sell, 3 an unpriced one, 4 a priced transfer_out, 5 an unpriced one.
    t_wallet bigint; t_token bigint; q numeric; v numeric; p numeric; k int;
    -- The current pair; cur_token is -1 once the pair is refused, so that its other rows are skipped.
    cur_wallet bigint := -1; cur_token bigint := -1;
    -- The amount held is total_in − total_out (not kept: one assignment less per disposal).
    unpriced_in numeric; unpriced_out numeric;
    -- average: C = bought − sold − moved
    bought numeric;         -- Σ round(q·p) over the priced acquisitions
    sold numeric;           -- Σ cost taken by priced sells (R = Σ round(q·s) − sold)
    moved numeric;          -- Σ cost taken by the other disposals (fifo too, exact)
    unknown_held boolean;   -- an unknown-cost acquisition since the amount was last 0
    -- fifo (total_in is not kept either: at the end it is total_out + what the open lots hold)
    consumed numeric;       -- Σ q·p over the consumed parts of the lots, exact
    lot_qty numeric[];      -- the lots, oldest first: lot_qty[head + 1 .. lots] not yet started
    lot_cost numeric[];     -- their unit costs; 0 for an unknown cost (the lot is listed in unknown)
    lots int;
    head int;               -- the lot being consumed (its rest in head_left, its cost in head_p)
    head_left numeric;      -- 0: used up, or none started (the next disposal starts lot head + 1)
    head_p numeric;
    unknown int[];          -- the lots of unknown cost, in order: unknown[unknown_next ..] not used up
    unknown_count int;
    unknown_next int;
    unknown_lot int;        -- unknown[unknown_next]; 2147483647: none
    -- While exact, no rounding has changed anything: every priced sell's q·s and cost taken c had
    -- at most 18 places, so R = Σ q·s − Σ c = (priced_out_value − out_moved) − (consumed − moved),
    -- derived at the end; realized is kept per sell only once a sell needs a rounding.
    exact boolean;
    out_moved numeric;      -- Σ q·p over the priced transfer_outs
    need numeric;
    before_cost numeric;
    i int;
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
    walk := 'SELECT t.wallet_id, t.token_id, trim_scale(t.amount),'
         || CASE WHEN method = 'fifo' THEN ' trim_scale(t.price_usd),' ELSE ' trim_scale(t.amount * t.price_usd),' END
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

    <<rows>>
    FOR t_wallet, t_token, q, p, k IN EXECUTE walk
        USING coalesce(wallet_lo, 0), coalesce(wallet_hi, 9223372036854775807), only_wallets, only_tokens, before
    LOOP
        IF t_token <> cur_token OR t_wallet <> cur_wallet THEN
            IF t_wallet = wallet_id AND t_token = token_id THEN
                CONTINUE;  -- a refused pair
            END IF;
            IF wallet_id IS NOT NULL THEN
                IF negative_tx IS NULL THEN
                    need := total_out + head_left;  -- total_in: what left plus what is held
                    IF lots - head > 32 THEN
                        need := need + (SELECT sum(x) FROM unnest(lot_qty[head + 1:lots]) x);
                    ELSE
                        FOR i IN head + 1 .. lots LOOP
                            need := need + lot_qty[i];
                        END LOOP;
                    END IF;
                    total_in := need;
                    amount := total_in - total_out;
                    priced_in_qty := total_in - unpriced_in;
                    priced_out_qty := total_out - unpriced_out;
                    cost_basis := round(priced_in_value - consumed, 18);
                    cost_basis_complete := unknown_lot = 2147483647;
                    IF exact THEN
                        realized := priced_out_value - out_moved - consumed + moved;
                    END IF;
                END IF;
                RETURN NEXT;
            END IF;
            wallet_id := t_wallet; token_id := t_token; cur_wallet := t_wallet; cur_token := t_token;
            total_out := 0; unpriced_in := 0; unpriced_out := 0;
            priced_in_value := 0; priced_out_value := 0; realized := 0; realized_complete := true;
            negative_tx := NULL; negative_at := NULL; negative_running := NULL;
            consumed := 0; exact := true; moved := 0; out_moved := 0;
            lot_qty := '{}'; lot_cost := '{}'; lots := 0; head := 0; head_left := 0; head_p := 0;
            unknown := '{}'; unknown_count := 0; unknown_next := 1; unknown_lot := 2147483647;
        END IF;
        IF k = 0 THEN
            priced_in_value := priced_in_value + q * p;
            lots := lots + 1;
            lot_qty[lots] := q;
            lot_cost[lots] := p;
        ELSIF k = 1 THEN
            unpriced_in := unpriced_in + q;
            lots := lots + 1;
            lot_qty[lots] := q;
            lot_cost[lots] := 0;  -- an unknown cost counts as 0; the lot is listed in unknown
            unknown_count := unknown_count + 1;
            unknown[unknown_count] := lots;
            IF unknown_next = unknown_count THEN
                unknown_lot := lots;
            END IF;
        ELSIF q < head_left THEN
            -- A disposal within the lot being consumed (the common case): consumed grows by q·p;
            -- the cost taken is round(Σ before) − round(Σ after), which is q·p itself while that has
            -- at most 18 places (the open cost Σ is >= 0, and rounding it half up moves by whole
            -- units of 10^-18: docs/ledger.md, "The cost of a step").
            total_out := total_out + q;
            head_left := head_left - q;
            IF k = 2 THEN
                priced_out_value := priced_out_value + q * p;
                consumed := consumed + q * head_p;
                IF head = unknown_lot THEN
                    realized_complete := false;  -- a sell of units of unknown cost
                END IF;
                IF exact AND scale(consumed) <= 18 AND scale(priced_out_value) <= 18 THEN
                    NULL;  -- R derived at the end (the scales only grow: all earlier sells are exact)
                ELSIF NOT exact THEN
                    realized := realized + round(q * p, 18) - round(priced_in_value - consumed + q * head_p, 18)
                                + round(priced_in_value - consumed, 18);
                ELSE
                    -- The first sell that may need a rounding: R so far, exactly, then this sell's.
                    exact := false;
                    realized := priced_out_value - q * p - out_moved - consumed + q * head_p + moved
                                + round(q * p, 18) - round(priced_in_value - consumed + q * head_p, 18)
                                + round(priced_in_value - consumed, 18);
                END IF;
            ELSE
                IF k = 4 THEN
                    priced_out_value := priced_out_value + q * p;
                    out_moved := out_moved + q * p;
                ELSE
                    unpriced_out := unpriced_out + q;
                    IF k = 3 THEN
                        realized_complete := false;  -- a sell without a price
                    END IF;
                END IF;
                consumed := consumed + q * head_p;
                moved := moved + q * head_p;
            END IF;
        ELSE
            -- A disposal that uses up the lot being consumed and perhaps starts later ones; or one of
            -- more than the amount (no lot left to start: the pair is refused).
            need := q - head_left;
            before_cost := consumed;
            consumed := consumed + head_left * head_p;
            IF need = 0 THEN
                head_left := 0;
            ELSE
                LOOP
                    IF head = lots THEN
                        -- A disposal of more than the amount: the pair is refused.
                        IF exact THEN
                            realized := priced_out_value - out_moved - before_cost + moved;
                        END IF;
                        amount := q - need;
                        total_in := total_out + amount;
                        negative_running := round(-need, 18);
                        total_out := total_out + q;
                        IF p IS NULL THEN
                            unpriced_out := unpriced_out + q;
                        ELSE
                            priced_out_value := priced_out_value + q * p;
                        END IF;
                        priced_in_qty := total_in - unpriced_in;
                        priced_out_qty := total_out - unpriced_out;
                        cost_basis := round(priced_in_value - before_cost, 18);
                        cost_basis_complete := true;
                        SELECT f.id, f.at INTO negative_tx, negative_at
                        FROM bt_ledger_first_negative(t_wallet, t_token, before) f;
                        cur_token := -1;
                        CONTINUE rows;
                    END IF;
                    head := head + 1;
                    head_left := lot_qty[head];
                    head_p := lot_cost[head];
                    IF head_left >= need THEN
                        consumed := consumed + need * head_p;
                        head_left := head_left - need;
                        EXIT;
                    END IF;
                    consumed := consumed + head_left * head_p;
                    need := need - head_left;
                END LOOP;
            END IF;
            total_out := total_out + q;
            IF unknown_lot <= head THEN
                -- It took units of unknown cost: unknown lots up to head (head too once it is used up)
                -- are finished.
                IF k < 4 THEN
                    realized_complete := false;  -- a sell of units of unknown cost
                END IF;
                WHILE unknown_lot < head OR (unknown_lot = head AND head_left = 0) LOOP
                    unknown_next := unknown_next + 1;
                    unknown_lot := coalesce(unknown[unknown_next], 2147483647);
                END LOOP;
            END IF;
            IF head > 1024 AND head > lots - head THEN
                -- Keep the arrays as long as the lots not yet started (amortised O(1) per lot).
                lot_qty := lot_qty[head + 1:lots];
                lot_cost := lot_cost[head + 1:lots];
                lots := lots - head;
                IF unknown_lot < 2147483647 THEN
                    unknown := ARRAY(SELECT u - head FROM unnest(unknown[unknown_next:unknown_count]) u);
                    unknown_count := unknown_count - unknown_next + 1;
                    unknown_next := 1;
                    unknown_lot := unknown_lot - head;
                ELSE
                    unknown := '{}'; unknown_count := 0; unknown_next := 1;
                END IF;
                head := 0;
            END IF;
            IF k = 2 THEN
                priced_out_value := priced_out_value + q * p;
                IF exact AND scale(consumed) <= 18 AND scale(priced_out_value) <= 18 THEN
                    NULL;
                ELSIF NOT exact THEN
                    realized := realized + round(q * p, 18) - round(priced_in_value - before_cost, 18)
                                + round(priced_in_value - consumed, 18);
                ELSE
                    exact := false;  -- as above
                    realized := priced_out_value - q * p - out_moved - before_cost + moved
                                + round(q * p, 18) - round(priced_in_value - before_cost, 18)
                                + round(priced_in_value - consumed, 18);
                END IF;
            ELSE
                IF k = 4 THEN
                    priced_out_value := priced_out_value + q * p;
                    out_moved := out_moved + q * p;
                ELSE
                    unpriced_out := unpriced_out + q;
                    IF k = 3 THEN
                        realized_complete := false;  -- a sell without a price
                    END IF;
                END IF;
                moved := moved + consumed - before_cost;
            END IF;
        END IF;
    END LOOP;
    IF wallet_id IS NOT NULL THEN
        IF negative_tx IS NULL THEN
            need := total_out + head_left;
            IF lots - head > 32 THEN
                need := need + (SELECT sum(x) FROM unnest(lot_qty[head + 1:lots]) x);
            ELSE
                FOR i IN head + 1 .. lots LOOP
                    need := need + lot_qty[i];
                END LOOP;
            END IF;
            total_in := need;
            amount := total_in - total_out;
            priced_in_qty := total_in - unpriced_in;
            priced_out_qty := total_out - unpriced_out;
            cost_basis := round(priced_in_value - consumed, 18);
            cost_basis_complete := unknown_lot = 2147483647;
            IF exact THEN
                realized := priced_out_value - out_moved - consumed + moved;
            END IF;
        END IF;
        RETURN NEXT;
    END IF;
END
$fn$;
"""


def _previous_walk():
    from importlib import import_module

    return import_module("snapshots.migrations.0014_ledger_walk_fewer_operations").LEDGER_WALK_SQL


class Migration(migrations.Migration):
    dependencies = [
        ("snapshots", "0014_ledger_walk_fewer_operations"),
    ]

    operations = [migrations.RunSQL(LEDGER_WALK_SQL, _previous_walk())]
