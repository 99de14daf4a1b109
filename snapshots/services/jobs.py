"""Queueing jobs and reporting their outcome: the task-id contract of `--async`, and the log line
every job writes (docs/schedules.md). The jobs themselves are listed in
snapshots/job_registry.py.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from bagtracker import instants
from snapshots.job_registry import Outcome, job_named

logger = logging.getLogger("snapshots.jobs")

LOGGED_FIELDS = (
    "status",
    "reason",
    "period",
    "as_of",
    "source",
    "shard",
    "rows",
    "caught_up",
    "wallets",
    "balances_written",
    "duration_seconds",
)


class QueueError(Exception):
    """The job could not be handed to the broker (e.g. Redis is unreachable)."""


def queue_job(job: str, *args: Any, **kwargs: Any) -> str:
    """Queue the task of the registry's ``job`` (*args, **kwargs) on the cluster's broker; return the task id."""
    from django_q.tasks import async_task

    entry = job_named(job)
    if entry is None:
        raise QueueError(f"could not queue {job}: no such job")
    try:
        task_id = async_task(entry.function, *args, q_options={"group": job}, **kwargs)
    except Exception as error:  # redis.ConnectionError, OperationalError, …
        raise QueueError(f"could not queue {job}: {error.__class__.__name__}: {error}") from error
    if not task_id:
        raise QueueError(f"could not queue {job}: the broker returned no task id")
    logger.info("job=%s queued task=%s", job, task_id)
    return task_id


def intended_time(scheduled_at: str | datetime | None) -> datetime:
    """The instant a scheduled run was meant for (django-q2 passes it as an ISO string), else now."""
    if scheduled_at is None:
        return timezone.now()
    if isinstance(scheduled_at, str):
        scheduled_at = datetime.fromisoformat(scheduled_at)
    if timezone.is_naive(scheduled_at):
        scheduled_at = timezone.make_aware(scheduled_at, UTC)
    return instants.to_utc(scheduled_at)  # year 1 with an offset: datetime.min, refused by the service


def report(job: str, result: dict[str, Any]) -> dict[str, Any]:
    """Log one line per finished job — job=… status=… period=… as_of=… rows=… duration_seconds=… —
    at ERROR when it failed (so Sentry sees it), and return the result dict (its status a plain
    string: django-q2 keeps results pickled, and a plain string unpickles whatever the code becomes)."""
    if "status" in result:
        result = {**result, "status": str(result["status"])}
    fields = " ".join(f"{key}={result[key]}" for key in LOGGED_FIELDS if result.get(key) is not None)
    failed = result.get("status") in (Outcome.ERROR, Outcome.PARTIAL_SUCCESS)
    extra = ""
    if failed:
        errors = result.get("failed_wallets") or result.get("failed_boundaries") or result.get("error")
        extra = f" errors={errors}"
    logger.log(logging.ERROR if failed else logging.INFO, "job=%s %s%s", job, fields, extra)
    return result
