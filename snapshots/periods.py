"""Snapshot periods, their UTC boundaries, switches and retention (docs/snapshots.md).

Boundaries: hourly = top of the hour; daily = 00:00; weekly = Sunday 00:00; monthly = the 1st, 00:00.
Every function takes and returns timezone-aware datetimes in UTC.
"""

from datetime import UTC, timedelta

from django.conf import settings

PERIODS = ("hourly", "daily", "weekly", "monthly")

_LENGTH = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    # Staleness checks want an upper bound: the longest month.
    "monthly": timedelta(days=31),
}

_RETENTION_SETTING = {
    "hourly": "BALANCE_HOURLY_RETENTION_DAYS",
    "daily": "BALANCE_HISTORY_RETENTION_DAYS",
    "weekly": "BALANCE_WEEKLY_RETENTION_DAYS",
    "monthly": "BALANCE_MONTHLY_RETENTION_DAYS",
}


def _check(period):
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r} (expected one of {', '.join(PERIODS)})")


def as_utc(instant):
    if instant.tzinfo is None:
        raise ValueError(f"{instant!r} has no time zone; pass an aware datetime")
    return instant.astimezone(UTC)


def floor_boundary(period, instant):
    """The latest boundary of ``period`` at or before ``instant``."""
    _check(period)
    t = as_utc(instant)
    hour = t.replace(minute=0, second=0, microsecond=0)
    if period == "hourly":
        return hour
    day = hour.replace(hour=0)
    if period == "daily":
        return day
    if period == "weekly":
        # Monday is weekday 0, so Sunday is (weekday + 1) % 7 == 0.
        return day - timedelta(days=(day.weekday() + 1) % 7)
    return day.replace(day=1)


def next_boundary(period, boundary):
    """The first boundary strictly after ``boundary`` (which need not itself be a boundary)."""
    start = floor_boundary(period, boundary)
    if period == "monthly":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + _LENGTH[period]


def previous_boundary(period, boundary):
    """The last boundary strictly before ``boundary``."""
    return floor_boundary(period, as_utc(boundary) - timedelta(microseconds=1))


def is_boundary(period, instant):
    return floor_boundary(period, instant) == as_utc(instant)


def boundaries_between(period, start, end):
    """Every boundary b with start <= b <= end, oldest first."""
    b = floor_boundary(period, start)
    if b < as_utc(start):
        b = next_boundary(period, b)
    end = as_utc(end)
    while b <= end:
        yield b
        b = next_boundary(period, b)


def count_boundaries(period, first, last):
    """How many boundaries lie from boundary ``first`` to boundary ``last`` inclusive (0 if first >
    last), computed, not listed: a range of millions of hours costs nothing to count."""
    _check(period)
    first, last = as_utc(first), as_utc(last)
    if first > last:
        return 0
    if period == "monthly":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return (last - first) // _LENGTH[period] + 1


def period_length(period):
    """Approximate length of one period (monthly = 31 days), for "older than two periods" checks."""
    _check(period)
    return _LENGTH[period]


def period_enabled(period):
    """BALANCE_SNAPSHOT_ENABLED and BALANCE_<PERIOD>_SNAPSHOTS both true."""
    _check(period)
    return bool(settings.BALANCE_SNAPSHOT_ENABLED) and bool(getattr(settings, switch_setting(period)))


def switch_setting(period):
    return f"BALANCE_{period.upper()}_SNAPSHOTS"


def disabled_reason(period):
    """Which switch turns ``period`` off, for people ("" when enabled)."""
    if not settings.BALANCE_SNAPSHOT_ENABLED:
        return "BALANCE_SNAPSHOT_ENABLED is false"
    if not getattr(settings, switch_setting(period)):
        return f"{switch_setting(period)} is false"
    return ""


def retention_setting(period):
    _check(period)
    return _RETENTION_SETTING[period]


def retention_days(period):
    """Days a snapshot of ``period`` is kept; 0 = forever."""
    return int(getattr(settings, retention_setting(period)))


def retention_cutoff(period, now):
    """Rows with as_of < cutoff are expired (None when the period is kept forever).

    A row exactly at the cutoff is kept; catch-up and rebuilds use the same cutoff, so they never
    recreate a boundary that cleanup would delete.
    """
    days = retention_days(period)
    return as_utc(now) - timedelta(days=days) if days else None


def format_boundary(instant):
    """2026-11-29T00:00Z: how commands and results name a boundary."""
    t = as_utc(instant).replace(tzinfo=None)
    # isoformat, not strftime: strftime("%Y") writes the year 1 as "1", not "0001".
    return t.isoformat(timespec="seconds" if t.second or t.microsecond else "minutes") + "Z"
