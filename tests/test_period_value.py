"""A period is a value that carries its behaviour: boundaries, its switch, its retention."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from snapshots.periods import Period, floor_boundary


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_a_period_is_its_name():
    assert Period.of("daily") is Period.DAILY
    assert Period.DAILY == "daily" and f"{Period.WEEKLY}" == "weekly"


def test_an_unknown_period_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown period 'yearly' \(expected one of hourly, daily, weekly, monthly\)"):
        Period.of("yearly")


def test_boundaries_follow_from_the_period():
    at = utc(2026, 3, 4, 10, 30)  # a Wednesday
    assert Period.HOURLY.floor(at) == utc(2026, 3, 4, 10)
    assert Period.WEEKLY.floor(at) == utc(2026, 3, 1)  # Sunday 00:00
    assert Period.MONTHLY.next(utc(2026, 12, 15)) == utc(2027, 1, 1)
    assert Period.DAILY.previous(utc(2026, 3, 4)) == utc(2026, 3, 3)
    assert list(Period.DAILY.boundaries_between(utc(2026, 3, 1, 1), utc(2026, 3, 3))) == [
        utc(2026, 3, 2),
        utc(2026, 3, 3),
    ]
    assert Period.HOURLY.floor(at) == floor_boundary("hourly", at)  # the name-taking function agrees


@override_settings(BALANCE_SNAPSHOT_ENABLED=True, BALANCE_WEEKLY_SNAPSHOTS=False)
def test_its_switch_says_whether_it_runs_and_why_not():
    assert Period.DAILY.enabled and Period.DAILY.disabled_reason == ""
    assert not Period.WEEKLY.enabled
    assert Period.WEEKLY.disabled_reason == "BALANCE_WEEKLY_SNAPSHOTS is false"


@override_settings(BALANCE_HOURLY_RETENTION_DAYS=7, BALANCE_MONTHLY_RETENTION_DAYS=0)
def test_its_retention_gives_the_cutoff():
    now = utc(2026, 3, 10, 12)
    assert Period.HOURLY.retention_cutoff(now) == now - timedelta(days=7)
    assert Period.MONTHLY.retention_cutoff(now) is None  # kept forever
