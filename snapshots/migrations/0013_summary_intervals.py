# Wallet summaries stored as intervals (docs/snapshots.md, "Wallet summaries as intervals"): the
# table snapshots_walletsnapshot becomes a VIEW over snapshots_boundary (the boundaries taken) and
# snapshots_walletstate (a wallet's summary without its value, valid over an interval of taken
# boundaries); values are computed when read; snapshots_boundarytotal keeps the overview's sums per
# (boundary, token). Existing summaries are migrated: each run of equal summaries of a wallet over
# consecutive taken boundaries becomes one wallet state.

from django.db import migrations, models

# The largest value NUMERIC(38,18) holds once rounded to 18 places, plus one unit (snapshot_sql.MAX_VALUE_USD).
MAX_VALUE = "99999999999999999999.9999999999999999995"
VALUE = f"CASE WHEN abs(s.amount * p.price_usd) < {MAX_VALUE} THEN round(s.amount * p.price_usd, 18) END"

# Every boundary with a summary or a completed or running run is taken; its source and time are
# those of its earliest summary (else its run).
BOUNDARIES = """
INSERT INTO snapshots_boundary (period, as_of, source, created_at)
SELECT DISTINCT ON (period, as_of) period, as_of, source, created_at FROM (
    SELECT period, as_of, source, created_at, 0 AS rank FROM snapshots_walletsnapshot
    UNION ALL
    SELECT period, as_of, source, started_at, 1 FROM snapshots_snapshotrun WHERE status IN ('completed', 'running')
) b
ORDER BY period, as_of, rank, created_at
"""

# Gaps and islands, as 0007 did for the rows: a summary continues the wallet's previous one when
# that one's next taken boundary is this summary's as_of and the parts are equal.
WALLET_STATES = """
INSERT INTO snapshots_walletstate
    (period, wallet_id, valid_from, valid_to, rows, cost_basis, realized, method, source, created_at)
WITH r AS (
    SELECT m.*, (SELECT min(b.as_of) FROM snapshots_boundary b WHERE b.period = m.period AND b.as_of > m.as_of)
        AS next_taken
    FROM snapshots_walletsnapshot m
), flagged AS (
    SELECT r.*, CASE WHEN lag(r.next_taken) OVER w = r.as_of
                      AND (lag(r.rows) OVER w, lag(r.cost_basis_usd) OVER w, lag(r.realized_pnl_usd) OVER w,
                           lag(r.cost_basis_method) OVER w)
                          IS NOT DISTINCT FROM (r.rows, r.cost_basis_usd, r.realized_pnl_usd, r.cost_basis_method)
                     THEN 0 ELSE 1 END AS starts
    FROM r
    WINDOW w AS (PARTITION BY r.period, r.wallet_id ORDER BY r.as_of)
), grouped AS (
    SELECT f.*, sum(f.starts) OVER (PARTITION BY f.period, f.wallet_id ORDER BY f.as_of) AS island
    FROM flagged f
)
SELECT DISTINCT ON (period, wallet_id, island)
       period, wallet_id, as_of, COALESCE(last_value(next_taken) OVER i, 'infinity'),
       rows, cost_basis_usd, realized_pnl_usd, cost_basis_method, source, created_at
FROM grouped
WINDOW i AS (PARTITION BY period, wallet_id, island ORDER BY as_of
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY period, wallet_id, island, as_of
"""

# Read through the view as it still is (summaries × states × prices): the same rows.
TOTALS = """
INSERT INTO snapshots_boundarytotal (period, as_of, token_id, value_usd, rows, unpriced_rows)
SELECT period, as_of, token_id, COALESCE(sum(value_usd), 0), count(*), count(*) FILTER (WHERE value_usd IS NULL)
FROM snapshots_balancesnapshot
GROUP BY period, as_of, token_id
"""

