"""Per job and outcome: how many runs, and how long they took — counted where jobs run (qcluster
workers), read where /metrics is served (web), so kept in the database (snapshots.JobRunStats).

A worker records each run of a known job with one UPSERT right after it finished: django-q2's
`pre_execute` and `post_execute_in_worker` signals (connected in apps.py) bracket every task a worker
runs, whether the job returned, raised or timed out, so no job has to remember to report itself.
The counts never go down: django-q2 prunes its own task table, this one is never pruned.
"""

import logging
import time

from django.db import connection

from snapshots import job_registry
from snapshots.job_registry import Outcome

logger = logging.getLogger("snapshots.jobs")

# Upper bounds of the duration histogram's buckets, in seconds (+Inf follows). From a sub-second
# snapshot of a small portfolio to an hour-long `recalculate --all` of a large one. Changing them
# changes what each stored slot means: reset JobRunStats.duration_buckets in the same migration.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# A job's outcome is the status of the dict it returned; a job that raised (or timed out) is "error".
OUTCOMES = tuple(Outcome)

_UPSERT = """
INSERT INTO snapshots_jobrunstats AS stats
    (task, outcome, runs, duration_seconds_sum, duration_buckets, updated_at)
VALUES (%(task)s, %(outcome)s, 1, %(seconds)s, %(buckets)s::bigint[], now())
ON CONFLICT (task, outcome) DO UPDATE SET
    runs = stats.runs + 1,
    duration_seconds_sum = stats.duration_seconds_sum + EXCLUDED.duration_seconds_sum,
    duration_buckets[%(slot)s] = COALESCE(stats.duration_buckets[%(slot)s], 0) + 1,
    updated_at = now()
"""


def known_jobs() -> tuple[str, ...]:
    """The jobs whose runs are counted and exposed: the registry's (snapshots/job_registry.py)."""
    return tuple(job.name for job in job_registry.jobs())


def bucket_index(seconds: float) -> int:
    """0-based slot of the bucket a run of `seconds` falls in; len(DURATION_BUCKETS) is +Inf."""
    for index, upper in enumerate(DURATION_BUCKETS):
        if seconds <= upper:
            return index
    return len(DURATION_BUCKETS)


def outcome_of(success: bool | None, result: object) -> str:
    if not success:
        return Outcome.ERROR
    status = result.get("status") if isinstance(result, dict) else None
    return str(status) if status in OUTCOMES else Outcome.SUCCESS


def record_run(task: str, outcome: str, seconds: float) -> None:
    """Count one run of `task` that ended with `outcome` after `seconds` (one statement)."""
    index = bucket_index(seconds)
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    buckets[index] = 1
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT,
            {"task": task, "outcome": outcome, "seconds": float(seconds), "buckets": buckets, "slot": index + 1},
        )


def job_name(func: object) -> str | None:
    """'create_hourly_snapshots' for snapshots.tasks.create_hourly_snapshots (a path or the function)."""
    path = func if isinstance(func, str) else f"{getattr(func, '__module__', '')}.{getattr(func, '__name__', '')}"
    job = job_registry.job_for_function(path)
    return job.name if job else None


# --- The worker's side: django-q2 signals ---------------------------------------------------------
# A worker process runs one task at a time; the start of the running task is kept per task id.
_started: dict[str | None, float] = {}


def task_started(sender: object, func: object = None, task: dict | None = None, **kwargs: object) -> None:
    if task is not None:
        _started[task.get("id")] = time.monotonic()


def task_finished(sender: object, func: object = None, task: dict | None = None, **kwargs: object) -> None:
    if task is None:
        return
    started = _started.pop(task.get("id"), None)
    name = job_name(task.get("func"))
    if name is None or started is None:
        return
    outcome = outcome_of(task.get("success"), task.get("result"))
    seconds = time.monotonic() - started
    try:
        record_run(name, outcome, seconds)
    except Exception:
        # The job may have left its connection unusable (killed by the server, say): once more on a
        # fresh one. The job's own result matters more than its count, so a second failure is logged.
        connection.close()
        try:
            record_run(name, outcome, seconds)
        except Exception:
            logger.warning("could not count the run of %s (%s)", name, outcome, exc_info=True)
