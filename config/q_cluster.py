"""django-q2 cluster configuration: the Redis broker (REDIS_URL, REDIS_HOST…, or the embedded
server of local settings), or the ORM broker when chosen explicitly (BAGTRACKER_BROKER=orm).

Every knob below is chosen for BagTracker's jobs: few of them, each idempotent, some running for
minutes (a snapshot of a large fleet, `recalculate --all`). Read django_q/conf.py for the defaults.
"""

from django.core.exceptions import ImproperlyConfigured

# The longest a job may run before its worker is killed. A monthly snapshot or a full
# recalculation of a large fleet takes minutes, never half an hour; past that something is stuck.
JOB_TIMEOUT_SECONDS = 30 * 60
# ORM broker only: a task whose worker has not acknowledged it within `retry` seconds is handed out
# again. It must exceed the timeout, or a task still running legitimately is delivered twice.
JOB_RETRY_SECONDS = JOB_TIMEOUT_SECONDS + 5 * 60


def q_cluster_settings(redis_url, redis_host, redis_port, redis_db, redis_password, workers=2, orm=False):
    if JOB_RETRY_SECONDS <= JOB_TIMEOUT_SECONDS:  # pragma: no cover - guards an edit of the constants
        raise ImproperlyConfigured("Q_CLUSTER retry must exceed timeout")
    config = {
        # The Redis list key, the signing salt of task payloads and the label in qinfo/qmonitor.
        # Every process that queues or runs jobs (web, qcluster, manage.py) must share it.
        "name": "bagtracker",
        # Worker processes per qcluster. Jobs are database-bound: two per container is plenty;
        # scale out with more qcluster containers (`--scale qcluster=N`) instead.
        "workers": workers,
        "timeout": JOB_TIMEOUT_SECONDS,
        "retry": JOB_RETRY_SECONDS,
        # ORM broker: a task that keeps killing its worker (timeout, OOM) is delivered at most this
        # many times, then kept as a failure. Harmless to retry because every job is idempotent.
        "max_attempts": 3,
        # A job that raised is acknowledged at once and kept in "Failed tasks" (our dead-letter
        # queue, resubmittable from the admin) instead of being re-delivered after `retry`: its
        # error is deterministic (bad data, a bug), and a scheduled snapshot's next run catches up
        # the boundary it missed anyway.
        "ack_failures": True,
        # Successful task results kept for the admin and jobs_status; failures are always kept.
        "save_limit": 1000,
        # A worker is replaced after this many tasks, or after a task that left it above max_rss
        # (KiB), so memory held by one large snapshot is given back to the machine.
        "recycle": 100,
        "max_rss": 512 * 1024,
        # Interval schedules never replay missed runs; CRON schedules never do in django-q2 anyway.
        # Missed snapshot boundaries are taken by the snapshot service's own catch-up instead.
        "catch_up": False,
        "label": "Jobs (django-q2)",
    }
    if orm:
        config["orm"] = "default"
    elif redis_url:
        config["redis"] = redis_url
    elif redis_host:
        config["redis"] = {"host": redis_host, "port": redis_port, "db": redis_db, "password": redis_password}
    else:
        raise ImproperlyConfigured("no broker: set REDIS_URL or REDIS_HOST (or BAGTRACKER_BROKER=orm)")
    return config
