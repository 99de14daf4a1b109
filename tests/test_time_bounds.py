"""Bounded time travel: catch-up takes the current boundary first, then the missing ones newest
first, at most BALANCE_CATCH_UP_MAX_BOUNDARIES per run; backfill clamps its range (to now, the
first transaction, retention) before listing anything, and says so."""

import io
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.periods import boundaries_between, count_boundaries, floor_boundary
from snapshots.services.bounds import plan_backfill
from snapshots.services.snapshots import backfill_snapshots, run_snapshots, take_snapshot
from tests.conftest import utc

NOW = utc(2026, 3, 10, 12, 30)


def completed(period):
    return sorted(SnapshotRun.objects.filter(period=period, status="completed").values_list("as_of", flat=True))


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("hourly", utc(2026, 1, 1), utc(2026, 3, 1, 5)),
        ("daily", utc(2025, 12, 30), utc(2026, 3, 1)),
        ("weekly", utc(2025, 12, 28), utc(2026, 3, 1)),
        ("monthly", utc(2024, 11, 1), utc(2026, 3, 1)),
        ("monthly", utc(2026, 3, 1), utc(2026, 3, 1)),
    ],
)
def test_boundaries_are_counted_as_listing_them_would(period, first, last):
    assert count_boundaries(period, first, last) == len(list(boundaries_between(period, first, last)))
    assert count_boundaries(period, last, first) == (1 if first == last else 0)


