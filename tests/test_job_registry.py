"""Adding a job is one entry in snapshots/job_registry.py plus its function: everything that lists
jobs — the installed schedules, jobs_status, /metrics, the overview, the functions a schedule may
run — sees it."""

import inspect
import io
import json

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django_q.models import Schedule
from django_q.tasks import async_task

from snapshots import job_registry, tasks
from snapshots.job_registry import Job, Outcome
from snapshots.models import JobRunStats
from snapshots.schedules import install_schedules
from snapshots.services import job_metrics
from snapshots.task_policy import allowed_task_functions

pytestmark = pytest.mark.django_db

TOKEN = "a-metrics-token-for-tests"
NIGHTLY = Job(
    "nightly_report",
    "A job added by this test: one registry entry and the function below.",
    schedule="nightly_report",
    cron="0 4 * * *",
    function=f"{__name__}.nightly_report",
)


def nightly_report(scheduled_at=None):
    return {"status": Outcome.SUCCESS, "rows": 3}


@pytest.fixture
def with_nightly_report(monkeypatch):
    monkeypatch.setattr(job_registry, "JOBS", (*job_registry.JOBS, NIGHTLY))


def test_a_new_job_is_installed_as_a_schedule(with_nightly_report):
    result = install_schedules()
    assert "nightly_report" in result.created
    schedule = Schedule.objects.get(name="nightly_report")
    assert (schedule.func, schedule.cron) == (NIGHTLY.function, "0 4 * * *")


def test_a_new_job_may_be_scheduled_and_an_unknown_function_may_not(with_nightly_report):
    assert NIGHTLY.function in allowed_task_functions()
    assert "snapshots.tasks.create_hourly_snapshots" in allowed_task_functions()
    assert "os.system" not in allowed_task_functions()


def test_a_new_job_shows_in_jobs_status_with_its_last_run(with_nightly_report):
    install_schedules()
    async_task(NIGHTLY.function, sync=True)
    out = io.StringIO()
    call_command("jobs_status", "--json", stdout=out)
    job = next(j for j in json.loads(out.getvalue())["jobs"] if j["job"] == "nightly_report")
    assert job["schedule"] == "nightly_report" and job["cron"] == "0 4 * * *"
    assert job["description"] == NIGHTLY.description
    assert job["last_success"] is not None and job["last_rows"] == 3


def test_a_new_job_is_counted_and_shown_on_metrics(with_nightly_report, client):
    install_schedules()
    async_task(NIGHTLY.function, sync=True)
    assert JobRunStats.objects.get(task="nightly_report").outcome == "success"
    with override_settings(METRICS_TOKEN=TOKEN):
        text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert 'bagtracker_task_runs_total{outcome="success",task="nightly_report"} 1.0' in text
    assert 'bagtracker_schedule_paused{schedule="nightly_report",task="nightly_report"} 0.0' in text
    assert job_metrics.job_name(NIGHTLY.function) == "nightly_report"


def test_a_new_job_is_on_the_overview(with_nightly_report, admin_client):
    install_schedules()
    page = admin_client.get(reverse("admin:overview")).content.decode()
    assert 'data-job="nightly_report"' in page


def test_every_task_in_tasks_py_is_a_registered_job():
    # A task without its registry entry would be refused by the allow-list and missing from
    # jobs_status, /metrics and the overview: say so here, by name.
    public = {
        f"{tasks.__name__}.{name}"
        for name, member in vars(tasks).items()
        if inspect.isfunction(member) and member.__module__ == tasks.__name__ and not name.startswith("_")
    }
    assert public - job_registry.task_functions() == set()
