# What a new newest boundary needs to find the wallets that moved since the previous one
# (snapshots/services/snapshot_sql.py, FAST_PLAN_SQL): balances by the time they were written, and
# the balances deleted (a pair whose last confirmed transaction went), which leave no row behind.
# snapshots_balancegone is kept by a statement trigger on snapshots_balance, in the deleting
# transaction; cleanup prunes it (snapshots/services/retention.py).

from django.db import migrations

FORWARD = """
CREATE INDEX IF NOT EXISTS balance_updated_at ON snapshots_balance (updated_at);
CREATE TABLE snapshots_balancegone (
    wallet_id bigint NOT NULL,
    token_id bigint NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX snapshots_balancegone_deleted_at ON snapshots_balancegone (deleted_at);
CREATE FUNCTION snapshots_balance_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO snapshots_balancegone (wallet_id, token_id) SELECT wallet_id, token_id FROM old_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER snapshots_balance_gone AFTER DELETE ON snapshots_balance
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION snapshots_balance_gone();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS snapshots_balance_gone ON snapshots_balance;
DROP FUNCTION IF EXISTS snapshots_balance_gone();
DROP TABLE IF EXISTS snapshots_balancegone;
DROP INDEX IF EXISTS balance_updated_at;
"""


class Migration(migrations.Migration):
    dependencies = [("snapshots", "0008_state_partitions")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