VIEWS = f"""
DROP VIEW snapshots_balancesnapshot;
DROP TABLE snapshots_walletsnapshot;
CREATE INDEX boundary_total_as_of ON snapshots_boundarytotal (period, as_of);
CREATE VIEW snapshots_walletsnapshot AS
SELECT c.id * 1000000000 + (extract(epoch FROM bd.as_of)::bigint / 3600) % 1000000000 AS id,
       c.wallet_id, c.period, bd.as_of,
       (SELECT COALESCE(sum({VALUE}), 0)
        FROM snapshots_balancestate s
        LEFT JOIN snapshots_boundaryprice p ON p.period = s.period AND p.as_of = bd.as_of AND p.token_id = s.token_id
        WHERE s.period = c.period AND s.wallet_id = c.wallet_id AND s.valid_from <= bd.as_of AND s.valid_to > bd.as_of
       )::numeric(48, 18) AS value_usd,
       c.rows,
       (SELECT count(*)
        FROM snapshots_balancestate s
        LEFT JOIN snapshots_boundaryprice p ON p.period = s.period AND p.as_of = bd.as_of AND p.token_id = s.token_id
        WHERE s.period = c.period AND s.wallet_id = c.wallet_id AND s.valid_from <= bd.as_of AND s.valid_to > bd.as_of
          AND ({VALUE}) IS NULL
       ) AS unpriced_rows,
       c.cost_basis AS cost_basis_usd, c.realized AS realized_pnl_usd, c.method AS cost_basis_method,
       CASE WHEN c.valid_from = bd.as_of THEN c.source ELSE bd.source END AS source,
       CASE WHEN c.valid_from = bd.as_of THEN c.created_at ELSE bd.created_at END AS created_at
FROM snapshots_boundary bd
JOIN snapshots_walletstate c ON c.period = bd.period AND c.valid_from <= bd.as_of AND c.valid_to > bd.as_of;

CREATE VIEW snapshots_balancesnapshot AS
SELECT s.id * 1000000000 + (extract(epoch FROM bd.as_of)::bigint / 3600) % 1000000000 AS id,
       s.wallet_id, s.token_id, s.period, bd.as_of, s.amount, p.price_usd,
       ({VALUE})::numeric(38, 18) AS value_usd,
       s.avg_buy AS avg_buy_price_usd, s.cost_basis AS cost_basis_usd, s.realized AS realized_pnl_usd,
       s.method AS cost_basis_method,
       CASE WHEN s.valid_from = bd.as_of THEN s.source
            WHEN c.valid_from = bd.as_of THEN c.source ELSE bd.source END AS source,
       CASE WHEN s.valid_from = bd.as_of THEN s.created_at
            WHEN c.valid_from = bd.as_of THEN c.created_at ELSE bd.created_at END AS created_at
FROM snapshots_boundary bd
JOIN snapshots_walletstate c ON c.period = bd.period AND c.valid_from <= bd.as_of AND c.valid_to > bd.as_of
JOIN snapshots_balancestate s
  ON s.period = bd.period AND s.wallet_id = c.wallet_id AND s.valid_from <= bd.as_of AND s.valid_to > bd.as_of
LEFT JOIN snapshots_boundaryprice p ON p.period = bd.period AND p.as_of = bd.as_of AND p.token_id = s.token_id;
"""

# The totals follow every write that bypasses a boundary's statement: add (sign 1) or take away
# (sign -1) what the given states contribute at the boundaries in [since, until) where they are read.
ADD_TO_TOTALS = f"""
CREATE FUNCTION snapshots_add_to_totals(state_ids bigint[], sign integer,
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
WHERE s.id = ANY(state_ids) AND bd.as_of >= since AND bd.as_of < until
GROUP BY s.period, bd.as_of, s.token_id
ON CONFLICT (period, as_of, token_id) DO UPDATE SET
    value_usd = t.value_usd + EXCLUDED.value_usd, rows = t.rows + EXCLUDED.rows,
    unpriced_rows = t.unpriced_rows + EXCLUDED.unpriced_rows
$$;
"""

# Writing to a view (a repair from a shell, a test's "damage") writes the state read there, at
# every boundary of its interval, and keeps the totals true.
VIEW_WRITES = """
CREATE OR REPLACE FUNCTION snapshots_balancesnapshot_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM snapshots_add_to_totals(ARRAY[OLD.id / 1000000000], -1);
    IF TG_OP = 'DELETE' THEN
        DELETE FROM snapshots_balancestate WHERE id = OLD.id / 1000000000;
        RETURN OLD;
    END IF;
    UPDATE snapshots_balancestate
    SET amount = NEW.amount, avg_buy = NEW.avg_buy_price_usd, cost_basis = NEW.cost_basis_usd,
        realized = NEW.realized_pnl_usd, method = NEW.cost_basis_method, source = NEW.source
    WHERE id = OLD.id / 1000000000;
    PERFORM snapshots_add_to_totals(ARRAY[OLD.id / 1000000000], 1);
    RETURN NEW;
END $$;
CREATE TRIGGER snapshots_balancesnapshot_write INSTEAD OF UPDATE OR DELETE ON snapshots_balancesnapshot
FOR EACH ROW EXECUTE FUNCTION snapshots_balancesnapshot_write();

CREATE FUNCTION snapshots_walletsnapshot_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c snapshots_walletstate;
BEGIN
    SELECT * INTO c FROM snapshots_walletstate WHERE id = OLD.id / 1000000000;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM snapshots_add_to_totals(
            ARRAY(SELECT s.id FROM snapshots_balancestate s
                  WHERE s.period = c.period AND s.wallet_id = c.wallet_id AND s.valid_to > c.valid_from
                    AND s.valid_from < c.valid_to),
            -1, c.valid_from, c.valid_to);
        DELETE FROM snapshots_walletstate WHERE id = c.id;
        RETURN OLD;
    END IF;
    UPDATE snapshots_walletstate
    SET rows = NEW.rows, cost_basis = NEW.cost_basis_usd, realized = NEW.realized_pnl_usd,
        method = NEW.cost_basis_method, source = NEW.source
    WHERE id = c.id;
    RETURN NEW;
END $$;
CREATE TRIGGER snapshots_walletsnapshot_write INSTEAD OF UPDATE OR DELETE ON snapshots_walletsnapshot
FOR EACH ROW EXECUTE FUNCTION snapshots_walletsnapshot_write();
"""

