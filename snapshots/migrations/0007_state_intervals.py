# Snapshot rows stored as state intervals (docs/snapshots.md, "How it is stored"): the table
# snapshots_balancesnapshot becomes a VIEW over snapshots_balancestate (one row per unchanged run
# of a (wallet, token)'s state), snapshots_boundaryprice (one price per token and boundary) and the
# wallet summaries (the wallets each boundary covers). Existing rows are migrated: each run of
# equal values of a pair over the wallet's consecutive summaries becomes one interval.

from django.db import migrations, models

# A boundary's rows come with its summaries: a row without one (written before summaries existed)
# gets a summary computed from its rows.
MISSING_SUMMARIES = """
INSERT INTO snapshots_walletsnapshot
    (wallet_id, period, as_of, value_usd, rows, unpriced_rows, cost_basis_usd, realized_pnl_usd, cost_basis_method,
     source, created_at)
SELECT wallet_id, period, as_of, COALESCE(sum(value_usd), 0), count(*), count(*) FILTER (WHERE value_usd IS NULL),
       sum(cost_basis_usd), sum(realized_pnl_usd),
       CASE WHEN min(cost_basis_method) = max(cost_basis_method) THEN min(cost_basis_method) ELSE '' END,
       min(source), min(created_at)
FROM snapshots_balancesnapshot
GROUP BY wallet_id, period, as_of
ON CONFLICT (period, as_of, wallet_id) DO NOTHING
"""

# One price per (period, as_of, token): rows of one token at one boundary carry the same price
# unless a partial re-take left some behind; the latest written wins.
PRICES = """
INSERT INTO snapshots_boundaryprice (period, as_of, token_id, price_usd)
SELECT DISTINCT ON (period, as_of, token_id) period, as_of, token_id, price_usd
FROM snapshots_balancesnapshot
ORDER BY period, as_of, token_id, created_at DESC, id DESC
"""

# Gaps and islands: a row continues its pair's previous row when that row's next covered boundary
# (the wallet's next summary) is this row's as_of and the values are equal.
STATES = """
INSERT INTO snapshots_balancestate
    (period, wallet_id, token_id, valid_from, valid_to, amount, avg_buy, cost_basis, realized, method, source,
     created_at)
WITH r AS (
    SELECT o.*, (SELECT min(m.as_of) FROM snapshots_walletsnapshot m
                 WHERE m.wallet_id = o.wallet_id AND m.period = o.period AND m.as_of > o.as_of) AS next_covered
    FROM snapshots_balancesnapshot o
), flagged AS (
    SELECT r.*, CASE WHEN lag(r.next_covered) OVER w = r.as_of
                      AND (lag(r.amount) OVER w, lag(r.avg_buy_price_usd) OVER w, lag(r.cost_basis_usd) OVER w,
                           lag(r.realized_pnl_usd) OVER w, lag(r.cost_basis_method) OVER w)
                          IS NOT DISTINCT FROM
                          (r.amount, r.avg_buy_price_usd, r.cost_basis_usd, r.realized_pnl_usd, r.cost_basis_method)
                     THEN 0 ELSE 1 END AS starts
    FROM r
    WINDOW w AS (PARTITION BY r.period, r.wallet_id, r.token_id ORDER BY r.as_of)
), grouped AS (
    SELECT f.*, sum(f.starts) OVER (PARTITION BY f.period, f.wallet_id, f.token_id ORDER BY f.as_of) AS island
    FROM flagged f
)
SELECT DISTINCT ON (period, wallet_id, token_id, island)
       period, wallet_id, token_id, as_of,
       COALESCE(last_value(next_covered) OVER i, 'infinity'),
       amount, avg_buy_price_usd, cost_basis_usd, realized_pnl_usd, cost_basis_method, source, created_at
FROM grouped
WINDOW i AS (PARTITION BY period, wallet_id, token_id, island ORDER BY as_of
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY period, wallet_id, token_id, island, as_of
"""

# The largest value NUMERIC(38,18) holds once rounded to 18 places, plus one unit in the last place
# (snapshot_sql.MAX_VALUE_USD): a larger value is unknown, as when rows were stored.
VIEW = """
DROP TABLE snapshots_balancesnapshot;
CREATE VIEW snapshots_balancesnapshot AS
SELECT s.id * 1000000000 + (extract(epoch FROM m.as_of)::bigint / 3600) % 1000000000 AS id,
       s.wallet_id, s.token_id, s.period, m.as_of, s.amount, p.price_usd,
       CASE WHEN abs(s.amount * p.price_usd) < 99999999999999999999.9999999999999999995
            THEN round(s.amount * p.price_usd, 18) END::numeric(38, 18) AS value_usd,
       s.avg_buy AS avg_buy_price_usd, s.cost_basis AS cost_basis_usd, s.realized AS realized_pnl_usd,
       s.method AS cost_basis_method,
       CASE WHEN s.valid_from = m.as_of THEN s.source ELSE m.source END AS source,
       CASE WHEN s.valid_from = m.as_of THEN s.created_at ELSE m.created_at END AS created_at
FROM snapshots_walletsnapshot m
JOIN snapshots_balancestate s
  ON s.period = m.period AND s.wallet_id = m.wallet_id AND s.valid_from <= m.as_of AND s.valid_to > m.as_of
LEFT JOIN snapshots_boundaryprice p ON p.period = m.period AND p.as_of = m.as_of AND p.token_id = s.token_id;
"""

