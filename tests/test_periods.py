"""Period boundaries (UTC), switches and retention settings."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from snapshots.periods import (
    PERIODS,
    boundaries_between,
    floor_boundary,
    format_boundary,
    next_boundary,
    period_enabled,
    period_length,
    previous_boundary,
    retention_cutoff,
    retention_days,
)
from tests.conftest import utc

# Wednesday 2026-11-18 10:59:59.5 UTC
T = datetime(2026, 11, 18, 10, 59, 59, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    "period, boundary",
    [
        ("hourly", utc(2026, 11, 18, 10)),
        ("daily", utc(2026, 11, 18)),
        ("weekly", utc(2026, 11, 15)),  # the Sunday before
        ("monthly", utc(2026, 11, 1)),
    ],
)
def test_floor_is_the_latest_boundary_at_or_before_the_instant(period, boundary):
    assert floor_boundary(period, T) == boundary
    assert floor_boundary(period, boundary) == boundary  # a boundary is its own floor


def test_weekly_boundaries_are_sundays_at_midnight():
    for day in range(1, 30):
        b = floor_boundary("weekly", utc(2026, 11, day, 12))
        assert b.weekday() == 6 and (b.hour, b.minute) == (0, 0)
        assert utc(2026, 11, day, 12) - b < timedelta(days=7)


def test_boundaries_are_utc_whatever_the_offset_of_the_instant():
    tokyo = timezone(timedelta(hours=9))
    # 2026-12-01 08:30 in Tokyo is still November 30 in UTC.
    assert floor_boundary("daily", datetime(2026, 12, 1, 8, 30, tzinfo=tokyo)) == utc(2026, 11, 30)
    assert floor_boundary("monthly", datetime(2026, 12, 1, 8, 30, tzinfo=tokyo)) == utc(2026, 11, 1)


def test_naive_instants_are_refused():
    with pytest.raises(ValueError, match="time zone"):
        floor_boundary("daily", datetime(2026, 1, 1))  # noqa: DTZ001 -- the naive instant is the point


@pytest.mark.parametrize(
    "period, boundary, following",
    [
        ("hourly", utc(2026, 12, 31, 23), utc(2027, 1, 1, 0)),
        ("daily", utc(2028, 2, 28), utc(2028, 2, 29)),
        ("weekly", utc(2026, 12, 27), utc(2027, 1, 3)),
        ("monthly", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("monthly", utc(2027, 1, 1), utc(2027, 2, 1)),
    ],
)
def test_next_and_previous_boundaries(period, boundary, following):
    assert next_boundary(period, boundary) == following
    assert previous_boundary(period, following) == boundary


def test_boundaries_between_includes_both_ends_oldest_first():
    assert list(boundaries_between("daily", utc(2026, 1, 1), utc(2026, 1, 3))) == [
        utc(2026, 1, 1),
        utc(2026, 1, 2),
        utc(2026, 1, 3),
    ]
    assert list(boundaries_between("hourly", utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 2, 59))) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
    ]
    assert list(boundaries_between("monthly", utc(2026, 11, 2), utc(2027, 2, 1))) == [
        utc(2026, 12, 1),
        utc(2027, 1, 1),
        utc(2027, 2, 1),
    ]
    assert list(boundaries_between("weekly", utc(2026, 1, 5), utc(2026, 1, 10))) == []


def test_period_lengths():
    assert [period_length(p) for p in PERIODS] == [
        timedelta(hours=1),
        timedelta(days=1),
        timedelta(days=7),
        timedelta(days=31),
    ]


def test_switches(settings):
    assert all(period_enabled(p) for p in PERIODS)
    settings.BALANCE_HOURLY_SNAPSHOTS = False
    assert not period_enabled("hourly") and period_enabled("daily")
    settings.BALANCE_SNAPSHOT_ENABLED = False
    assert not any(period_enabled(p) for p in PERIODS)


def test_retention_settings(settings):
    settings.BALANCE_HOURLY_RETENTION_DAYS = 7
    settings.BALANCE_HISTORY_RETENTION_DAYS = 90
    settings.BALANCE_WEEKLY_RETENTION_DAYS = 365
    settings.BALANCE_MONTHLY_RETENTION_DAYS = 0
    assert [retention_days(p) for p in PERIODS] == [7, 90, 365, 0]
    assert retention_cutoff("hourly", utc(2026, 1, 8, 12)) == utc(2026, 1, 1, 12)
    assert retention_cutoff("monthly", utc(2026, 1, 8)) is None  # 0 = forever


def test_boundary_format():
    assert format_boundary(utc(2026, 11, 29)) == "2026-11-29T00:00Z"
