# Retention by partitions (docs/snapshots.md, "Retention"): snapshots_balancestate is partitioned by
# LIST (period), then RANGE (valid_to). A state is read at the boundaries b with valid_from <= b <
# valid_to, so a partition whose upper bound is at or before a period's retention cutoff holds only
# states of expired boundaries: cleanup drops it whole. An open state (valid_to = infinity) lives in
# the period's `open` partition; closing it moves it to the partition of its valid_to.
#
# Range partitions are created ahead by the jobs (snapshots_ensure_state_partition, called before
# each boundary is written and by cleanup), never by hand; this migration creates those that the
# existing rows need and moves the rows.

from django.db import migrations, models

PERIODS = ("hourly", "daily", "weekly", "monthly")

# The range partition of (period, instant): hourly states by day, daily by month, weekly and
# monthly by year — a handful of partitions per retention window. Bounds in UTC.
FUNCTIONS = """
CREATE FUNCTION snapshots_state_partition(p text, t timestamptz, OUT name text, OUT lo timestamptz,
                                          OUT hi timestamptz)
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('snapshots_balancestate_%s_%s', p,
                  to_char(x.lo AT TIME ZONE 'UTC', CASE p WHEN 'hourly' THEN 'YYYYMMDD' WHEN 'daily' THEN 'YYYYMM'
                                                          ELSE 'YYYY' END)),
           x.lo,
           ((x.lo AT TIME ZONE 'UTC') + CASE p WHEN 'hourly' THEN interval '1 day' WHEN 'daily' THEN interval '1 month'
                                               ELSE interval '1 year' END) AT TIME ZONE 'UTC'
    FROM (SELECT date_trunc(CASE p WHEN 'hourly' THEN 'day' WHEN 'daily' THEN 'month' ELSE 'year' END, t, 'UTC')
                 AS lo) x
$$;

-- Create the range partition that holds valid_to = t, unless it exists. Attached rather than
-- created as a partition: ATTACH takes SHARE UPDATE EXCLUSIVE on the period's table, so readers
-- of the view never wait for it. One creator per period at a time (advisory lock).
CREATE FUNCTION snapshots_ensure_state_partition(p text, t timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    part record;
BEGIN
    IF t IS NULL OR t = 'infinity' THEN
        RETURN false;
    END IF;
    SELECT * INTO part FROM snapshots_state_partition(p, t);
    IF to_regclass(part.name) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(1346458196, hashtext(p));  -- 'PART'
    IF to_regclass(part.name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE snapshots_balancestate INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   part.name);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   'snapshots_balancestate_' || p, part.name, part.lo, part.hi);
    RETURN true;
END $$;

-- The range partitions of a period whose upper bound is at or before the cutoff: every state in
-- them has valid_to <= cutoff, so none is read at a boundary inside retention.
CREATE FUNCTION snapshots_expired_state_partitions(p text, cutoff timestamptz) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (
        SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')::timestamptz AS hi
    ) b
    WHERE i.inhparent = format('snapshots_balancestate_%s', p)::regclass AND b.hi <= cutoff
    ORDER BY b.hi
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION snapshots_expired_state_partitions(text, timestamptz);
DROP FUNCTION snapshots_ensure_state_partition(text, timestamptz);
DROP FUNCTION snapshots_state_partition(text, timestamptz);
"""

# The view reads the table by identity: dropped while the table is replaced, then re-created as in 0007.
DROP_VIEW = "DROP VIEW snapshots_balancesnapshot"

VIEW = """
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
CREATE TRIGGER snapshots_balancesnapshot_write INSTEAD OF UPDATE OR DELETE ON snapshots_balancesnapshot
FOR EACH ROW EXECUTE FUNCTION snapshots_balancesnapshot_write();
"""

# A plain sequence rather than an identity column (PostgreSQL before 17 has none on partitioned
# tables). The primary key carries the partition keys, as PostgreSQL requires; id alone is unique
# by the sequence. (period, wallet, token, valid_from) is no longer a constraint for the same
# reason: an index.
PARTITIONED = """
ALTER TABLE snapshots_balancestate RENAME TO snapshots_balancestate_unpartitioned;
ALTER TABLE snapshots_balancestate_unpartitioned
    RENAME CONSTRAINT snapshots_balancestate_pkey TO snapshots_balancestate_unpartitioned_pkey;
ALTER INDEX balance_state_period_to RENAME TO balance_state_unpartitioned_period_to;
ALTER INDEX balance_state_token RENAME TO balance_state_unpartitioned_token;
CREATE SEQUENCE snapshots_balancestate_seq;
SELECT setval('snapshots_balancestate_seq', COALESCE((SELECT max(id) FROM snapshots_balancestate_unpartitioned), 0) + 1,
              false);
CREATE TABLE snapshots_balancestate (
    id bigint NOT NULL DEFAULT nextval('snapshots_balancestate_seq'),
    period varchar(8) NOT NULL,
    wallet_id bigint NOT NULL,
    token_id bigint NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz NOT NULL,
    amount numeric(78, 18) NOT NULL,
    avg_buy numeric(38, 18),
    cost_basis numeric(38, 18) NOT NULL,
    realized numeric(38, 18) NOT NULL,
    method varchar(8) NOT NULL DEFAULT '',
    source varchar(10) NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT snapshots_balancestate_pkey PRIMARY KEY (id, period, valid_to),
    CONSTRAINT balance_state_not_empty CHECK (valid_from < valid_to)
) PARTITION BY LIST (period);
ALTER SEQUENCE snapshots_balancestate_seq OWNED BY snapshots_balancestate.id;
CREATE INDEX balance_state_from ON snapshots_balancestate (period, wallet_id, token_id, valid_from);
CREATE INDEX balance_state_period_to ON snapshots_balancestate (period, valid_to);
CREATE INDEX balance_state_token ON snapshots_balancestate (token_id);
""" + "".join(
    f"""
CREATE TABLE snapshots_balancestate_{p} PARTITION OF snapshots_balancestate
    FOR VALUES IN ('{p}') PARTITION BY RANGE (valid_to);
CREATE TABLE snapshots_balancestate_{p}_open PARTITION OF snapshots_balancestate_{p}
    FOR VALUES FROM ('infinity') TO (MAXVALUE);
"""
    for p in PERIODS
)

MOVE_ROWS = """
SELECT count(snapshots_ensure_state_partition(period, valid_to))
FROM (SELECT DISTINCT period, valid_to FROM snapshots_balancestate_unpartitioned) v;
SELECT count(snapshots_ensure_state_partition(period, as_of))
FROM (SELECT DISTINCT period, as_of FROM snapshots_walletsnapshot) b;
INSERT INTO snapshots_balancestate SELECT * FROM snapshots_balancestate_unpartitioned;
DROP TABLE snapshots_balancestate_unpartitioned;
"""


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0007_state_intervals")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="balancestate", name="balance_state_unique_from"),
                migrations.AddIndex(
                    model_name="balancestate",
                    index=models.Index(
                        fields=["period", "wallet_id", "token_id", "valid_from"], name="balance_state_from"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(DROP_VIEW),
                migrations.RunSQL(PARTITIONED),
                migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS),
                migrations.RunSQL(MOVE_ROWS),
                migrations.RunSQL(VIEW),
            ],
        ),
    ]