# Writing to the view writes the state a row is read from, at every boundary of its interval (a
# repair from a shell, a test's "damage"); the admin never does (read-only). Prices are not
# writable through it: they belong to the boundary, not to the row.
VIEW_WRITES = """
CREATE FUNCTION snapshots_balancesnapshot_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM snapshots_balancestate WHERE id = OLD.id / 1000000000;
        RETURN OLD;
    END IF;
    UPDATE snapshots_balancestate
    SET amount = NEW.amount, avg_buy = NEW.avg_buy_price_usd, cost_basis = NEW.cost_basis_usd,
        realized = NEW.realized_pnl_usd, method = NEW.cost_basis_method, source = NEW.source
    WHERE id = OLD.id / 1000000000;
    RETURN NEW;
END $$;
CREATE TRIGGER snapshots_balancesnapshot_write INSTEAD OF UPDATE OR DELETE ON snapshots_balancesnapshot
FOR EACH ROW EXECUTE FUNCTION snapshots_balancesnapshot_write();
"""

UNVIEW = """
DROP VIEW snapshots_balancesnapshot;
CREATE TABLE snapshots_balancesnapshot AS SELECT * FROM snapshots_balancestate WHERE false;
"""

# No foreign keys on derived rows; deleting a wallet or a token deletes its states (and a token's
# prices) in the same transaction, whatever deletes it.
DELETE_TRIGGERS = """
CREATE FUNCTION snapshots_forget_wallets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM snapshots_balancestate WHERE wallet_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
CREATE TRIGGER snapshots_forget_wallets AFTER DELETE ON bagtracker_wallet
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION snapshots_forget_wallets();
CREATE FUNCTION snapshots_forget_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM snapshots_balancestate WHERE token_id IN (SELECT id FROM old_rows);
    DELETE FROM snapshots_boundaryprice WHERE token_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
CREATE TRIGGER snapshots_forget_tokens AFTER DELETE ON bagtracker_token
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION snapshots_forget_tokens();
"""
DROP_DELETE_TRIGGERS = """
DROP TRIGGER IF EXISTS snapshots_forget_wallets ON bagtracker_wallet;
DROP TRIGGER IF EXISTS snapshots_forget_tokens ON bagtracker_token;
DROP FUNCTION IF EXISTS snapshots_forget_wallets();
DROP FUNCTION IF EXISTS snapshots_forget_tokens();
"""

# The stale-mark triggers' "latest boundary taken": rows come with wallet summaries, so the summaries
# say it (one index probe per period; the view would expand every row).
LATEST_BOUNDARY_SQL = """
CREATE OR REPLACE FUNCTION snapshots_latest_boundary() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT max(latest) FROM (
        SELECT max(as_of) FROM snapshots_snapshotrun
        UNION ALL
        -- summaries without a completed run too (a wallet's backfill); one index probe per period
        SELECT (SELECT max(s.as_of) FROM snapshots_walletsnapshot s WHERE s.period = p.period)
        FROM (VALUES ('hourly'), ('daily'), ('weekly'), ('monthly')) p(period)
    ) found(latest)
$$
"""


class Migration(migrations.Migration):
    dependencies = [
        ("snapshots", "0006_stale_marks"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="balancesnapshot",
            options={"managed": False, "ordering": ["-as_of", "wallet_id", "token_id"]},
        ),
        migrations.CreateModel(
            name="BalanceState",
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
                ("token_id", models.BigIntegerField()),
                ("valid_from", models.DateTimeField()),
                ("valid_to", models.DateTimeField()),
                ("amount", models.DecimalField(decimal_places=18, max_digits=78)),
                ("avg_buy", models.DecimalField(blank=True, decimal_places=18, max_digits=38, null=True)),
                ("cost_basis", models.DecimalField(decimal_places=18, max_digits=38)),
                ("realized", models.DecimalField(decimal_places=18, max_digits=38)),
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
                "indexes": [
                    models.Index(fields=["period", "valid_to"], name="balance_state_period_to"),
                    models.Index(fields=["token_id"], name="balance_state_token"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("period", "wallet_id", "token_id", "valid_from"), name="balance_state_unique_from"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("valid_from__lt", models.F("valid_to"))), name="balance_state_not_empty"
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="BoundaryPrice",
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
                ("price_usd", models.DecimalField(blank=True, decimal_places=18, max_digits=38, null=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("period", "as_of", "token_id"), name="boundary_price_unique")
                ],
            },
        ),
        migrations.RunSQL(MISSING_SUMMARIES, migrations.RunSQL.noop),
        migrations.RunSQL(PRICES, migrations.RunSQL.noop),
        migrations.RunSQL(STATES, migrations.RunSQL.noop),
        migrations.RunSQL(VIEW, UNVIEW),
        migrations.RunSQL(VIEW_WRITES, "DROP FUNCTION snapshots_balancesnapshot_write() CASCADE"),
        migrations.RunSQL(DELETE_TRIGGERS, DROP_DELETE_TRIGGERS),
        migrations.RunSQL(LATEST_BOUNDARY_SQL, migrations.RunSQL.noop),
    ]
