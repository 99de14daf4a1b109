"""Retention cleanup (docs/snapshots.md): delete snapshot rows with as_of < now − retention.

Per period: first the SnapshotRun markers of the expired boundaries (one statement), then the
rows — their wallet summaries, then the states and prices no retained boundary reads — in bounded
batches that each commit. Markers go first so that an interruption between
batches never leaves a "completed" marker in front of a half-deleted snapshot: what remains is
rows of expired boundaries without a marker. Nothing re-creates or trusts those — catch-up and
rebuilds only look inside the retention window (as_of >= cutoff), and a marker-less expired
boundary is exactly what the next cleanup deletes — so the next run simply finishes the job.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from bagtracker import instants
from snapshots.job_registry import Outcome
from snapshots.models import SnapshotRun
from snapshots.periods import Period
from snapshots.services import partitions

# Rows deleted per committed batch; tests shrink it.
PRUNE_BATCH_SIZE = 50000

# A row is read through the view snapshots_balancesnapshot at a taken boundary from the wallet
# state holding it (its wallet summary there), its balance state and the boundary's price: taking
# the expired summaries away takes their rows away. A batch takes whole summaries, oldest first, as
# many as fit in `limit` rows (at least one), and advances each wallet state past the boundaries
# taken from it (to the next taken boundary; deleted when none is left in it). The boundaries
# themselves go once they cover nobody (DELETE_BOUNDARIES_SQL).
DELETE_SUMMARIES_BATCH_SQL = """
WITH picked AS (
    SELECT c.id, bd.as_of, c.rows,
           sum(c.rows) OVER (ORDER BY bd.as_of, c.wallet_id ROWS UNBOUNDED PRECEDING) AS running,
           row_number() OVER (ORDER BY bd.as_of, c.wallet_id) AS n
    FROM snapshots_boundary bd
    JOIN snapshots_walletstate c ON c.period = bd.period AND c.valid_from <= bd.as_of AND c.valid_to > bd.as_of
    WHERE bd.period = %(period)s AND bd.as_of < %(cutoff)s
    ORDER BY bd.as_of, c.wallet_id
    LIMIT %(limit)s
), chosen AS MATERIALIZED (
    SELECT p.id, max(p.as_of) AS last, count(*) AS summaries, sum(p.rows) AS rows
    FROM picked p WHERE p.running <= %(limit)s OR p.n = 1
    GROUP BY p.id
), advanced AS MATERIALIZED (
    SELECT ch.*, COALESCE((SELECT min(b.as_of) FROM snapshots_boundary b
                           WHERE b.period = %(period)s AND b.as_of > ch.last), 'infinity') AS next_taken
    FROM chosen ch
), moved AS (
    UPDATE snapshots_walletstate c SET valid_from = a.next_taken
    FROM advanced a WHERE c.id = a.id AND a.next_taken < c.valid_to
), dropped AS (
    DELETE FROM snapshots_walletstate c USING advanced a WHERE c.id = a.id AND a.next_taken >= c.valid_to
)
SELECT summaries, rows FROM chosen
"""
DELETE_BOUNDARIES_SQL = "DELETE FROM snapshots_boundary WHERE period = %(period)s AND as_of < %(cutoff)s"

# Deleted balances are remembered for the fast path of the next boundary (migration 0009): a
# monthly boundary looks back at most 31 days.
PRUNE_BALANCES_GONE_SQL = "DELETE FROM snapshots_balancegone WHERE deleted_at < %(before)s"
BALANCES_GONE_KEPT = timedelta(days=40)

COUNT_EXPIRED_SQL = "SELECT count(*) FROM snapshots_balancesnapshot WHERE period = %(period)s AND as_of < %(cutoff)s"
COUNT_EXPIRED_SUMMARIES_SQL = (
    "SELECT count(*) FROM snapshots_walletsnapshot WHERE period = %(period)s AND as_of < %(cutoff)s"
)

# Once the expired summaries are gone: the states no retained boundary reads (valid_to <= cutoff:
# every boundary they held is before it; a state valid across the cutoff stays, however old its
# valid_from) — whole range partitions dropped (snapshots.services.partitions), then what is left
# of them in the half-expired partition — and the expired prices, in committed batches.
DELETE_STATES_BATCH_SQL = """
DELETE FROM snapshots_balancestate WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM snapshots_balancestate WHERE period = %(period)s AND valid_to <= %(cutoff)s LIMIT %(limit)s
))
"""
DELETE_PRICES_BATCH_SQL = """
DELETE FROM snapshots_boundaryprice WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM snapshots_boundaryprice WHERE period = %(period)s AND as_of < %(cutoff)s LIMIT %(limit)s
))
"""
DELETE_TOTALS_BATCH_SQL = """
DELETE FROM snapshots_boundarytotal WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM snapshots_boundarytotal WHERE period = %(period)s AND as_of < %(cutoff)s LIMIT %(limit)s
))
"""
# Wallet states no retained boundary reads (left by an interrupted cleanup's batch).
DELETE_WALLET_STATES_BATCH_SQL = """
DELETE FROM snapshots_walletstate WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM snapshots_walletstate WHERE period = %(period)s AND valid_to <= %(cutoff)s LIMIT %(limit)s
))
"""


@dataclass
class PeriodPrune:
    period: str
    cutoff: object  # datetime, or None when kept forever
    rows: int = 0
    runs: int = 0
    batches: int = 0
    summaries: int = 0
    partitions: list = field(default_factory=list)  # range partitions of states dropped whole


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
            "partitions_dropped": {name: len(p.partitions) for name, p in self.periods.items()},
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

    ``now`` (a scheduled run's intended time) moves every cutoff: one in the future would delete
    snapshots still inside retention. InstantOutOfRange for one before 2009-01-03 or more than a
    day ahead (a job given `scheduled_at=2099-…`), before anything is deleted; one less ahead
    (clocks of two nodes) counts as now.
    """
    started = time.monotonic()
    real_now = timezone.now()
    now = real_now if now is None else min(instants.check_instant(now, "now", now=real_now), real_now)
    batch_size = batch_size or PRUNE_BATCH_SIZE
    result = PruneResult(now=now, dry_run=dry_run)
    if not dry_run:
        partitions.ensure_ahead(now)  # the jobs create partitions ahead; cleanup runs daily
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
            outcome.partitions = partitions.expired(period, cutoff)
            continue
        outcome.runs, _ = runs.delete()
        total = _count_expired(period, cutoff) if progress else 0
        while deleted := _delete_summaries_batch(period, cutoff, batch_size):
            summaries, rows = deleted
            outcome.summaries += summaries
            outcome.rows += rows
            outcome.batches += 1
            if progress:
                progress(outcome.rows, max(total, outcome.rows))
        # The states no retained boundary reads: whole partitions first (metadata), then the rest
        # of the half-expired range in batches.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(DELETE_BOUNDARIES_SQL, {"period": period, "cutoff": cutoff})
        outcome.partitions = partitions.drop_expired(period, cutoff)
        for statement in (
            DELETE_STATES_BATCH_SQL,
            DELETE_WALLET_STATES_BATCH_SQL,
            DELETE_PRICES_BATCH_SQL,
            DELETE_TOTALS_BATCH_SQL,
        ):
            while _delete_batch(statement, period, cutoff, batch_size):
                outcome.batches += 1
    if not dry_run:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PRUNE_BALANCES_GONE_SQL, {"before": now - BALANCES_GONE_KEPT})
    result.duration_seconds = time.monotonic() - started
    return result


def _count_expired(period, cutoff, statement=COUNT_EXPIRED_SQL):
    with connection.cursor() as cursor:
        cursor.execute(statement, {"period": period, "cutoff": cutoff})
        return cursor.fetchone()[0]


def _delete_summaries_batch(period, cutoff, limit):
    """Delete the next batch of expired wallet summaries (and so their rows) in its own transaction.
    Returns (summaries, rows) deleted, or None when none is left."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(DELETE_SUMMARIES_BATCH_SQL, {"period": period, "cutoff": cutoff, "limit": limit})
        deleted = cursor.fetchall()
    if not deleted:
        return None
    return sum(summaries for summaries, _ in deleted), sum(rows for _, rows in deleted)


def _delete_batch(statement, period, cutoff, limit):
    """Delete the next batch of expired states or prices in its own transaction; how many went."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, {"period": period, "cutoff": cutoff, "limit": limit})
        return cursor.rowcount
