# The open partitions of snapshots_balancestate have no token index (docs/snapshots.md, "Retention"),
# as they have no (period, valid_to) index since migration 0018. The index was the parent's, on
# every partition: each state a boundary opened was a third WAL record, and inserted on its token's
# last page of the index, where two shards of a first boundary waited for each other. What reads a
# token's states (the fast path's repriced tokens, healing a token's history, a token's deletion,
# the admin's filter by token) reads the open states by a scan: a large share of them anyway.
#
# The range partitions keep it, created with each one: by this migration for those that exist, and
# by snapshots_ensure_state_partition (with the valid_to index of 0018) for new ones.

from importlib import import_module

from django.db import migrations

OPEN_WITHOUT_VALID_TO = import_module("snapshots.migrations.0018_open_states_without_valid_to_index")
RANGE_PARTITIONS = OPEN_WITHOUT_VALID_TO.RANGE_PARTITIONS
ENSURE_SQL = OPEN_WITHOUT_VALID_TO.ENSURE_SQL

CREATE_TOKEN_INDEX = "    EXECUTE format('CREATE INDEX %I ON %I (token_id)', part.name || '_token', part.name);\n"

FORWARD = f"""
DROP INDEX balance_state_token;
DO $$
DECLARE r record;
BEGIN
    FOR r IN {RANGE_PARTITIONS} LOOP
        EXECUTE format('CREATE INDEX %I ON %I (token_id)', r.relname || '_token', r.relname);
    END LOOP;
END $$;
{ENSURE_SQL.format(create_index=OPEN_WITHOUT_VALID_TO.CREATE_INDEX + CREATE_TOKEN_INDEX)}
"""

BACKWARD = f"""
DO $$
DECLARE r record;
BEGIN
    FOR r IN {RANGE_PARTITIONS} LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', r.relname || '_token');
    END LOOP;
END $$;
CREATE INDEX balance_state_token ON snapshots_balancestate (token_id);
{ENSURE_SQL.format(create_index=OPEN_WITHOUT_VALID_TO.CREATE_INDEX)}
"""


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0019_state_natural_key")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveIndex(model_name="balancestate", name="balance_state_token")],
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
        )
    ]
