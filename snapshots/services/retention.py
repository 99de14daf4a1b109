"""Retention cleanup (docs/snapshots.md): delete snapshot rows with as_of < now − retention.

Per period: first the SnapshotRun markers of the expired boundaries (one statement), then the
rows, in bounded batches that each commit. Markers go first so that an interruption between
batches never leaves a "completed" marker in front of a half-deleted snapshot: what remains is
rows of expired boundaries without a marker. Nothing re-creates or trusts those — catch-up and
rebuilds only look inside the retention window (as_of >= cutoff), and a marker-less expired
boundary is exactly what the next cleanup deletes — so the next run simply finishes the job.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from snapshots.job_registry import Outcome
from snapshots.models import SnapshotRun
from snapshots.periods import Period

# Rows deleted per committed batch; tests shrink it.
PRUNE_BATCH_SIZE = 50000

# Expired rows are deleted boundary by boundary, oldest first; within a boundary, in batches of
# `limit` rows in index order after the previous batch's last key (keyset pagination: no batch
# re-walks the dead entries its predecessors left behind).
NEXT_EXPIRED_BOUNDARY_SQL = """
SELECT as_of FROM snapshots_balancesnapshot
WHERE period = %(period)s AND as_of < %(cutoff)s AND as_of > %(after)s
ORDER BY as_of LIMIT 1
"""

# The batch's last key, by walking the index (index-only once the rows are vacuumed). Freshly
# written snapshots often have stale statistics, and the planner would then bitmap-scan the whole
# boundary and sort it, for every batch: hence the plan settings.
BATCH_END_SQL = """
SELECT wallet_id, token_id FROM snapshots_balancesnapshot
WHERE period = %(period)s AND as_of = %(as_of)s AND (wallet_id, token_id) > (%(after_wallet)s, %(after_token)s)
ORDER BY wallet_id, token_id
OFFSET %(offset)s LIMIT 1
"""
WALK_THE_INDEX = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on"

# Then that key range goes. A bitmap scan visits the heap in physical order, each page once, as a
# bare DELETE does; an index scan would hop between pages in key order.
DELETE_BATCH_SQL = """
DELETE FROM snapshots_balancesnapshot
WHERE period = %(period)s AND as_of = %(as_of)s
  AND (wallet_id, token_id) > (%(after_wallet)s, %(after_token)s)
  AND (wallet_id, token_id) <= (%(end_wallet)s, %(end_token)s)
