"""django-q2 jobs: thin wrappers over the service layer (docs/schedules.md).

Each is a plain function — call it in a test or a shell to run it in-process — returning the
result dict of its service and logging one line. Queue one with
`async_task("snapshots.tasks.<name>", …)`, a management command's `--async`, or the schedule
admin's "Run now".

`scheduled_at` is set by the scheduler (the schedules' `intended_date_kwarg`): the instant the run
was meant for, so a worker that picks the task up late still takes the intended boundary. A
scheduled run also catches up missed boundaries; a run without it (from code, `--async`) is a
manual run of the current boundary, or of the boundary at `at`. In the cluster, a boundary of a
fleet larger than BALANCE_SNAPSHOT_SHARD_WALLETS is fanned out as `take_snapshot_shard` tasks.
"""

from bagtracker.errors import WalletNotFound
from snapshots.job_registry import Outcome
from snapshots.models import SnapshotSource
from snapshots.services import healing, repair, retention, shards
from snapshots.services import snapshots as snapshot_service
from snapshots.services.jobs import intended_time, queue_job, report


def _snapshots(period, scheduled_at, at, force):
    job = f"create_{period}_snapshots"
    try:
        if scheduled_at is not None:
            source, instant = SnapshotSource.SCHEDULED, intended_time(scheduled_at)
        else:
            source, instant = SnapshotSource.MANUAL, intended_time(at)
        result = snapshot_service.run_snapshots(period, instant, source=source, force=force, queue=queue_job)
    except ValueError as error:
        # InstantOutOfRange (a schedule's kwargs say at=2099-…) or a malformed `at`: refused, and
        # nothing recorded — a run at 2099 would hide every later staleness.
        return report(job, {"status": Outcome.ERROR, "period": period, "error": str(error)})
    return report(job, result.as_dict())


def create_hourly_snapshots(scheduled_at=None, at=None, force=False):
    return _snapshots("hourly", scheduled_at, at, force)


def create_daily_snapshots(scheduled_at=None, at=None, force=False):
    return _snapshots("daily", scheduled_at, at, force)


def create_weekly_snapshots(scheduled_at=None, at=None, force=False):
    return _snapshots("weekly", scheduled_at, at, force)


def create_monthly_snapshots(scheduled_at=None, at=None, force=False):
    return _snapshots("monthly", scheduled_at, at, force)


def take_snapshot_shard(run_id, shard):
    """One wallet range of a boundary taken in shards (snapshots.services.shards.take_shard);
    queued by the snapshot jobs, never scheduled."""
    return report(shards.JOB, shards.take_shard(run_id, shard).as_dict())


def cleanup_old_snapshots(scheduled_at=None, dry_run=False):
    job = "cleanup_old_snapshots"
    try:
        result = retention.prune_snapshots(now=intended_time(scheduled_at), dry_run=dry_run)
    except ValueError as error:
        # InstantOutOfRange or a malformed `scheduled_at`: a cleanup "as of 2099" would delete
        # every snapshot still inside retention. Refused, nothing deleted.
        return report(job, {"status": Outcome.ERROR, "error": str(error)})
    return report(job, result.as_dict())


def recalculate_wallet_balances(wallet_id, create_snapshots=False):
    job = "recalculate_wallet_balances"
    try:
        result = repair.recalculate(wallet_id, snapshots=create_snapshots)
    except WalletNotFound as error:
        return report(job, {"status": Outcome.ERROR, "error": str(error)})
    return report(job, result.as_dict())


def recalculate_all_wallets(create_snapshots=False):
    return report("recalculate_all_wallets", repair.recalculate(snapshots=create_snapshots).as_dict())


def backfill_wallet_snapshots(wallet_id, period, since, until=None):
    """The admin's "Backfill snapshots" of one wallet: every boundary of ``period`` from ``since``
    to ``until`` (ISO instants; default now), only that wallet's rows, each boundary its own
    transaction (snapshots.services.snapshots.backfill_snapshots)."""
    job = "backfill_wallet_snapshots"
    try:
        result = snapshot_service.backfill_snapshots(
            period, intended_time(since), intended_time(until) if until else None, wallet_ids=[wallet_id]
        )
    except WalletNotFound as error:
        return report(job, {"status": Outcome.ERROR, "error": str(error)})
    return report(job, {**result.as_dict(), "period": period})


def refresh_stale_snapshots():
    """Re-take the retained snapshot rows that history edits made stale (queued when such an edit
    commits; every scheduled snapshot run does it too)."""
    return report(healing.JOB, healing.refresh_stale_snapshots().as_dict())