FORGET_WALLETS = """
CREATE OR REPLACE FUNCTION snapshots_forget_wallets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM snapshots_add_to_totals(
        ARRAY(SELECT s.id FROM snapshots_balancestate s WHERE s.wallet_id IN (SELECT id FROM old_rows)), -1);
    DELETE FROM snapshots_balancestate WHERE wallet_id IN (SELECT id FROM old_rows);
    DELETE FROM snapshots_walletstate WHERE wallet_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION snapshots_forget_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM snapshots_balancestate WHERE token_id IN (SELECT id FROM old_rows);
    DELETE FROM snapshots_boundaryprice WHERE token_id IN (SELECT id FROM old_rows);
    DELETE FROM snapshots_boundarytotal WHERE token_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
"""

# The stale-mark triggers' "latest boundary taken" (migration 0006): the boundaries say it.
LATEST_BOUNDARY = """
CREATE OR REPLACE FUNCTION snapshots_latest_boundary() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT max(latest) FROM (
        SELECT max(as_of) FROM snapshots_snapshotrun
        UNION ALL
        SELECT max(as_of) FROM snapshots_boundary
    ) found(latest)
$$
"""


class Migration(migrations.Migration):
    dependencies = [
        ("snapshots", "0012_snapshot_run_shards"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="walletsnapshot",
            options={"managed": False, "ordering": ["-as_of", "wallet_id"]},
        ),
        migrations.CreateModel(
            name="Boundary",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "period",
                    models.CharField(
                        choices=[
                            ("hourly", "Hourly"),
                            ("daily", "Daily"),
                            ("weekly", "Weekly"),
                            ("monthly", "Monthly"),
                        ],
                        max_length=8,
                    ),
                ),
                ("as_of", models.DateTimeField()),
                (
                    "source",
                    models.CharField(
                        choices=[("scheduled", "Scheduled"), ("manual", "Manual"), ("backfill", "Backfill")],
                        max_length=10,
                    ),
                ),
                ("created_at", models.DateTimeField()),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("period", "as_of"), name="boundary_unique")],
            },
        ),
        migrations.CreateModel(
            name="BoundaryTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "period",
                    models.CharField(
                        choices=[
                            ("hourly", "Hourly"),
                            ("daily", "Daily"),
                            ("weekly", "Weekly"),
                            ("monthly", "Monthly"),
                        ],
                        max_length=8,
                    ),
                ),
                ("as_of", models.DateTimeField()),
                ("token_id", models.BigIntegerField()),
                ("value_usd", models.DecimalField(decimal_places=18, default=0, max_digits=48)),
                ("rows", models.BigIntegerField(default=0)),
                ("unpriced_rows", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("period", "as_of", "token_id"), name="boundary_total_unique")
                ],
            },
        ),
        migrations.CreateModel(
            name="WalletState",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "period",
                    models.CharField(
                        choices=[
                            ("hourly", "Hourly"),
                            ("daily", "Daily"),
                            ("weekly", "Weekly"),
                            ("monthly", "Monthly"),
                        ],
                        max_length=8,
                    ),
                ),
                ("wallet_id", models.BigIntegerField()),
                ("valid_from", models.DateTimeField()),
                ("valid_to", models.DateTimeField()),
                ("rows", models.BigIntegerField()),
                ("cost_basis", models.DecimalField(decimal_places=18, max_digits=48)),
                ("realized", models.DecimalField(decimal_places=18, max_digits=48)),
                (
                    "method",
                    models.CharField(
                        blank=True,
                        choices=[("average", "average"), ("fifo", "fifo")],
                        db_default="",
                        default="",
                        max_length=8,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[("scheduled", "Scheduled"), ("manual", "Manual"), ("backfill", "Backfill")],
                        max_length=10,
                    ),
                ),
                ("created_at", models.DateTimeField()),
            ],
            options={
                "indexes": [models.Index(fields=["period", "valid_to"], name="wallet_state_period_to")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("period", "wallet_id", "valid_from"), name="wallet_state_unique_from"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("valid_from__lt", models.F("valid_to"))), name="wallet_state_not_empty"
                    ),
                ],
            },
        ),
        migrations.RunSQL(BOUNDARIES, migrations.RunSQL.noop),
        migrations.RunSQL(WALLET_STATES, migrations.RunSQL.noop),
        migrations.RunSQL(TOTALS, migrations.RunSQL.noop),
        migrations.RunSQL(VIEWS),
        migrations.RunSQL(ADD_TO_TOTALS),
        migrations.RunSQL(VIEW_WRITES),
        migrations.RunSQL(FORGET_WALLETS),
        migrations.RunSQL(LATEST_BOUNDARY),
    ]
