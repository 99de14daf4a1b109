"""The partitions of the snapshot states (docs/snapshots.md, "Retention"; migration 0008).

snapshots_balancestate is partitioned by LIST (period), then RANGE (valid_to): hourly states by
day, daily by month, weekly and monthly by year, open states in each period's `open` partition.
The jobs create the range partitions ahead — the snapshot job before it writes a boundary (the
boundary's own range and the next), cleanup for now and the next range — so no state ever lacks
one and nobody runs DDL by hand. Cleanup drops the partitions whose upper bound is at or before the
period's cutoff: every state there has valid_to <= cutoff, so it is read at no boundary inside
retention (a state is read at the boundaries b with valid_from <= b < valid_to).

Creation attaches an empty table (SHARE UPDATE EXCLUSIVE on the period's table: readers never
wait). A drop needs an exclusive lock for an instant; it waits at most DROP_LOCK_TIMEOUT for
readers and otherwise leaves the partition to the next cleanup (its rows are trimmed in batches
meanwhile: nothing expired stays readable either way).
"""

from django.db import DatabaseError, connection, transaction
from psycopg import sql
from psycopg.errors import LockNotAvailable, UndefinedTable

from snapshots.periods import Period

ENSURE_SQL = "SELECT snapshots_ensure_state_partition(%s, %s)"
LOCK_SQL = "SELECT pg_advisory_xact_lock(1346458196, hashtext(%s))"  # 'PART', as in migration 0008
BOUNDS_SQL = "SELECT name, lo, hi FROM snapshots_state_partition(%s, %s)"
EXPIRED_SQL = "SELECT snapshots_expired_state_partitions(%s, %s)"
DROP_LOCK_TIMEOUT = "5s"


def ensure(period, instant, ahead=1):
    """Create (if missing) the range partition of ``period`` that holds valid_to = ``instant`` and
    the ``ahead`` ranges after it, in a transaction of their own. Returns how many were created."""
    created = 0
    with transaction.atomic(), connection.cursor() as cursor:
        # One creator per period (the function's own lock): taken here in a statement of its own,
        # so that the function's check sees a partition that the previous holder created (a
        # statement keeps the catalog it started with).
        cursor.execute(LOCK_SQL, [str(period)])
        for _ in range(ahead + 1):
            cursor.execute(ENSURE_SQL, [str(period), instant])
            created += bool(cursor.fetchone()[0])
            cursor.execute(BOUNDS_SQL, [str(period), instant])
            _, _, instant = cursor.fetchone()
    return created


def expired(period, cutoff):
    """The names of the range partitions of ``period`` that hold only states expired at ``cutoff``."""
    with connection.cursor() as cursor:
        cursor.execute(EXPIRED_SQL, [str(period), cutoff])
        return [name for (name,) in cursor.fetchall()]


def drop_expired(period, cutoff):
    """Drop the expired range partitions of ``period``, each in its own transaction (a metadata
    operation: nothing is counted or read). Returns the names dropped; a partition whose lock is
    not granted in time stays for the next cleanup."""
    dropped = []
    for name in expired(period, cutoff):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(DROP_LOCK_TIMEOUT)))
                cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        except DatabaseError as error:
            # By SQLSTATE, not by message (messages follow the server's lc_messages): a lock not
            # granted in time, or a concurrent cleanup that dropped it first, leaves it to the next run.
            if not isinstance(error.__cause__, LockNotAvailable | UndefinedTable):
                raise
            continue
        dropped.append(name)
    return dropped


def ensure_ahead(now):
    """Every period's partitions for ``now`` and the range after it (cleanup's daily pass)."""
    return sum(ensure(period, now) for period in Period)


def next_range(period, instant):
    """The start of the range partition after the one holding ``instant`` (for tests and docs)."""
    with connection.cursor() as cursor:
        cursor.execute(BOUNDS_SQL, [str(period), instant])
        return cursor.fetchone()[2]
