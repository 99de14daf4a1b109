"""What an operator asks of the job system — is the database up, is the broker reachable, when did
each job last succeed or fail, when does it run next, are the snapshots fresh — computed once here
and rendered by `jobs_status`, the /health endpoint and the /metrics endpoint."""

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Task
from django_q.status import Stat

from snapshots import job_registry
from snapshots.cost_basis import current_method
from snapshots.job_registry import Job, Outcome
from snapshots.models import Balance, BalanceSnapshot, SnapshotRun, WalletSnapshot
from snapshots.periods import Period, format_boundary

# How many recent results of one job are read to find its last success and last failure.
RECENT_TASKS = 100


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0

    def as_dict(self):
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4)}


def _timed(name, probe):
    started = time.monotonic()
    try:
        detail = probe()
        ok = True
    except Exception as error:  # any failure of the dependency is the answer, not a crash
        detail, ok = f"{error.__class__.__name__}: {error}".strip(), False
    return Check(name, ok, detail, time.monotonic() - started)


def check_database() -> Check:
    def probe():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return f"PostgreSQL {connection.pg_version // 10000}"  # type: ignore[attr-defined]  # psycopg backend only

    return _timed("database", probe)


def check_broker() -> Check:
    def probe():
        broker = get_broker()
        broker.ping()
        return f"{broker.info()}, {broker.queue_size()} queued"

    return _timed("broker", probe)


def running_clusters() -> int:
    """Clusters that reported to the broker in the last few seconds (what qinfo shows)."""
    try:
        return len(Stat.get_all(get_broker()) or [])
    except Exception:
        return 0


@dataclass
class JobStatus:
    job: str
    func: str
    description: str = ""
    period: str | None = None
    schedule: str | None = None
    cron: str | None = None
    next_run: datetime | None = None
    paused: bool = False
    last_success: datetime | None = None
    last_duration_seconds: float | None = None
    last_rows: int | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    result: dict = field(default_factory=dict)

    def as_dict(self):
        def iso(t):
            return t.isoformat() if t else None

        return {
            "job": self.job,
            "description": self.description,
            "schedule": self.schedule,
            "cron": self.cron,
            "next_run": iso(self.next_run),
            "paused": self.paused,
            "last_success": iso(self.last_success),
            "last_duration_seconds": self.last_duration_seconds,
            "last_rows": self.last_rows,
            "last_failure": iso(self.last_failure),
            "last_error": self.last_error,
            "failures": self.failures,
        }


def _failed(task):
    """A task failed if it raised, or if it returned a result dict whose status is "error"."""
    if not task.success:
        return True
    return isinstance(task.result, dict) and task.result.get("status") == Outcome.ERROR


def _summary(result):
    """One line for a failure: the error of a result dict, or the last line of a traceback."""
    if isinstance(result, dict):
        result = result.get("error") or result.get("failed_wallets")
    lines = str(result or "").strip().splitlines()
    return lines[-1][:300] if lines else ""


def job_statuses(jobs: tuple[Job, ...] | None = None) -> list[JobStatus]:
    """Every job of the registry (or these): its schedule, last success and failure, failure count."""
    jobs = job_registry.jobs() if jobs is None else jobs
    statuses = []
    schedules = {s.func: s for s in Schedule.objects.filter(func__in=[j.function for j in jobs]).order_by("id")}
    for job in jobs:
        status = JobStatus(job.name, job.function, job.description, job.period)
        schedule = schedules.get(status.func)
        if schedule:
            status.schedule, status.cron = schedule.name, schedule.cron
            status.next_run, status.paused = schedule.next_run, schedule.next_run is None
        recent = list(Task.objects.filter(func=status.func).order_by("-stopped")[:RECENT_TASKS])
        # Raised: every one is kept (ack_failures, no save limit on failures). Returned "error":
        # counted among the recent results only.
        status.failures = Task.objects.filter(func=status.func, success=False).count() + sum(
            1 for t in recent if t.success and _failed(t)
        )
        for task in recent:
            if _failed(task):
                if status.last_failure is None:
                    status.last_failure, status.last_error = task.stopped, _summary(task.result)
            elif status.last_success is None:
                status.last_success = task.stopped
                status.last_duration_seconds = round((task.stopped - task.started).total_seconds(), 3)
                result = task.result if isinstance(task.result, dict) else {}
                status.result = result
                status.last_rows = result.get("rows", result.get("deleted"))
            if status.last_success and status.last_failure:
                break
        statuses.append(status)
    return statuses


