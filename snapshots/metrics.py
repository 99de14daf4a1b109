"""What /metrics exposes, through prometheus_client: one custom collector that reads the database
on each scrape (web processes serve /metrics, qcluster processes run the jobs, so nothing is kept
in a process's memory).

Labels: `task` (the job's name), `outcome`, `schedule`, `period` — never `job` or `instance`, which
Prometheus sets itself on every scraped series (a `job` label of ours would be renamed
`exported_job`, and alerts written against it would find nothing).
"""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from snapshots.models import JobRunStats
from snapshots.services import job_metrics, monitoring

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes


def _seconds(instant):
    return None if instant is None else instant.timestamp()


def _gauge(name, documentation, labels, samples):
    """A gauge family; samples are (label values, value) and a None value is left out."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        if value is not None:
            family.add_metric(values, float(value))
    return family


def _cumulative(slots):
    """[(le, runs ≤ le)] from the stored per-bucket counts (NULL or missing slots are 0)."""
    slots = list(slots) + [0] * (len(job_metrics.DURATION_BUCKETS) + 1 - len(slots))
    total, buckets = 0, []
    for upper, count in zip((*job_metrics.DURATION_BUCKETS, "+Inf"), slots, strict=False):
        total += count or 0
        buckets.append((str(upper), total))
    return buckets


class BagTrackerCollector:
    """Everything on /metrics: health of the dependencies, each job's last run and its schedule, the
    counted runs and durations of each job, and each period's snapshot freshness."""

    def collect(self):
        yield from self._health()
        statuses = monitoring.job_statuses()
        yield from self._last_runs(statuses)
        yield from self._run_counts()
        yield from self._freshness()

    def _health(self):
        database, broker = monitoring.check_database(), monitoring.check_broker()
        yield _gauge("bagtracker_database_up", "1 when the database answers.", [], [([], database.ok)])
        yield _gauge("bagtracker_broker_up", "1 when the job broker (Redis or ORM) answers.", [], [([], broker.ok)])
        yield _gauge(
            "bagtracker_clusters_running",
            "qcluster processes that reported in the last seconds.",
            [],
            [([], monitoring.running_clusters())],
        )

    def _last_runs(self, statuses):
        task = ["task"]
        yield _gauge(
            "bagtracker_job_last_success_timestamp_seconds",
            "When the job last succeeded (Unix time).",
            task,
            [([s.job], _seconds(s.last_success)) for s in statuses],
        )
        yield _gauge(
            "bagtracker_job_last_duration_seconds",
            "Duration of the job's last successful run.",
            task,
            [([s.job], s.last_duration_seconds) for s in statuses],
        )
        yield _gauge(
            "bagtracker_job_last_rows",
            "Rows written (snapshots) or deleted (cleanup) by the last successful run.",
            task,
            [([s.job], s.last_rows) for s in statuses],
        )
        yield _gauge(
            "bagtracker_job_last_failure_timestamp_seconds",
            "When the job last failed (Unix time).",
            task,
            [([s.job], _seconds(s.last_failure)) for s in statuses],
        )
        scheduled = [s for s in statuses if s.schedule]
        yield _gauge(
            "bagtracker_schedule_next_run_timestamp_seconds",
            "When the schedule fires next (Unix time); absent while paused.",
            ["task", "schedule"],
            [([s.job, s.schedule], _seconds(s.next_run)) for s in scheduled],
        )
        yield _gauge(
            "bagtracker_schedule_paused",
            "1 when the schedule is paused in the admin.",
            ["task", "schedule"],
            [([s.job, s.schedule], s.paused) for s in scheduled],
        )

    def _run_counts(self):
        stored = {(row.task, row.outcome): row for row in JobRunStats.objects.all()}
        # Every known job with every outcome, at 0 until it happens: increase() and rate() then see
        # the first failure, instead of a series that appears out of nowhere.
        keys = {(task, outcome) for task in job_metrics.known_jobs() for outcome in job_metrics.OUTCOMES}
        keys |= set(stored)
        runs = CounterMetricFamily(
            "bagtracker_task_runs",
            "Runs of the job by a qcluster worker, per outcome (success, partial_success, skipped, error).",
            labels=["task", "outcome"],
        )
        durations = HistogramMetricFamily(
            "bagtracker_task_duration_seconds",
            "How long the job's runs took in the worker, per outcome.",
            labels=["task", "outcome"],
        )
        for task, outcome in sorted(keys):
            row = stored.get((task, outcome))
            runs.add_metric([task, outcome], row.runs if row else 0)
            if row:  # a histogram of nothing says nothing: only what happened (15 series each)
                durations.add_metric([task, outcome], _cumulative(row.duration_buckets), row.duration_seconds_sum)
        yield runs
        yield durations

    def _freshness(self):
        report = monitoring.snapshot_freshness()
        period = ["period"]
        yield _gauge(
            "bagtracker_snapshot_enabled",
            "1 when the period's snapshots are switched on.",
            period,
            [([f.period], f.enabled) for f in report],
        )
        yield _gauge(
            "bagtracker_snapshot_newest_as_of_timestamp_seconds",
            "Boundary of the newest completed snapshot (Unix time).",
            period,
            [([f.period], _seconds(f.newest_as_of)) for f in report],
        )
        yield _gauge(
            "bagtracker_snapshot_newest_rows",
            "Rows of the newest completed snapshot.",
            period,
            [([f.period], f.rows) for f in report],
        )
        yield _gauge(
            "bagtracker_snapshot_newest_duration_seconds",
            "How long the newest completed snapshot took.",
            period,
            [([f.period], f.duration_seconds) for f in report],
        )
        yield _gauge(
            "bagtracker_snapshot_stale",
            "1 when the period is enabled and its newest snapshot is older than two periods.",
            period,
            [([f.period], f.stale) for f in report],
        )
        yield _gauge(
            "bagtracker_snapshot_failed_runs",
            "Failed snapshot runs kept (see Snapshot runs in the admin).",
            period,
            [([f.period], f.failed_runs) for f in report],
        )


registry = CollectorRegistry(auto_describe=False)
registry.register(BagTrackerCollector())


def render():
    return generate_latest(registry).decode()
