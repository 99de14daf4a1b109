"""Snapshot periods, their UTC boundaries, switches and retention (docs/snapshots.md).

Boundaries: hourly = top of the hour; daily = 00:00; weekly = Sunday 00:00; monthly = the 1st, 00:00.
Every function takes and returns timezone-aware datetimes in UTC. A period is a value,
``Period``, that carries its behaviour; the functions below are the same for a period's name.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models


class Period(models.TextChoices):
    """A snapshot period: a value that carries its own behaviour (boundaries, switch, retention).

    A str (``Period.DAILY == "daily"``), so it is stored, compared and logged as its name; the
    model fields take it as their choices.
    """

    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"

    @classmethod
    def of(cls, name: "str | Period") -> "Period":
        """The period named ``name``; ValueError naming the choices for any other string."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown period {name!r} (expected one of {', '.join(cls.values)})") from None

    # --- boundaries (UTC) ---

    def floor(self, instant: datetime) -> datetime:
        """The latest boundary at or before ``instant``."""
        t = as_utc(instant)
        hour = t.replace(minute=0, second=0, microsecond=0)
        if self is Period.HOURLY:
            return hour
        day = hour.replace(hour=0)
        if self is Period.DAILY:
            return day
        if self is Period.WEEKLY:
            # Monday is weekday 0, so Sunday is (weekday + 1) % 7 == 0.
            return day - timedelta(days=(day.weekday() + 1) % 7)
        return day.replace(day=1)

    def next(self, instant: datetime) -> datetime:
        """The first boundary strictly after ``instant`` (which need not itself be a boundary)."""
        start = self.floor(instant)
        if self is Period.MONTHLY:
            return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        return start + self.length

    def previous(self, instant: datetime) -> datetime:
        """The last boundary strictly before ``instant``."""
        return self.floor(as_utc(instant) - timedelta(microseconds=1))

    def is_boundary(self, instant: datetime) -> bool:
        return self.floor(instant) == as_utc(instant)

    def count_between(self, first: datetime, last: datetime) -> int:
        """How many boundaries lie from boundary ``first`` to boundary ``last`` inclusive (0 if
        first > last), computed, not listed: a range of millions of hours costs nothing to count."""
        first, last = as_utc(first), as_utc(last)
        if first > last:
            return 0
        if self is Period.MONTHLY:
            return (last.year - first.year) * 12 + last.month - first.month + 1
        return (last - first) // _LENGTH[self] + 1

    def boundaries_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every boundary b with start <= b <= end, oldest first."""
        b = self.floor(start)
        if b < as_utc(start):
            b = self.next(b)
        end = as_utc(end)
        while b <= end:
            yield b
            b = self.next(b)

    @property
    def length(self) -> timedelta:
        """Approximate length of one period (monthly = 31 days), for "older than two periods" checks."""
        return _LENGTH[self]

    # --- switches ---

    @property
    def switch_setting(self) -> str:
        return f"BALANCE_{self.value.upper()}_SNAPSHOTS"

    @property
    def enabled(self) -> bool:
        """BALANCE_SNAPSHOT_ENABLED and BALANCE_<PERIOD>_SNAPSHOTS both true."""
        return bool(settings.BALANCE_SNAPSHOT_ENABLED) and bool(getattr(settings, self.switch_setting))

    @property
    def disabled_reason(self) -> str:
        """Which switch turns the period off, for people ("" when enabled)."""
        if not settings.BALANCE_SNAPSHOT_ENABLED:
            return "BALANCE_SNAPSHOT_ENABLED is false"
        if not getattr(settings, self.switch_setting):
            return f"{self.switch_setting} is false"
        return ""

    # --- retention ---

    @property
    def retention_setting(self) -> str:
        return _RETENTION_SETTING[self]

    @property
    def retention_days(self) -> int:
        """Days a snapshot of the period is kept; 0 = forever."""
        return int(getattr(settings, self.retention_setting))

    def retention_cutoff(self, now: datetime) -> datetime | None:
        """Rows with as_of < cutoff are expired (None when the period is kept forever).

        A row exactly at the cutoff is kept; catch-up and rebuilds use the same cutoff, so they
        never recreate a boundary that cleanup would delete.
        """
        days = self.retention_days
        return as_utc(now) - timedelta(days=days) if days else None


PERIODS = tuple(Period.values)

_LENGTH = {
    Period.HOURLY: timedelta(hours=1),
    Period.DAILY: timedelta(days=1),
    Period.WEEKLY: timedelta(days=7),
    # Staleness checks want an upper bound: the longest month.
    Period.MONTHLY: timedelta(days=31),
}

_RETENTION_SETTING = {
    Period.HOURLY: "BALANCE_HOURLY_RETENTION_DAYS",
    Period.DAILY: "BALANCE_HISTORY_RETENTION_DAYS",
    Period.WEEKLY: "BALANCE_WEEKLY_RETENTION_DAYS",
    Period.MONTHLY: "BALANCE_MONTHLY_RETENTION_DAYS",
}


def as_utc(instant):
    if instant.tzinfo is None:
        raise ValueError(f"{instant!r} has no time zone; pass an aware datetime")
    return instant.astimezone(UTC)


# The same behaviour as functions of a period's name, for callers that hold a string.


def floor_boundary(period, instant):
    """The latest boundary of ``period`` at or before ``instant``."""
    return Period.of(period).floor(instant)


def next_boundary(period, boundary):
    return Period.of(period).next(boundary)


def previous_boundary(period, boundary):
    return Period.of(period).previous(boundary)


def is_boundary(period, instant):
    return Period.of(period).is_boundary(instant)


def boundaries_between(period, start, end):
    return Period.of(period).boundaries_between(start, end)


def count_boundaries(period, first, last):
    return Period.of(period).count_between(first, last)


def period_length(period):
    return Period.of(period).length


def period_enabled(period):
    return Period.of(period).enabled


def switch_setting(period):
    return Period.of(period).switch_setting


def disabled_reason(period):
    return Period.of(period).disabled_reason


def retention_setting(period):
    return Period.of(period).retention_setting


def retention_days(period):
    return Period.of(period).retention_days


def retention_cutoff(period, now):
    return Period.of(period).retention_cutoff(now)


def format_boundary(instant):
    """2026-11-29T00:00Z: how commands and results name a boundary."""
    t = as_utc(instant).replace(tzinfo=None)
    # isoformat, not strftime: strftime("%Y") writes the year 1 as "1", not "0001".
    return t.isoformat(timespec="seconds" if t.second or t.microsecond else "minutes") + "Z"
