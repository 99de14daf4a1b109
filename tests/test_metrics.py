"""/metrics as Prometheus reads it: parsed with prometheus_client's own parser, one family per
metric with HELP and TYPE, labels Prometheus does not overwrite, and run counts kept in the database
by the worker that ran the job."""

import re
from pathlib import Path

import pytest
from django.test import override_settings
from django_q.models import Task
from django_q.tasks import async_task
from prometheus_client.parser import text_string_to_metric_families

from snapshots.job_registry import JOBS
from snapshots.models import JobRunStats
from snapshots.services import job_metrics

TOKEN = "a-metrics-token-for-tests"
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("metrics_token")]


@pytest.fixture
def metrics_token():
    with override_settings(METRICS_TOKEN=TOKEN):
        yield


def scrape(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return response.content.decode()


def families(client):
    parsed = list(text_string_to_metric_families(scrape(client)))
    names = [family.name for family in parsed]
    assert len(names) == len(set(names)), "a family is split in two"
    return {family.name: family for family in parsed}


def samples(family, name=None, **labels):
    return [
        s
        for s in family.samples
        if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def run_in_a_worker(job, *args, **kwargs):
    """Through django-q2's worker and monitor, in this process (sync): the signals fire as in a cluster."""
    return async_task(f"snapshots.tasks.{job}", *args, sync=True, **kwargs)


def test_every_family_has_help_and_a_type_and_no_label_prometheus_owns(client):
    parsed = families(client)
    expected = {
        "bagtracker_database_up": "gauge",
        "bagtracker_broker_up": "gauge",
        "bagtracker_clusters_running": "gauge",
        "bagtracker_job_last_success_timestamp_seconds": "gauge",
        "bagtracker_job_last_duration_seconds": "gauge",
        "bagtracker_job_last_rows": "gauge",
        "bagtracker_job_last_failure_timestamp_seconds": "gauge",
        "bagtracker_schedule_next_run_timestamp_seconds": "gauge",
        "bagtracker_schedule_paused": "gauge",
        "bagtracker_task_runs": "counter",
        "bagtracker_task_duration_seconds": "histogram",
        "bagtracker_snapshot_enabled": "gauge",
        "bagtracker_snapshot_newest_as_of_timestamp_seconds": "gauge",
        "bagtracker_snapshot_newest_rows": "gauge",
        "bagtracker_snapshot_newest_duration_seconds": "gauge",
        "bagtracker_snapshot_stale": "gauge",
        "bagtracker_snapshot_failed_runs": "gauge",
    }
    assert {name: family.type for name, family in parsed.items()} == expected
    for family in parsed.values():
        assert family.documentation, family.name
        for sample in family.samples:
            assert not {"job", "instance"} & set(sample.labels), sample


def test_each_job_and_outcome_starts_at_zero(client):
    runs = families(client)["bagtracker_task_runs"]
    assert {(s.labels["task"], s.labels["outcome"]) for s in runs.samples} == {
        (job.name, outcome) for job in JOBS for outcome in job_metrics.OUTCOMES
    }
    assert {s.value for s in runs.samples} == {0}


def test_a_run_in_a_worker_is_counted_with_its_outcome_and_duration(client, wallet):
    run_in_a_worker("cleanup_old_snapshots")
    run_in_a_worker("recalculate_wallet_balances", wallet.pk)
    run_in_a_worker("recalculate_wallet_balances", 987654321)  # returns {"status": "error", …}
    parsed = families(client)
    runs, durations = parsed["bagtracker_task_runs"], parsed["bagtracker_task_duration_seconds"]

    assert samples(runs, "bagtracker_task_runs_total", task="cleanup_old_snapshots", outcome="success")[0].value == 1
    recalculate = {"task": "recalculate_wallet_balances"}
    assert samples(runs, outcome="success", **recalculate)[0].value == 1
    assert samples(runs, outcome="error", **recalculate)[0].value == 1
    count = samples(durations, "bagtracker_task_duration_seconds_count", outcome="error", **recalculate)
    assert count[0].value == 1
    buckets = samples(durations, "bagtracker_task_duration_seconds_bucket", outcome="error", **recalculate)
    assert [b.labels["le"] for b in buckets][-1] == "+Inf" and buckets[-1].value == 1
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)  # cumulative
    assert samples(durations, "bagtracker_task_duration_seconds_sum", outcome="error", **recalculate)[0].value > 0


def test_a_job_that_raises_counts_as_an_error():
    task = {"id": "x" * 32, "func": "snapshots.tasks.create_daily_snapshots"}
    job_metrics.task_started("django_q", task=task)
    job_metrics.task_finished("django_q", task={**task, "success": False, "result": "Traceback …"})
    assert JobRunStats.objects.get(task="create_daily_snapshots").outcome == "error"


def test_only_the_known_jobs_are_counted():
    for func in ("snapshots.tasks.no_such_job", "math.floor", "django_q.tasks.async_task"):
        task = {"id": func, "func": func}
        job_metrics.task_started("django_q", task=task)
        job_metrics.task_finished("django_q", task={**task, "success": True, "result": None})
    assert not JobRunStats.objects.exists()


def test_the_durations_fall_in_their_buckets():
    for seconds in (0.05, 0.1, 7, 7, 99999):
        job_metrics.record_run("create_hourly_snapshots", "success", seconds)
    stats = JobRunStats.objects.get(task="create_hourly_snapshots", outcome="success")
    assert stats.runs == 5 and stats.duration_seconds_sum == pytest.approx(100013.15)
    slot = {upper: i for i, upper in enumerate(job_metrics.DURATION_BUCKETS)}
    assert stats.duration_buckets[slot[0.1]] == 2
    assert stats.duration_buckets[slot[10]] == 2
    assert stats.duration_buckets[len(job_metrics.DURATION_BUCKETS)] == 1  # +Inf


def test_counts_do_not_go_down_when_django_q_prunes_its_task_table(client):
    run_in_a_worker("cleanup_old_snapshots")
    Task.objects.all().delete()  # what Q_CLUSTER's save_limit does to old results
    runs = families(client)["bagtracker_task_runs"]
    assert samples(runs, task="cleanup_old_snapshots", outcome="success")[0].value == 1


# --- The alert examples of the docs, against a real scrape ----------------------------------------


def alert_expressions():
    text = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"```yaml\n(# Prometheus alerting rules.*?)```", text, re.DOTALL)
    assert block, "docs/operations.md has the alerting rules"
    return re.findall(r"^\s*expr: (.+)$", block.group(1), re.MULTILINE)


def test_every_series_the_alert_examples_select_exists_in_a_scrape(client):
    run_in_a_worker("cleanup_old_snapshots")
    parsed = list(text_string_to_metric_families(scrape(client)))
    scraped = [(sample.name, sample.labels) for family in parsed for sample in family.samples]
    expressions = alert_expressions()
    assert expressions
    for expression in expressions:
        for name, matchers in re.findall(r"(bagtracker_\w+)(?:\{([^}]*)\})?", expression):
            wanted = dict(re.findall(r'(\w+)="([^"]*)"', matchers))
            assert any(n == name and wanted.items() <= labels.items() for n, labels in scraped), (name, wanted)