"""
SCAN_IN_HEAP_ORDER = "SET LOCAL enable_bitmapscan = on; SET LOCAL enable_indexscan = off"
# Back to the server's settings, in case the caller's transaction goes on after the batch.
DEFAULT_PLANS = (
    "SET LOCAL enable_bitmapscan TO DEFAULT; SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_indexscan TO DEFAULT"
)

_FIRST_KEY = (0, 0)
_LAST_KEY = (9223372036854775807, 9223372036854775807)

COUNT_EXPIRED_SQL = "SELECT count(*) FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of < %(cutoff)s"

# The wallet summaries of expired boundaries (one per wallet and boundary): bounded batches too.
DELETE_SUMMARIES_BATCH_SQL = """
DELETE FROM snapshots_walletsnapshot WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM snapshots_walletsnapshot WHERE period = %(period)s AND as_of < %(cutoff)s LIMIT %(limit)s
))
"""
COUNT_EXPIRED_SUMMARIES_SQL = (
    "SELECT count(*) FROM snapshots_walletsnapshot WHERE period = %(period)s AND as_of < %(cutoff)s"
)


@dataclass
class PeriodPrune:
    period: str
    cutoff: object  # datetime, or None when kept forever
    rows: int = 0
    runs: int = 0
    batches: int = 0
    summaries: int = 0


@dataclass
class PruneResult:
    now: object
    dry_run: bool = False
    periods: dict = field(default_factory=dict)
    duration_seconds: float = 0.0

    @property
    def status(self):
        return Outcome.SUCCESS

    @property
    def rows(self):
        return sum(p.rows for p in self.periods.values())

    def as_dict(self):
        return {
            "status": str(self.status),
            "dry_run": self.dry_run,
            "deleted": {name: p.rows for name, p in self.periods.items()},
            "runs_deleted": {name: p.runs for name, p in self.periods.items()},
            "summaries_deleted": {name: p.summaries for name, p in self.periods.items()},
            "cutoffs": {
                name: p.cutoff.isoformat().replace("+00:00", "Z") if p.cutoff else None
                for name, p in self.periods.items()
            },
            "rows": self.rows,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def prune_snapshots(
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PruneResult:
    """Delete expired snapshots of every period (retention 0 = kept forever).

    ``dry_run`` only counts. ``progress(deleted_so_far, expired_total)`` is called after each batch.
    """
    started = time.monotonic()
    now = now or timezone.now()
    batch_size = batch_size or PRUNE_BATCH_SIZE
    result = PruneResult(now=now, dry_run=dry_run)
    for period in Period:
        cutoff = period.retention_cutoff(now)
        outcome = result.periods[period.value] = PeriodPrune(period=period.value, cutoff=cutoff)
        if cutoff is None:
            continue
        runs = SnapshotRun.objects.filter(period=period, as_of__lt=cutoff)
        if dry_run:
            outcome.runs = runs.count()
            outcome.rows = _count_expired(period, cutoff)
            outcome.summaries = _count_expired(period, cutoff, COUNT_EXPIRED_SUMMARIES_SQL)
            continue
        outcome.runs, _ = runs.delete()
        outcome.summaries = _delete_summaries(period, cutoff, batch_size)
        total = _count_expired(period, cutoff) if progress else 0
        boundary = _next_expired_boundary(period, cutoff, after=datetime.min.replace(tzinfo=UTC))
        while boundary is not None:
            key = _FIRST_KEY
            while key is not None:
                deleted, key = _delete_batch(period, boundary, key, batch_size)
                if deleted:
                    outcome.rows += deleted
                    outcome.batches += 1
                    if progress:
                        progress(outcome.rows, max(total, outcome.rows))
            boundary = _next_expired_boundary(period, cutoff, after=boundary)
    result.duration_seconds = time.monotonic() - started
    return result


def _count_expired(period, cutoff, statement=COUNT_EXPIRED_SQL):
    with connection.cursor() as cursor:
        cursor.execute(statement, {"period": period, "cutoff": cutoff})
        return cursor.fetchone()[0]


def _delete_summaries(period, cutoff, limit):
    """Delete the expired wallet summaries of ``period``, one committed batch at a time."""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(DELETE_SUMMARIES_BATCH_SQL, {"period": period, "cutoff": cutoff, "limit": limit})
            if not cursor.rowcount:
                return deleted
            deleted += cursor.rowcount


def _next_expired_boundary(period, cutoff, after):
    with connection.cursor() as cursor:
        cursor.execute(NEXT_EXPIRED_BOUNDARY_SQL, {"period": period, "cutoff": cutoff, "after": after})
        row = cursor.fetchone()
    return row[0] if row else None


def _delete_batch(period, as_of, after, limit):
    """Delete the next batch of one boundary in its own transaction.

    Returns (deleted, the batch's last key, or None when the boundary is done)."""
    params = {"period": period, "as_of": as_of, "after_wallet": after[0], "after_token": after[1]}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(WALK_THE_INDEX)
        cursor.execute(BATCH_END_SQL, {**params, "offset": limit - 1})
        end = cursor.fetchone()
        last = end or _LAST_KEY
        cursor.execute(SCAN_IN_HEAP_ORDER)
        cursor.execute(DELETE_BATCH_SQL, {**params, "end_wallet": last[0], "end_token": last[1]})
        deleted = cursor.rowcount
        cursor.execute(DEFAULT_PLANS)
    return deleted, end
