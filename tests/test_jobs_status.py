"""`manage.py jobs_status`: each job and each period at a glance; exit 1 when snapshots are stale."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_q.models import Schedule, Success

from snapshots.periods import floor_boundary
from snapshots.services.snapshots import take_snapshot


def run(*args):
    out = io.StringIO()
    call_command("jobs_status", *args, stdout=out)
    return out.getvalue()


def snapshot_hours_ago(hours, period="hourly"):
    take_snapshot(period, floor_boundary(period, timezone.now() - timedelta(hours=hours)), "scheduled")


@pytest.mark.django_db
def test_it_lists_every_job_with_its_schedule_and_every_period():
    out = run()
    for job in ("create_hourly_snapshots", "cleanup_old_snapshots", "recalculate_all_wallets"):
        assert job in out
    assert "hourly_balance_snapshots (5 * * * *)" in out
    assert "hourly   never" in out


@pytest.mark.django_db
def test_a_period_that_never_ran_is_not_stale():
    assert json.loads(run("--json"))["stale"] is False


@pytest.mark.django_db
def test_it_shows_the_last_success_and_a_paused_schedule():
    now = timezone.now()
    Success.objects.create(
        id="c" * 32,
        name="x",
        func="snapshots.tasks.create_daily_snapshots",
        started=now - timedelta(seconds=3),
        stopped=now,
        success=True,
        result={"status": "success", "rows": 1204},
    )
    Schedule.objects.filter(name="daily_balance_snapshots").update(next_run=None)
    line = next(line for line in run().splitlines() if line.startswith("create_daily_snapshots"))
    assert "paused" in line and "(3.00 s, 1,204 rows)" in line


@pytest.mark.django_db
def test_it_exits_1_when_an_enabled_period_is_older_than_two_periods(wallet):
    snapshot_hours_ago(3)
    with pytest.raises(CommandError) as error:
        run("--quiet")
    assert error.value.returncode == 1
    assert "stale snapshots: hourly: newest" in str(error.value)


@pytest.mark.django_db
def test_json_output_still_comes_with_the_exit_status(wallet):
    snapshot_hours_ago(3)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("jobs_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    hourly = next(p for p in data["periods"] if p["period"] == "hourly")
    assert data["stale"] is True and hourly["state"] == "stale"


@pytest.mark.django_db
def test_a_recent_snapshot_or_a_disabled_period_is_not_stale(settings, wallet):
    snapshot_hours_ago(1)
    assert json.loads(run("--json"))["stale"] is False
    snapshot_hours_ago(30, period="daily")
    settings.BALANCE_DAILY_SNAPSHOTS = False
    data = json.loads(run("--json"))
    assert data["stale"] is False
    assert next(p for p in data["periods"] if p["period"] == "daily")["state"] == "disabled"


@pytest.mark.django_db
def test_health_is_503_when_snapshots_are_stale(client, admin_client, wallet):
    snapshot_hours_ago(3)
    assert client.get("/health").status_code == 503
    response = admin_client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["snapshots"]["ok"] is False
    assert client.get("/health?only=database,broker").status_code == 200
