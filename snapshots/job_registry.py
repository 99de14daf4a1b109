"""The job registry: every background job, defined once.

Each entry names the job, the task function that runs it, its schedule (if it has one), what it
does and the snapshot period it keeps fresh (if any). Everything that lists jobs reads this tuple:
the schedules installed at `migrate` (snapshots/schedules.py), `jobs_status` and /health
(services/monitoring.py), /metrics (services/job_metrics.py), the admin overview
(console/views.py) and the functions a schedule may run (schedules.allowed_task_functions).
Adding a job is one entry here plus its function (README, "Adding a new job").
"""

from dataclasses import dataclass
from enum import StrEnum

TASKS_MODULE = "snapshots.tasks"


class Outcome(StrEnum):
    """The status of a finished job: the "status" of the dict every job returns."""

    SUCCESS = "success"
    PARTIAL_SUCCESS = "partial_success"  # some wallets or boundaries failed; the others are written
    SKIPPED = "skipped"  # nothing to do: its period is switched off, or another run holds the lock
    ERROR = "error"


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    # The snapshot period whose freshness the job keeps (shown beside it on the overview).
    period: str | None = None
    # A job that runs on its own: the django-q2 Schedule created for it (name, cron, UTC).
    schedule: str | None = None
    cron: str | None = None
    # The task function's dotted path; by default snapshots.tasks.<name>.
    function: str = ""

    def __post_init__(self):
        if not self.function:
            object.__setattr__(self, "function", f"{TASKS_MODULE}.{self.name}")
        if bool(self.schedule) != bool(self.cron):
            raise ValueError(f"job {self.name}: a schedule needs both its name and its cron")

    @property
    def scheduled(self) -> bool:
        return self.schedule is not None


JOBS: tuple[Job, ...] = (
    Job(
        "create_hourly_snapshots",
        "Snapshot every active wallet's balances at the top of the hour (and catch up missed hours).",
        period="hourly",
        schedule="hourly_balance_snapshots",
        cron="5 * * * *",
    ),
    Job(
        "create_daily_snapshots",
        "Snapshot balances at 00:00 UTC (and catch up missed days).",
        period="daily",
        schedule="daily_balance_snapshots",
        cron="15 0 * * *",
    ),
    Job(
        "create_weekly_snapshots",
        "Snapshot balances on Sunday 00:00 UTC (and catch up missed weeks).",
        period="weekly",
        schedule="weekly_balance_snapshots",
        cron="0 1 * * 0",
    ),
    Job(
        "create_monthly_snapshots",
        "Snapshot balances on the 1st, 00:00 UTC (and catch up missed months).",
        period="monthly",
        schedule="monthly_balance_snapshots",
        cron="0 2 1 * *",
    ),
    Job(
        "cleanup_old_snapshots",
        "Delete snapshots older than each period's retention, in batches.",
        schedule="cleanup_old_snapshots",
        cron="0 3 * * *",
    ),
    Job("recalculate_wallet_balances", "Repair one wallet's balances from its transactions (admin, --async)."),
    Job("recalculate_all_wallets", "Repair every wallet's balances from its transactions (recalculate --all)."),
    Job("backfill_wallet_snapshots", "Take one wallet's past snapshots of a period (the admin's backfill page)."),
    Job(
        "take_snapshot_shard",
        "Take one wallet range of a boundary split in shards (queued by the snapshot jobs on large fleets).",
    ),
    Job(
        "refresh_stale_snapshots",
        "Re-take the retained snapshots that history edits made stale (queued when such an edit commits).",
    ),
)


def jobs() -> tuple[Job, ...]:
    """All jobs, in the order they are shown. Read at call time, so a test can add one."""
    return JOBS


def scheduled_jobs() -> tuple[Job, ...]:
    return tuple(job for job in jobs() if job.scheduled)


def job_named(name: str) -> Job | None:
    return next((job for job in jobs() if job.name == name), None)


def job_for_function(function: str) -> Job | None:
    """The job whose task is this dotted path, or None."""
    return next((job for job in jobs() if job.function == function), None)


def task_functions() -> frozenset[str]:
    """The dotted paths of every job's task: the only functions a schedule may run."""
    return frozenset(job.function for job in jobs())
