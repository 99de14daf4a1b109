# The open partitions of snapshots_balancestate have no (period, valid_to) index (docs/snapshots.md,
# "Retention"). Every key there is (period, 'infinity'): the index finds nothing that a scan of the
# partition would not, and every state a boundary opens was inserted at its right-hand edge. Two
# shards of a first boundary inserting side by side waited on that page's lock (LWLock
# BufferContent: a quarter of their time at 1,000,000 balances), and a state written whole cost ~10 %
# more. The range partitions keep it: cleanup trims a half-expired one by valid_to.
#
# The index was the parent's (on every partition); it is now created with each range partition:
# by this migration for those that exist, and by snapshots_ensure_state_partition for new ones.

from django.db import migrations

RANGE_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_inherits up ON up.inhrelid = i.inhparent AND up.inhparent = 'snapshots_balancestate'::regclass
WHERE c.relkind = 'r' AND c.relname NOT LIKE '%\\_open'
"""

CREATE_INDEX = "    EXECUTE format('CREATE INDEX %I ON %I (period, valid_to)', part.name || '_period_to', part.name);\n"
ENSURE_SQL = """
CREATE OR REPLACE FUNCTION snapshots_ensure_state_partition(p text, t timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
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
{create_index}    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   'snapshots_balancestate_' || p, part.name, part.lo, part.hi);
    RETURN true;
END $$;
"""

FORWARD = f"""
DROP INDEX balance_state_period_to;
DO $$
DECLARE r record;
BEGIN
    FOR r IN {RANGE_PARTITIONS} LOOP
        EXECUTE format('CREATE INDEX %I ON %I (period, valid_to)', r.relname || '_period_to', r.relname);
    END LOOP;
END $$;
{ENSURE_SQL.format(create_index=CREATE_INDEX)}
"""

BACKWARD = f"""
DO $$
DECLARE r record;
BEGIN
    FOR r IN {RANGE_PARTITIONS} LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', r.relname || '_period_to');
    END LOOP;
END $$;
CREATE INDEX balance_state_period_to ON snapshots_balancestate (period, valid_to);
{ENSURE_SQL.format(create_index="")}
"""


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0017_snapshot_run_totals_stale")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveIndex(model_name="balancestate", name="balance_state_period_to")],
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
        )
    ]