def test_catch_up_takes_the_current_boundary_first_then_the_missing_newest_first(make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    take_snapshot("daily", utc(2026, 3, 1), "scheduled")
    result = run_snapshots("daily", at=utc(2026, 3, 5, 0, 15))
    assert [b.as_of.day for b in result.boundaries] == [5, 4, 3, 2]
    assert result.own.as_of == utc(2026, 3, 5) and len(result.caught_up) == 3


def test_catch_up_takes_at_most_the_configured_number_per_run_and_the_next_run_goes_on(settings, make_tx):
    settings.BALANCE_CATCH_UP_MAX_BOUNDARIES = 2
    make_tx("buy", "1", at=utc(2026, 1, 1))
    take_snapshot("daily", utc(2026, 3, 1), "scheduled")
    first = run_snapshots("daily", at=utc(2026, 3, 7, 0, 15))
    assert [b.as_of.day for b in first.boundaries] == [7, 6, 5]
    second = run_snapshots("daily", at=utc(2026, 3, 7, 0, 20))
    assert [b.as_of.day for b in second.boundaries] == [7, 4, 3]
    third = run_snapshots("daily", at=utc(2026, 3, 7, 0, 25))
    assert [b.as_of.day for b in third.boundaries] == [7, 2]
    assert [d.day for d in completed("daily")] == [1, 2, 3, 4, 5, 6, 7]


def test_a_decade_long_gap_costs_what_the_run_takes_not_what_the_gap_holds(settings, make_tx):
    settings.BALANCE_HOURLY_RETENTION_DAYS = 0  # kept forever: the whole gap is inside retention
    settings.BALANCE_CATCH_UP_MAX_BOUNDARIES = 3
    make_tx("buy", "1", at=utc(2016, 1, 1))
    take_snapshot("hourly", utc(2016, 1, 2), "scheduled")
    started = time.process_time()  # CPU of this process (walking a decade of hours would be seconds of it)
    result = run_snapshots("hourly", at=utc(2026, 3, 1, 0, 5))
    assert time.process_time() - started < 2
    assert [b.as_of for b in result.boundaries] == [
        utc(2026, 3, 1, 0),
        utc(2026, 2, 28, 23),
        utc(2026, 2, 28, 22),
        utc(2026, 2, 28, 21),
    ]


def test_backfill_is_clamped_to_the_first_transaction_and_says_so(make_tx, make_wallet, wallet):
    other = make_wallet()
    make_tx("buy", "1", at=utc(2026, 3, 4, 12))
    make_tx("buy", "1", at=utc(2026, 3, 2, 12), on_wallet=other)
    plan = plan_backfill("daily", utc(1, 1, 1), None, NOW, wallet_ids=[wallet.pk])
    assert (plan.first, plan.last, plan.count) == (utc(2026, 3, 5), utc(2026, 3, 10), 6)
    assert plan.notes == [
        f"since 0001-01-01T00:00Z is before the first confirmed transaction of wallet {wallet.pk} "
        "(2026-03-04T12:00Z): clamped to it"
    ]
    plan = plan_backfill("daily", utc(1, 1, 1), None, NOW)  # all wallets: the first transaction of any
    assert plan.first == utc(2026, 3, 3) and "of any wallet" in plan.notes[0]


def test_backfill_is_clamped_to_retention_and_to_now(settings, make_tx):
    settings.BALANCE_HOURLY_RETENTION_DAYS = 2
    make_tx("buy", "1", at=utc(2026, 1, 1))
    plan = plan_backfill("hourly", utc(2026, 1, 1), utc(2099, 1, 1), NOW)
    assert (plan.first, plan.last, plan.count) == (utc(2026, 3, 8, 13), utc(2026, 3, 10, 12), 48)
    assert plan.notes == [
        "until 2099-01-01T00:00Z is in the future: clamped to now",
        "since 2026-01-01T00:00Z is older than hourly retention (2 days, BALANCE_HOURLY_RETENTION_DAYS): "
        "clamped to 2026-03-08T12:30Z",
    ]


def test_a_backfill_without_transactions_plans_nothing(make_wallet, db):
    wallet = make_wallet()
    plan = plan_backfill("hourly", utc(2026, 1, 1), None, NOW, wallet_ids=[wallet.pk])
    assert plan.count == 0 and list(plan.boundaries()) == []
    assert plan.notes == [f"no confirmed transaction of wallet {wallet.pk}: nothing to backfill"]


def test_an_hourly_backfill_from_year_1_answers_in_under_a_second(settings, make_tx):
    settings.BALANCE_HOURLY_RETENTION_DAYS = 0  # kept forever: only the first transaction bounds it
    # 90 minutes ago, whatever the clock says: one or two boundaries to take, not more as the day
    # goes on (a fixed instant of yesterday made it 24 by the evening, over a second on a busy machine).
    first = timezone.now() - timedelta(minutes=90)
    make_tx("buy", "1", at=first)
    # This process's CPU time, not the wall clock: listing every hour since year 1 (17.7 million
    # boundaries) cost 22 s of it; planning arithmetically costs milliseconds, however busy the machine.
    started = time.process_time()
    result = backfill_snapshots("hourly", utc(1, 1, 1))
    assert time.process_time() - started < 1
    first_boundary = floor_boundary("hourly", first) + timedelta(hours=1)
    assert result.as_dict()["first_as_of"] == first_boundary.isoformat().replace("+00:00", "Z")
    assert result.notes and "first confirmed transaction" in result.notes[0]
    assert BalanceSnapshot.objects.filter(period="hourly").exists()


def test_the_command_says_what_it_clamped(settings, make_tx, wallet):
    settings.BALANCE_HOURLY_RETENTION_DAYS = 0
    make_tx("buy", "1", at=utc(2026, 11, 30, 22, 30))
    out, err = io.StringIO(), io.StringIO()
    call_command("backfill_snapshots", "--period", "hourly", "--since", "0001-01-01", stdout=out, stderr=err)
    assert "clamped" in out.getvalue()
    assert "first confirmed transaction of any wallet (2026-11-30T22:30Z)" in out.getvalue()


def test_the_backfill_job_says_what_it_clamped(make_tx, wallet):
    from snapshots import tasks

    make_tx("buy", "1", at=utc(2026, 11, 30, 22, 30))
    result = tasks.backfill_wallet_snapshots(wallet.pk, "hourly", "2009-01-03T00:00:00+00:00")
    assert result["status"] == "success" and result["first_as_of"] == "2026-11-30T23:00:00Z"
    assert any("first confirmed transaction of wallet" in note for note in result["notes"])


def test_a_scheduled_task_for_a_future_instant_is_refused_by_name_and_records_no_run(make_tx):
    from snapshots import tasks

    make_tx("buy", "1", at=utc(2026, 1, 1))
    result = tasks.create_hourly_snapshots(scheduled_at="2099-01-01T00:05:00+00:00")
    assert result["status"] == "error" and "at 2099-01-01T00:05:00Z is more than one day" in result["error"]
    assert not SnapshotRun.objects.exists()