# --- Snapshot freshness --------------------------------------------------------------------------
# A period is stale when it is enabled and its newest completed snapshot is older than two periods:
# one lost or failed run is made good by the next one's catch-up, two in a row need a person.
# A period that has never completed a run is "never", not stale: a fresh install would otherwise
# be unhealthy until the 1st of next month (history before the first run comes from backfill).
STALE_AFTER_PERIODS = 2


@dataclass
class PeriodFreshness:
    period: str
    enabled: bool
    newest_as_of: datetime | None = None
    rows: int | None = None
    duration_seconds: float | None = None
    failed_runs: int = 0
    age_seconds: float | None = None
    stale: bool = False

    @property
    def state(self):
        if not self.enabled:
            return "disabled"
        if self.newest_as_of is None:
            return "never"
        return "stale" if self.stale else "ok"

    def describe(self):
        if self.newest_as_of is None:
            return f"{self.period}: {self.state}"
        newest, age = format_boundary(self.newest_as_of), format_age(self.age_seconds or 0.0)
        return f"{self.period}: newest {newest}, {age} old ({self.state})"

    def as_dict(self):
        return {
            "period": self.period,
            "enabled": self.enabled,
            "state": self.state,
            "stale": self.stale,
            "newest_as_of": self.newest_as_of.isoformat() if self.newest_as_of else None,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds),
            "rows": self.rows,
            "duration_seconds": self.duration_seconds,
            "failed_runs": self.failed_runs,
        }


def snapshot_freshness(now: datetime | None = None) -> list[PeriodFreshness]:
    now = now or timezone.now()
    report = []
    for period in Period:
        freshness = PeriodFreshness(period.value, enabled=period.enabled)
        runs = SnapshotRun.objects.filter(period=period)
        newest = runs.filter(status=SnapshotRun.Status.COMPLETED).order_by("-as_of").first()
        freshness.failed_runs = runs.filter(status=SnapshotRun.Status.FAILED).count()
        if newest:
            freshness.newest_as_of, freshness.rows = newest.as_of, newest.rows
            freshness.duration_seconds = newest.duration_seconds
            age = now - newest.as_of
            freshness.age_seconds = age.total_seconds()
            freshness.stale = freshness.enabled and age > STALE_AFTER_PERIODS * period.length
        report.append(freshness)
    return report


def check_snapshots(now: datetime | None = None) -> Check:
    def probe():
        report = snapshot_freshness(now)
        stale = [f.describe() for f in report if f.stale]
        if stale:
            raise StaleSnapshots("; ".join(stale))
        return ", ".join(f"{f.period} {f.state}" for f in report)

    return _timed("snapshots", probe)


class StaleSnapshots(Exception):
    pass


def format_age(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m"


@dataclass
class CostBasisReport:
    """How many stored numbers carry another cost-basis method than BALANCE_COST_BASIS (docs/ledger.md:
    a switch applies as wallets are recomputed, to all after `recalculate --all --snapshots`)."""

    method: str
    balances: int
    snapshot_rows: int
    summaries: int

    @property
    def switched(self):
        return bool(self.balances or self.snapshot_rows or self.summaries)

    def describe(self):
        if not self.switched:
            return f"cost basis: {self.method} everywhere"
        return (
            f"cost basis: BALANCE_COST_BASIS is {self.method}, but {self.balances:,} balances, "
            f"{self.snapshot_rows:,} snapshot rows and {self.summaries:,} wallet summaries carry another method "
            "until `manage.py recalculate --all --snapshots` has run"
        )

    def as_dict(self):
        return {
            "method": self.method,
            "balances_with_another_method": self.balances,
            "snapshot_rows_with_another_method": self.snapshot_rows,
            "summaries_with_another_method": self.summaries,
        }


def cost_basis_report():
    method = current_method()
    return CostBasisReport(
        method=method,
        balances=Balance.objects.exclude(cost_basis_method=method).count(),
        snapshot_rows=BalanceSnapshot.objects.exclude(cost_basis_method=method).count(),
        summaries=WalletSnapshot.objects.exclude(cost_basis_method=method).count(),
    )
