# The walk plans its own query with nested loops allowed, whatever its caller set.
#
# A boundary's shards run with enable_nestloop off (snapshot_sql.NO_NESTED_LOOPS_SQL: their own
# joins must hash, whatever the statistics of tables the other shards are filling). The setting
# reached the walk of the shard's moved pairs inside the same statement: with no nested loop, the
# walk's `(wallet_id, token_id) IN (unnest(pairs))` read the whole transaction table by hashing
# instead of looking up each pair in the ledger-order index. At 1,000,000 balances and 5,000,000
# transactions, each of a first boundary's eight shards read the 527 MB table for its ~100 moved
# pairs: ~1 s of a 2.3 s shard, and two shards side by side contended for the 128 MB of shared
# buffers while doing it (BENCHMARKS.md, "What two shards side by side waited for, and the fixes").
#
# A function's SET clause applies to its body only and is restored on return. CREATE OR REPLACE
# replaces it: a later migration that redefines the function must keep both SET clauses
# (tests/test_ledger_walk.py::test_the_walk_looks_up_listed_pairs_even_when_its_caller_forbids_nested_loops
# fails otherwise).

from django.db import migrations

SIGNATURE = "bt_ledger_walk(text, bigint, bigint, bigint[], bigint[], timestamptz)"


class Migration(migrations.Migration):
    dependencies = [
        ("snapshots", "0015_ledger_walk_fifo_fewer_operations"),
    ]

    operations = [
        migrations.RunSQL(
            f"ALTER FUNCTION {SIGNATURE} SET enable_nestloop = on",
            f"ALTER FUNCTION {SIGNATURE} RESET enable_nestloop",
        )
    ]
