"""One boundary over many workers (docs/snapshots.md, "Shards").

A boundary of a fleet larger than BALANCE_SNAPSHOT_SHARD_WALLETS active wallets is split into
wallet-id ranges. ``plan_run`` records the plan in one ``running`` SnapshotRun (the first wallet id
of every shard but the first: together the shards cover every wallet id); each shard is then a
``take_snapshot_shard`` task that any qcluster worker, on any node, may take. ``take_shard`` writes
its range with the same statement as a whole boundary (snapshot_sql.write_snapshot, scoped), and in
the same transaction adds itself to the run's ``shards_done``; the shard that makes it complete
turns the run ``completed`` (and recomputes the boundary's totals if a shard left them stale:
SnapshotRun.totals_stale). Until then readers see nothing of the boundary: they read only
boundaries with a completed run.

Nothing is done twice. A shard holds a transaction-level advisory lock of its own (tried, never
waited for: a second copy of a shard in progress leaves at once) and reads ``shards_done`` once it
holds it, so a copy of a shard already done writes nothing. Writes are idempotent compares anyway.

Nothing is lost for long. Redis delivers a task at most once, and a worker SIGKILLed mid-shard
rolls its transaction back: the run stays ``running`` with that shard missing. The next scheduled
run of the period queues the missing shards of every running run again (``resume``); copies of a
shard still queued or in progress are harmless, as above.

Locks. Boundaries of one period share their state intervals (docs/snapshots.md, "How it is
stored"), per (wallet, token): a whole or wallet-scoped take holds the period's key exclusively
(snapshot_sql.lock_boundary). A shard holds it in shared mode, so shards run side by side while any
other write of the period waits for them (and they for it); and, as shards of different boundaries
of a period may cover the same wallets, a shard also holds the keys of the wallet-id cells (ids
divided by CELL_IDS) its range spans, exclusively, taken in ascending order. Plans cut at cell
edges, so the shards of one boundary never share a cell; two shards of two boundaries that share
wallets take turns. The last shard's range is bounded by the highest wallet id when it runs (a
wallet created meanwhile gets its rows from the healing of its back-dated transactions). A whole
take completes a boundary planned in shards itself and removes the running run, whose shards then
find nothing to do.

The plan writes the boundary's prices before any shard runs, so the shards never wait for each
other on a price row.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from bagtracker.models import Wallet
from snapshots.job_registry import Outcome
from snapshots.models import SnapshotRun
from snapshots.periods import as_utc, format_boundary, retention_cutoff
from snapshots.services import partitions, snapshot_sql
from snapshots.services.scope import EVERY_WALLET, WalletScope

logger = logging.getLogger(__name__)

JOB = "take_snapshot_shard"

SHARD_NAMESPACE = 0x534E5348  # "SNSH"
TRY_SHARD_SQL = "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))"
SHARE_PERIOD_STATES_SQL = "SELECT pg_advisory_xact_lock_shared(%s, hashtext(%s))"
# Wallet-id cells: a shard locks every cell its range spans; plans cut at cell edges.
CELL_IDS = 64
LOCK_CELLS_SQL = """
SELECT count(pg_advisory_xact_lock(hashtext('cells:' || %(period)s), c::int))
FROM generate_series(%(lo)s::bigint / %(cell)s::bigint, %(hi)s::bigint / %(cell)s::bigint) c
"""
LAST_WALLET_SQL = "SELECT max(id) FROM bagtracker_wallet"


def shard_wallets():
    return settings.BALANCE_SNAPSHOT_SHARD_WALLETS


def plan_cuts(per_shard=None):
    """The first wallet id of every shard but the first: every ``per_shard``-th active wallet by id
    (one query). Empty (one shard) when sharding is off or the fleet fits in one shard."""
    per_shard = shard_wallets() if per_shard is None else per_shard
    if per_shard <= 0:
        return []
    ranked = Wallet.objects.filter(is_active=True).annotate(
        n=Window(RowNumber(), order_by=F("pk").asc()), first_of_shard=(F("n") - 1) % per_shard
    )
    firsts = ranked.filter(n__gt=per_shard, first_of_shard=0).order_by("pk").values_list("pk", flat=True)
    # At a cell's first id (rounded down), so no two shards of the plan share a cell.
    return sorted({pk - pk % CELL_IDS for pk in firsts} - {0})


def _running(period, as_of=None):
    runs = SnapshotRun.objects.filter(period=period, status=SnapshotRun.Status.RUNNING)
    return runs if as_of is None else runs.filter(as_of=as_of)


def plan_run(period, as_of, source, per_shard=None):
    """The running SnapshotRun of (period, as_of): the one already planned, else a new plan.

    None when the boundary is not to be sharded: it has a completed run (a re-take is one statement),
    it is a newest boundary after a complete one (the whole take writes only the wallets that moved
    since: cheaper than shards, which each compare every wallet of their range), or the fleet fits
    in one shard."""
    as_of = as_utc(as_of)
    existing = _running(period, as_of).first()
    if existing is not None:
        return existing
    cuts = plan_cuts(per_shard)
    if not cuts:
        return None
    with transaction.atomic(), connection.cursor() as cursor:
        # The boundary's key only (not its period's: shards of other boundaries may be running):
        # no whole take of this boundary in progress, and one plan at a time.
        cursor.execute(snapshot_sql.LOCK_BOUNDARY_SQL, [snapshot_sql.LOCK_NAMESPACE, f"{period}:{as_of.isoformat()}"])
        completed = SnapshotRun.objects.filter(period=period, as_of=as_of, status=SnapshotRun.Status.COMPLETED)
        if completed.exists() or snapshot_sql.takes_fast_path(cursor, period, as_of):
            return None  # a re-take, or a newest boundary that writes only the wallets that moved
        snapshot_sql.write_prices(cursor, period, as_of, EVERY_WALLET)
        snapshot_sql.take_boundary(cursor, period, as_of, source)  # before its shards: it covers nobody yet
        run, _ = SnapshotRun.objects.get_or_create(
            period=period,
            as_of=as_of,
            status=SnapshotRun.Status.RUNNING,
            defaults={"source": source, "started_at": timezone.now(), "shard_cuts": cuts},
        )
    logger.info("snapshot %s %s planned in %d shards", period, format_boundary(as_of), run.shards)
    return run


def queue_shards(run, queue):
    """Queue the shards of ``run`` not done yet with ``queue(job, *args)``; returns how many."""
    left = run.shards_left()
    for index in left:
        queue(JOB, run.pk, index)
    return len(left)


def running_runs(period, now):
    """The runs of ``period`` inside retention whose shards are not all done, newest first (a lost
    or killed shard leaves one behind)."""
    runs = _running(period).filter(as_of__lte=now)
    cutoff = retention_cutoff(period, now)
    if cutoff:
        runs = runs.filter(as_of__gte=cutoff)
    return list(runs.order_by("-as_of"))


@dataclass
class ShardResult:
    """One shard taken (or skipped: done already, in progress elsewhere, or its run gone)."""

    run_id: int
    shard: int
    period: str = ""
    as_of: datetime | None = None
    rows: int = 0
    written: int = 0
    removed: int = 0
    completed: bool = False  # this shard was the last: the boundary is complete and visible
    status: str = Outcome.SUCCESS
    reason: str = ""
    error: str = ""
    duration_seconds: float = 0.0

    def as_dict(self):
        data = {
            "status": str(self.status),
            "run": self.run_id,
            "shard": self.shard,
            "rows": self.rows,
            "written": self.written,
            "removed": self.removed,
            "completed": self.completed,
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.period:
            data["period"] = self.period
        if self.as_of is not None:
            data["as_of"] = format_boundary(self.as_of)
        if self.reason:
            data["reason"] = self.reason
        if self.error:
            data["error"] = self.error
        return data


def _skip(result, reason):
    result.status, result.reason = Outcome.SKIPPED, reason
    return result


def take_shard(run_id, index):
    """Write shard ``index`` of the running run ``run_id`` and record it done, in one transaction;
    the shard that completes the plan completes the run. A failure is recorded on the run (its
    ``error``) and leaves the shard to the next resume."""
    started = time.monotonic()
    result = ShardResult(run_id=run_id, shard=index)
    try:
        return _take_shard(result)
    except Exception as error:  # recorded on the run for the admin, reported to the caller
        result.status, result.error = Outcome.ERROR, f"{type(error).__name__}: {error}".strip()
        logger.error("snapshot shard %s of run %s failed: %s", index, run_id, result.error)
        SnapshotRun.objects.filter(pk=run_id, status=SnapshotRun.Status.RUNNING).update(
            error=f"shard {index}: {result.error}"[:10000]
        )
        return result
    finally:
        result.duration_seconds = time.monotonic() - started


def _take_shard(result):
    run = SnapshotRun.objects.filter(pk=result.run_id, status=SnapshotRun.Status.RUNNING).first()
    if run is None:
        return _skip(result, "run_not_running")  # completed by a whole take, or expired
    result.period, result.as_of = run.period, run.as_of
    lo, hi = run.shard_range(result.shard)
    partitions.ensure(run.period, run.as_of)  # as a whole take does: where the states it closes go
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(TRY_SHARD_SQL, [SHARD_NAMESPACE, f"{run.period}:{run.as_of.isoformat()}:{result.shard}"])
        if not cursor.fetchone()[0]:
            return _skip(result, "in_progress")  # another copy holds it: it finishes the shard
        cursor.execute(snapshot_sql.SHARE_PERIOD_SQL, [snapshot_sql.PERIOD_NAMESPACE, run.period])
        cursor.execute(SHARE_PERIOD_STATES_SQL, [snapshot_sql.STATE_NAMESPACE, run.period])
        cursor.execute(LAST_WALLET_SQL)
        hi = min(hi, cursor.fetchone()[0] or 0)
        cursor.execute(LOCK_CELLS_SQL, {"period": run.period, "lo": lo, "hi": max(hi, lo), "cell": CELL_IDS})
        run = SnapshotRun.objects.filter(pk=run.pk, status=SnapshotRun.Status.RUNNING).first()
        if run is None:
            return _skip(result, "run_not_running")
        if result.shard in run.shards_done:
            return _skip(result, "already_done")
        horizon = snapshot_sql.horizon(cursor)  # the run's is its shards' earliest (SnapshotRun.horizon)
        totals_kept = True
        if hi >= lo:  # else no wallet in the range (yet): nothing to write
            scope = WalletScope(id_range=(lo, hi))
            result.rows, result.written, result.removed, totals_kept = snapshot_sql.write_snapshot(
                cursor, run.period, run.as_of, run.source, settings.BALANCE_DUST_THRESHOLD, scope, shard=True
            )
        # The run's row lock serialises the shards' bookkeeping: the last one sees every other done.
        run = SnapshotRun.objects.select_for_update().get(pk=run.pk)
        run.shards_done = sorted({*run.shards_done, result.shard})
        run.rows += result.rows
        run.horizon = horizon if run.horizon is None else min(run.horizon, horizon)
        run.totals_stale = run.totals_stale or not totals_kept
        fields = ["shards_done", "rows", "horizon", "totals_stale"]
        if not run.shards_left():
            run.status, run.finished_at, run.error = SnapshotRun.Status.COMPLETED, timezone.now(), ""
            fields += ["status", "finished_at", "error"]
            result.completed = True
            if run.totals_stale:
                snapshot_sql.recompute_totals(cursor, run.period, run.as_of)
        run.save(update_fields=fields)
    if result.completed:
        logger.info("snapshot %s %s completed by its last shard", run.period, format_boundary(run.as_of))
    return result
