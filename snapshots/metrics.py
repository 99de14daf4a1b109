"""The Prometheus text exposition format (version 0.0.4), written by hand: a few gauges do not
justify a dependency. https://prometheus.io/docs/instrumenting/exposition_formats/"""

from snapshots.services import monitoring

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exposition:
    def __init__(self):
        self._lines = []
        self._declared = set()

    def gauge(self, name, help_text, value, **labels):
        if name not in self._declared:
            self._lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            self._declared.add(name)
        if value is None:
            return
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self._lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")

    def text(self):
        return "\n".join(self._lines) + "\n"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if hasattr(value, "timestamp"):
        return f"{value.timestamp():.3f}"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def render():
    out = Exposition()
    database, broker = monitoring.check_database(), monitoring.check_broker()
    out.gauge("bagtracker_database_up", "1 when the database answers.", database.ok)
    out.gauge("bagtracker_broker_up", "1 when the job broker (Redis or ORM) answers.", broker.ok)
    out.gauge(
        "bagtracker_clusters_running",
        "qcluster processes that reported in the last seconds.",
        monitoring.running_clusters(),
    )
    for status in monitoring.job_statuses():
        job = status.job
        out.gauge(
            "bagtracker_job_last_success_timestamp_seconds",
            "When the job last succeeded (Unix time).",
            status.last_success,
            job=job,
        )
        out.gauge(
            "bagtracker_job_last_duration_seconds",
            "Duration of the job's last successful run.",
            status.last_duration_seconds,
            job=job,
        )
        out.gauge(
            "bagtracker_job_last_rows",
            "Rows written (snapshots) or deleted (cleanup) by the last run.",
            status.last_rows,
            job=job,
        )
        out.gauge(
            "bagtracker_job_last_failure_timestamp_seconds",
            "When the job last failed (Unix time).",
            status.last_failure,
            job=job,
        )
        out.gauge("bagtracker_job_failures", "Failed runs of the job kept by the cluster.", status.failures, job=job)
        if status.schedule:
            out.gauge(
                "bagtracker_schedule_next_run_timestamp_seconds",
                "When the schedule fires next (Unix time).",
                status.next_run,
                job=job,
                schedule=status.schedule,
            )
            out.gauge(
                "bagtracker_schedule_paused",
                "1 when the schedule is paused in the admin.",
                status.paused,
                job=job,
                schedule=status.schedule,
            )
    for f in monitoring.snapshot_freshness():
        out.gauge(
            "bagtracker_snapshot_enabled", "1 when the period's snapshots are switched on.", f.enabled, period=f.period
        )
        out.gauge(
            "bagtracker_snapshot_newest_as_of_timestamp_seconds",
            "Boundary of the newest completed snapshot.",
            f.newest_as_of,
            period=f.period,
        )
        out.gauge("bagtracker_snapshot_newest_rows", "Rows of the newest completed snapshot.", f.rows, period=f.period)
        out.gauge(
            "bagtracker_snapshot_newest_duration_seconds",
            "How long the newest completed snapshot took.",
            f.duration_seconds,
            period=f.period,
        )
        out.gauge(
            "bagtracker_snapshot_stale",
            "1 when the newest snapshot is older than two periods.",
            f.stale,
            period=f.period,
        )
        out.gauge(
            "bagtracker_snapshot_failed_runs",
            "Failed snapshot runs kept (see Snapshot runs in the admin).",
            f.failed_runs,
            period=f.period,
        )
    return out.text()
