"""The jobs as plain functions: what the cluster runs, called directly (no queue involved)."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from snapshots import tasks
from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.periods import floor_boundary
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc


@pytest.fixture
def holding(make_tx, wallet):
    make_tx("buy", "2", price="100", at=utc(2026, 1, 1))
    return wallet


def test_a_scheduled_run_takes_the_boundary_it_was_scheduled_for_not_the_pick_up_time(holding):
    # Scheduled for 10:05, picked up at any later time: the 10:00 boundary.
    result = tasks.create_hourly_snapshots(scheduled_at="2026-03-02T10:05:00+00:00")
    assert result["status"] == "success"
    assert (result["period"], result["as_of"], result["source"]) == ("hourly", "2026-03-02T10:00:00Z", "scheduled")
    assert BalanceSnapshot.objects.filter(period="hourly", as_of=utc(2026, 3, 2, 10)).count() == 1


def test_a_scheduled_run_catches_up_the_boundaries_a_lost_message_missed(holding):
    tasks.create_daily_snapshots(scheduled_at="2026-03-01T00:15:00+00:00")
    result = tasks.create_daily_snapshots(scheduled_at="2026-03-04T00:15:00+00:00")
    assert result["caught_up"] == 2
    assert sorted(SnapshotRun.objects.filter(period="daily").values_list("as_of", flat=True)) == [
        utc(2026, 3, day) for day in (1, 2, 3, 4)
    ]


def test_a_run_from_code_is_manual_and_takes_the_boundary_at(holding):
    result = tasks.create_weekly_snapshots(at="2026-03-04T12:00:00+00:00")
    assert (result["as_of"], result["source"]) == ("2026-03-01T00:00:00Z", "manual")


def test_a_disabled_period_is_skipped(settings, holding):
    settings.BALANCE_MONTHLY_SNAPSHOTS = False
    result = tasks.create_monthly_snapshots(scheduled_at="2026-03-01T02:00:00+00:00")
    assert (result["status"], result["reason"]) == ("skipped", "disabled_in_settings")
    assert not SnapshotRun.objects.exists()


def test_the_same_job_run_twice_leaves_one_set_of_rows(holding):
    first = tasks.create_hourly_snapshots(scheduled_at="2026-03-02T10:05:00+00:00")
    second = tasks.create_hourly_snapshots(scheduled_at="2026-03-02T10:05:00+00:00")
    assert first["rows"] == second["rows"] == 1
    assert BalanceSnapshot.objects.count() == 1
    assert SnapshotRun.objects.filter(status="completed").count() == 1


def test_cleanup_deletes_what_is_older_than_retention_at_the_scheduled_time(holding):
    take_snapshot("hourly", utc(2026, 3, 1, 0), "scheduled")
    take_snapshot("hourly", utc(2026, 3, 9, 0), "scheduled")
    result = tasks.cleanup_old_snapshots(scheduled_at="2026-03-10T03:00:00+00:00")
    assert result["status"] == "success" and result["deleted"]["hourly"] == 1
    assert list(BalanceSnapshot.objects.values_list("as_of", flat=True)) == [utc(2026, 3, 9, 0)]


def test_recalculating_a_wallet_can_rebuild_its_retained_snapshots(holding):
    take_snapshot("daily", floor_boundary("daily", timezone.now() - timedelta(days=1)), "scheduled")
    BalanceSnapshot.objects.update(amount="1")  # damaged
    result = tasks.recalculate_wallet_balances(holding.pk, create_snapshots=True)
    assert result["status"] == "success" and result["snapshots"]["status"] == "success"
    assert str(BalanceSnapshot.objects.get().amount).rstrip("0").rstrip(".") == "2"


def test_recalculating_all_wallets_returns_the_seed_dict(holding):
    result = tasks.recalculate_all_wallets(create_snapshots=True)
    assert result["status"] == "success" and result["wallets"] == 1
    assert "duration_seconds" in result and "snapshots" in result


def test_each_job_logs_one_line_with_period_as_of_rows_and_duration(holding, caplog):
    with caplog.at_level(logging.INFO, logger="snapshots.jobs"):
        tasks.create_hourly_snapshots(scheduled_at="2026-03-02T10:05:00+00:00")
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("job=create_hourly_snapshots")]
    assert "status=success" in line and "period=hourly" in line and "as_of=2026-03-02T10:00:00Z" in line
    assert "rows=1" in line and "duration_seconds=" in line
