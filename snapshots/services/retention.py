"""Retention cleanup (DESIGN.md, "Retention"): delete snapshot rows with as_of < now − retention.

Per period: first the SnapshotRun markers of the expired boundaries (one statement), then the
rows, in bounded batches that each commit. Markers go first so that an interruption between
batches never leaves a "completed" marker in front of a half-deleted snapshot: what remains is
rows of expired boundaries without a marker. Nothing re-creates or trusts those — catch-up and
rebuilds only look inside the retention window (as_of >= cutoff), and a marker-less expired
boundary is exactly what the next cleanup deletes — so the next run simply finishes the job.
"""

import time
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from snapshots.models import SnapshotRun
from snapshots.periods import PERIODS, retention_cutoff

# Rows deleted per committed batch; tests shrink it.
PRUNE_BATCH_SIZE = 20000

# ctid: the batch is located and deleted in one statement, without a second index lookup per row.
DELETE_BATCH_SQL = """
DELETE FROM snapshots_balancesnapshot
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM snapshots_balancesnapshot
    WHERE period = %(period)s AND as_of < %(cutoff)s
    LIMIT %(limit)s
))
"""

COUNT_EXPIRED_SQL = "SELECT count(*) FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of < %(cutoff)s"


@dataclass
class PeriodPrune:
    period: str
    cutoff: object  # datetime, or None when kept forever
    rows: int = 0
    runs: int = 0
    batches: int = 0


@dataclass
class PruneResult:
    now: object
    dry_run: bool = False
    periods: dict = field(default_factory=dict)
    duration_seconds: float = 0.0

    @property
    def status(self):
        return "success"

    @property
    def rows(self):
        return sum(p.rows for p in self.periods.values())

    def as_dict(self):
        return {
            "status": self.status,
            "dry_run": self.dry_run,
            "deleted": {name: p.rows for name, p in self.periods.items()},
            "runs_deleted": {name: p.runs for name, p in self.periods.items()},
            "cutoffs": {
                name: p.cutoff.isoformat().replace("+00:00", "Z") if p.cutoff else None
                for name, p in self.periods.items()
            },
            "rows": self.rows,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def prune_snapshots(now=None, dry_run=False, batch_size=None, progress=None):
    """Delete expired snapshots of every period (retention 0 = kept forever).

    ``dry_run`` only counts. ``progress(deleted_so_far, expired_total)`` is called after each batch.
    """
    started = time.monotonic()
    now = now or timezone.now()
    batch_size = batch_size or PRUNE_BATCH_SIZE
    result = PruneResult(now=now, dry_run=dry_run)
    for period in PERIODS:
        cutoff = retention_cutoff(period, now)
        outcome = result.periods[period] = PeriodPrune(period=period, cutoff=cutoff)
        if cutoff is None:
            continue
        runs = SnapshotRun.objects.filter(period=period, as_of__lt=cutoff)
        if dry_run:
            outcome.runs = runs.count()
            outcome.rows = _count_expired(period, cutoff)
            continue
        outcome.runs, _ = runs.delete()
        total = _count_expired(period, cutoff) if progress else 0
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(DELETE_BATCH_SQL, {"period": period, "cutoff": cutoff, "limit": batch_size})
                deleted = cursor.rowcount
            outcome.rows += deleted
            outcome.batches += 1
            if progress and deleted:
                progress(outcome.rows, max(total, outcome.rows))
            if deleted < batch_size:
                break
    result.duration_seconds = time.monotonic() - started
    return result


def _count_expired(period, cutoff):
    with connection.cursor() as cursor:
        cursor.execute(COUNT_EXPIRED_SQL, {"period": period, "cutoff": cutoff})
        return cursor.fetchone()[0]
