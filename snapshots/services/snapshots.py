"""Balance snapshots (docs/snapshots.md): take one boundary, the scheduled job with catch-up,
backfill, and rebuilding one wallet's retained snapshots.

Every boundary is taken in its own database transaction (take_snapshot), so no reader ever sees
half a snapshot and an interrupted catch-up or backfill keeps the boundaries it finished.

Concurrency: take_snapshot holds a transaction-level advisory lock on (period, as_of). A second
worker asking for the same boundary waits for the first to commit, then re-takes it — idempotent,
and it writes nothing unless history changed in between. Catch-up boundaries are the exception:
once the lock is held, one that another worker completed meanwhile is skipped. A rebuild after a
recalculation first waits for the snapshots in progress (snapshot_sql.wait_for_snapshots_in_progress),
so a snapshot that read the ledger before the repair cannot commit stale rows after the rebuild.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone as dj_timezone

from bagtracker import instants
from bagtracker.errors import WalletNotFound
from bagtracker.models import Wallet
from snapshots.job_registry import Outcome
from snapshots.models import BalanceSnapshot, SnapshotRun, SnapshotSource
from snapshots.periods import (
    PERIODS,
    Period,
    as_utc,
    format_boundary,
    retention_cutoff,
)
from snapshots.services import bounds, healing, partitions, shards, snapshot_sql
from snapshots.services.boundary_results import BoundaryTotals
from snapshots.services.scope import EVERY_WALLET, WalletScope

logger = logging.getLogger(__name__)

SOURCES = tuple(SnapshotSource.values)


def _now():
    return dj_timezone.now()


def _iso(instant):
    return as_utc(instant).isoformat().replace("+00:00", "Z")


@dataclass
class SnapshotResult:
    """One (period, as_of) taken (or skipped, or failed)."""

    period: str
    as_of: datetime
    source: str
    rows: int = 0
    written: int = 0
    removed: int = 0
    partial: bool = False
    shards: int = 0  # taken in shards by the cluster: how many, and how many this run queued
    queued: int = 0
    status: str = Outcome.SUCCESS
    reason: str = ""
    error: str = ""
    duration_seconds: float = 0.0

    def as_dict(self):
        data = {
            "status": str(self.status),
            "period": self.period,
            "as_of": _iso(self.as_of),
            "source": self.source,
            "rows": self.rows,
            "written": self.written,
            "removed": self.removed,
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.partial:
            data["partial"] = True
        if self.shards:
            data["shards"], data["queued_shards"] = self.shards, self.queued
        if self.reason:
            data["reason"] = self.reason
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class SnapshotJobResult:
    """A run of the snapshot job: its own boundary plus, for scheduled runs, caught-up ones."""

    period: str
    as_of: datetime
    source: str
    boundaries: list = field(default_factory=list)
    reason: str = ""
    refreshed: Any = None  # scheduled runs: the healing.RefreshResult of the stale marks
    duration_seconds: float = 0.0

    @property
    def status(self):
        if self.reason:
            return Outcome.SKIPPED
        failed = [b for b in self.boundaries if b.status == Outcome.ERROR]
        if not failed:
            return Outcome.PARTIAL_SUCCESS if self.refreshed and self.refreshed.failures else Outcome.SUCCESS
        return Outcome.PARTIAL_SUCCESS if len(failed) < len(self.boundaries) else Outcome.ERROR

    @property
    def own(self):
        """The result of the boundary the run was for (None when skipped)."""
        return next((b for b in self.boundaries if b.as_of == self.as_of), None)

    @property
    def caught_up(self):
        return [b for b in self.boundaries if b.as_of != self.as_of and b.status == Outcome.SUCCESS]

    @property
    def rows(self):
        return sum(b.rows for b in self.boundaries)

    def as_dict(self):
        data = {
            "status": str(self.status),
            "period": self.period,
            "as_of": _iso(self.as_of),
            "source": self.source,
            "boundaries": [b.as_dict() for b in self.boundaries],
            "caught_up": len(self.caught_up),
            "rows": self.rows,
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.reason:
            data["reason"] = self.reason
        if self.refreshed is not None:
            data["refreshed"] = self.refreshed.as_dict()
        failed = [b for b in self.boundaries if b.status == Outcome.ERROR]
        if failed:
            data["failed_boundaries"] = [{"as_of": _iso(b.as_of), "error": b.error} for b in failed]
        return data


@dataclass
class ManyBoundariesResult(BoundaryTotals):
    """Backfill and rebuild: many boundaries, each its own transaction; failures listed."""

    kind: str  # "backfill" or "rebuild"
    period: str | None = None  # backfill: its period; rebuild: all periods
    boundaries: list = field(default_factory=list)
    wallet_ids: list | None = None
    notes: list = field(default_factory=list)  # backfill: how its range was clamped, for people
    duration_seconds: float = 0.0

    def as_dict(self):
        data = {
            "status": str(self.status),
            "kind": self.kind,
            "boundaries": len(self.boundaries),
            "rows": self.rows,
            "written": self.written,
            "removed": self.removed,
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.period:
            data["period"] = self.period
        if self.boundaries:
            data["first_as_of"] = _iso(self.boundaries[0].as_of)
            data["last_as_of"] = _iso(self.boundaries[-1].as_of)
        if self.wallet_ids is not None:
            data["wallet_ids"] = list(self.wallet_ids)
        if self.notes:
            data["notes"] = list(self.notes)
        if self.failures:
            data["failed_boundaries"] = [
                {"period": b.period, "as_of": _iso(b.as_of), "error": b.error} for b in self.failures
            ]
        return data


class SnapshotError(Exception):
    """Taking a boundary failed; its transaction was rolled back and a failed SnapshotRun recorded."""

    def __init__(self, result):
        self.result = result
        super().__init__(f"{result.period} {format_boundary(result.as_of)}: {result.error}")


def _check_arguments(period, as_of, source):
    period = Period.of(period)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r} (expected one of {', '.join(SOURCES)})")
    if not period.is_boundary(as_of):
        raise ValueError(f"{as_of.isoformat()} is not a {period} boundary")
    instants.check_boundary(as_of, f"{period} boundary")


def take_snapshot(period, as_of, source, scope=None, *, skip_if_completed=False, then=None):
    """Take (or re-take) snapshot (period, as_of) in one database transaction.

    ``scope`` (a WalletScope, default every wallet) limits the write to some wallets: only some,
    all but some, an id range. Rows of other wallets are untouched, and such a partial run never
    marks a boundary complete: it only refreshes the row count of a boundary that already was.
    Its ``covered`` wallets are recomputed even if deactivated since (a refresh of a boundary that
    covered them).
    ``then(cursor)`` runs last, inside the same transaction (healing settles its marks there).

    Raises SnapshotError (after recording a failed SnapshotRun) if the database refuses the write,
    and InstantOutOfRange (nothing recorded) for a boundary before 2009-01-03 or in the future.
    """
    as_of = as_utc(as_of)
    _check_arguments(period, as_of, source)
    scope = scope or EVERY_WALLET
    result = SnapshotResult(period=period, as_of=as_of, source=source, partial=not scope.is_everything)
    started_at = _now()
    started = time.monotonic()
    try:
        partitions.ensure(period, as_of)  # where the states it closes at as_of go, and the next range
        with transaction.atomic(), connection.cursor() as cursor:
            snapshot_sql.lock_boundary(cursor, period, as_of)
            completed = SnapshotRun.objects.filter(period=period, as_of=as_of, status=SnapshotRun.Status.COMPLETED)
            if skip_if_completed and completed.exists():
                result.status, result.reason = Outcome.SKIPPED, "already_completed"
                return result
            horizon = snapshot_sql.horizon(cursor)
            result.rows, result.written, result.removed, _ = snapshot_sql.write_snapshot(
                cursor, period, as_of, source, settings.BALANCE_DUST_THRESHOLD, scope
            )
            if scope.is_everything:
                # A whole take completes a boundary planned in shards too: its shards find no run.
                SnapshotRun.objects.filter(period=period, as_of=as_of, status=SnapshotRun.Status.RUNNING).delete()
                SnapshotRun.objects.update_or_create(
                    period=period,
                    as_of=as_of,
                    status=SnapshotRun.Status.COMPLETED,
                    defaults={
                        "source": source,
                        "rows": result.rows,
                        "started_at": started_at,
                        "finished_at": _now(),
                        "error": "",
                        "horizon": horizon,
                    },
                )
            else:
                completed.update(rows=snapshot_sql.count_rows(cursor, period, as_of))
            if then is not None:
                then(cursor)
    except Exception as error:  # recorded for the admin, then re-raised for the caller to report
        result.status, result.error = Outcome.ERROR, f"{type(error).__name__}: {error}".strip()
        result.duration_seconds = time.monotonic() - started
        _record_failure(result, started_at)
        raise SnapshotError(result) from error
    finally:
        result.duration_seconds = time.monotonic() - started
    return result


def _record_failure(result, started_at):
    logger.error("snapshot %s %s failed: %s", result.period, format_boundary(result.as_of), result.error)
    try:
        with transaction.atomic():
            SnapshotRun.objects.create(
                period=result.period,
                as_of=result.as_of,
                source=result.source,
                status=SnapshotRun.Status.FAILED,
                rows=0,
                started_at=started_at,
                finished_at=_now(),
                error=result.error[:10000],
            )
    except Exception:  # the database may be what failed; the caller still gets the original error
        logger.exception("could not record the failed snapshot run")


def _take_reporting_errors(period, as_of, source, scope=None, **kwargs):
    try:
        return take_snapshot(period, as_of, source, scope, **kwargs)
    except SnapshotError as error:
        return error.result


def _take_or_queue(period, as_of, source, queue, **kwargs):
    """Take one whole boundary here, or, given ``queue`` (the cluster's) and a fleet larger than one
    shard, plan it in shards (or find its plan) and queue the shards not done yet."""
    if queue is None:
        return _take_reporting_errors(period, as_of, source, **kwargs)
    try:
        run = shards.plan_run(period, as_of, source)
        if run is None:  # one shard, or completed already: one statement, as without a cluster
            return _take_reporting_errors(period, as_of, source, **kwargs)
        result = SnapshotResult(period=period, as_of=as_of, source=source, shards=run.shards)
        result.queued = shards.queue_shards(run, queue)
    except Exception as error:  # the run stays planned: the next scheduled run queues its shards
        result = SnapshotResult(period=period, as_of=as_of, source=source, status=Outcome.ERROR)
        result.error = f"{type(error).__name__}: {error}".strip()
        logger.error("snapshot %s %s: could not queue its shards: %s", period, format_boundary(as_of), result.error)
    return result


def run_snapshots(period, at, source="scheduled", force=False, catch_up=None, queue=None):
    """The snapshot job for ``period`` at instant ``at`` (the instant it was scheduled for).

    Takes as_of = floor_boundary(period, at) first. A scheduled run with catch-up on (the
    BALANCE_SNAPSHOT_CATCH_UP setting unless ``catch_up`` says otherwise) then takes the missing
    boundaries, newest first, at most BALANCE_CATCH_UP_MAX_BOUNDARIES, each in its own transaction
    (snapshots.services.bounds.missing_boundaries), and refreshes what history edits left stale.
    A disabled period is skipped unless ``force``. One failing boundary does not stop the others
    (``partial_success``).

    ``queue(job, *args)`` (the cluster's, snapshots.services.jobs.queue_job) fans a boundary not
    yet completed out in shards when the fleet is larger than BALANCE_SNAPSHOT_SHARD_WALLETS
    (snapshots.services.shards); a scheduled run then also queues again the shards not done of
    every boundary still running (a lost or killed shard). Without it every boundary is one
    statement here.

    An ``at`` (or its boundary) before 2009-01-03 or in the future raises InstantOutOfRange before
    anything is written or recorded: a job given `at=2099-…` must not record a run in 2099.
    """
    started = time.monotonic()
    period = Period.of(period)
    now = _now()
    at = instants.check_instant(at, "at", now)
    as_of = instants.check_boundary(period.floor(at), f"{period} boundary", now)
    result = SnapshotJobResult(period=period.value, as_of=as_of, source=source)
    if not force and not period.enabled:
        result.reason = "disabled_in_settings"
        return result
    if catch_up is None:
        catch_up = settings.BALANCE_SNAPSHOT_CATCH_UP
    result.boundaries.append(_take_or_queue(period, as_of, source, queue))
    if source == SnapshotSource.SCHEDULED:
        behind = set(bounds.missing_boundaries(period, as_of)) if catch_up else set()
        if queue is not None:
            behind.update(run.as_of for run in shards.running_runs(period, now=as_of))
        behind.discard(as_of)
        for boundary in sorted(behind, reverse=True):
            result.boundaries.append(_take_or_queue(period, boundary, source, queue, skip_if_completed=True))
        # Whatever history edits left stale and no queued refresh has done yet (a lost message).
        result.refreshed = healing.refresh_stale_snapshots(now=at)
    result.duration_seconds = time.monotonic() - started
    return result


def _wallets_exist(wallet_ids):
    wallet_ids = sorted({int(w) for w in wallet_ids})
    found = set(Wallet.objects.filter(pk__in=wallet_ids).values_list("pk", flat=True))
    missing = [w for w in wallet_ids if w not in found]
    if missing:
        raise WalletNotFound(*missing)
    return wallet_ids


def backfill_snapshots(period, since, until=None, wallet_ids=None, progress=None):
    """Take every boundary of ``period`` from ``since`` to ``until`` (default: now), oldest first,
    once the range is clamped to now, the first confirmed transaction and retention
    (snapshots.services.bounds.plan_backfill; the result's ``notes`` say what was clamped).

    Each boundary is its own transaction (source "backfill"); with ``wallet_ids`` only those
    wallets' rows are written and no boundary is marked complete by it. ``progress(done, total)``
    is called after each boundary.
    """
    started = time.monotonic()
    if wallet_ids is not None:
        wallet_ids = _wallets_exist(wallet_ids)
    plan = bounds.plan_backfill(period, since, until, _now(), wallet_ids=wallet_ids)
    result = ManyBoundariesResult(kind="backfill", period=period, wallet_ids=wallet_ids, notes=plan.notes)
    scope = EVERY_WALLET if wallet_ids is None else WalletScope(wallets=wallet_ids)
    total = plan.count
    for done, boundary in enumerate(plan.boundaries(), start=1):
        result.boundaries.append(_take_reporting_errors(period, boundary, SnapshotSource.BACKFILL, scope))
        if progress:
            progress(done, total)
    result.duration_seconds = time.monotonic() - started
    return result


def retained_boundaries(period, now, wallet_id=None):
    """Boundaries inside retention that have a completed run or one being written in shards (or,
    given a wallet, rows of it), up to ``now`` (a run recorded in the future by older code is
    listed by `manage.py check --database default`, never re-taken)."""
    cutoff = retention_cutoff(period, now)
    # A boundary being written in shards too: shards done before a repair hold rows of the damaged
    # ledger (a whole re-take completes it; a wallet-scoped one refreshes the wallet's rows).
    live = [SnapshotRun.Status.COMPLETED, SnapshotRun.Status.RUNNING]
    runs = SnapshotRun.objects.filter(period=period, status__in=live, as_of__lte=now)
    if cutoff:
        runs = runs.filter(as_of__gte=cutoff)
    found = set(runs.values_list("as_of", flat=True))
    if wallet_id is not None:
        rows = BalanceSnapshot.objects.filter(wallet_id=wallet_id, period=period, as_of__lte=now)
        if cutoff:
            rows = rows.filter(as_of__gte=cutoff)
        found.update(rows.values_list("as_of", flat=True).distinct())
    return sorted(found)


def _wait_for_snapshots_in_progress():
    """A snapshot that read the ledger before a repair may still be writing: wait for it to commit,
    so that its boundary is listed (and re-taken) by the rebuild that follows the repair."""
    with connection.cursor() as cursor:
        for period in PERIODS:
            snapshot_sql.wait_for_snapshots_in_progress(cursor, period)


def rebuild_wallet_snapshots(wallet_id, now=None, progress=None):
    """Rebuild one wallet's retained snapshots (every period) from its current history.

    Covers each boundary inside retention that has a completed run or holds rows of the wallet.
    Rows of other wallets are untouched. Call it after recalculating the wallet's balances.
    """
    started = time.monotonic()
    (wallet_id,) = _wallets_exist([wallet_id])
    now = now or _now()
    _wait_for_snapshots_in_progress()
    work = [(period, b) for period in PERIODS for b in retained_boundaries(period, now, wallet_id)]
    result = ManyBoundariesResult(kind="rebuild", wallet_ids=[wallet_id])
    scope = WalletScope(wallets=[wallet_id])
    for done, (period, boundary) in enumerate(work, start=1):
        result.boundaries.append(_take_reporting_errors(period, boundary, SnapshotSource.MANUAL, scope))
        if progress:
            progress(done, len(work))
    result.duration_seconds = time.monotonic() - started
    return result


def rebuild_all_snapshots(scope=None, now=None, progress=None):
    """Re-take every retained completed boundary of every period, set-based, for the wallets of
    ``scope`` (default every wallet; e.g. all but those whose recalculation failed: their balances
    are stale)."""
    started = time.monotonic()
    now = now or _now()
    _wait_for_snapshots_in_progress()
    work = [(period, b) for period in PERIODS for b in retained_boundaries(period, now)]
    result = ManyBoundariesResult(kind="rebuild")
    for done, (period, boundary) in enumerate(work, start=1):
        result.boundaries.append(_take_reporting_errors(period, boundary, SnapshotSource.MANUAL, scope))
        if progress:
            progress(done, len(work))
    result.duration_seconds = time.monotonic() - started
    return result
