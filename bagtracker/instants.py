"""Which instants the project stores or takes as a boundary (docs/interfaces.md).

Every instant that is stored (a transaction's timestamp, a price's as_of) or taken as a snapshot
boundary lies between 2009-01-03 (the first block of any chain) and one day after now; outside,
it is refused naming the field (``check_instant``). Ranges and filters — ``--since``/``--until`` of
backfill and the exports, the admin's backfill form — are clamped into it instead (``clamp``).

``parse_iso`` is the one ISO 8601 reader with a UTC offset: '0001-01-01T00:00+01:00' and
'9999-12-31T23:00-05:00' are valid ISO but fall outside what a datetime can hold in UTC (Python
raises OverflowError); they come back as the smallest/largest datetime, which every check then
refuses or clamps like any other far-away instant.
"""

from datetime import UTC, date, datetime, time, timedelta

EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
FUTURE_MARGIN = timedelta(days=1)
_BEFORE_EVERYTHING = datetime.min.replace(tzinfo=UTC)
_AFTER_EVERYTHING = datetime.max.replace(tzinfo=UTC)


class InstantOutOfRange(ValueError):
    """An instant before 2009-01-03 or more than a day after now; the message names the field."""


def _now():
    from django.utils import timezone as dj_timezone  # this module is also read before settings load

    return dj_timezone.now()


def latest(now=None):
    """The last instant accepted: one day after ``now``."""
    return (now or _now()) + FUTURE_MARGIN


def to_utc(instant):
    """An aware datetime in UTC; one beyond what a datetime holds becomes datetime.min/max (UTC)."""
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        return _BEFORE_EVERYTHING if instant.year < 2000 else _AFTER_EVERYTHING


def from_date(day: date):
    """00:00 UTC of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


def parse_iso(text):
    """An ISO 8601 date-time with a UTC offset, in UTC (OverflowError-safe: see ``to_utc``).

    Raises ValueError (not ISO 8601) and NoOffset (no offset)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NoOffset(text)
    return to_utc(moment)


class NoOffset(ValueError):
    """A date-time without a UTC offset: 10:30 in whose time zone?"""


def describe(instant):
    if instant in (_BEFORE_EVERYTHING, _AFTER_EVERYTHING):
        return "year 1" if instant == _BEFORE_EVERYTHING else "year 9999"
    return instant.isoformat().replace("+00:00", "Z")


def check_instant(instant, name, now=None, text=None):
    """``instant`` (aware) in UTC if it lies in [2009-01-03, now + 1 day]; else InstantOutOfRange
    naming ``name`` (the field or option) and ``text`` (the value as given; default: the instant)."""
    instant = to_utc(instant)
    text = text or describe(instant)
    if instant < EARLIEST:
        raise InstantOutOfRange(f"{name} {text} is before 2009-01-03 (the first block of any chain)")
    if instant > latest(now):
        raise InstantOutOfRange(f"{name} {text} is more than one day in the future")
    return instant


def clamp(instant, now=None):
    """``instant`` moved into [2009-01-03, now + 1 day] (ranges and filters are clamped, not refused)."""
    return min(max(to_utc(instant), EARLIEST), latest(now))


def is_acceptable(instant, now=None):
    return EARLIEST <= to_utc(instant) <= latest(now)


def check_boundary(as_of, name="as_of", now=None):
    """A snapshot boundary to take: not before 2009-01-03 and not in the future (a run never takes a
    boundary that has not happened yet). InstantOutOfRange naming ``name`` otherwise."""
    as_of = to_utc(as_of)
    if as_of < EARLIEST:
        raise InstantOutOfRange(f"{name} {describe(as_of)} is before 2009-01-03 (the first block of any chain)")
    if as_of > (now or _now()):
        raise InstantOutOfRange(f"{name} {describe(as_of)} is in the future; a run never takes a future boundary")
    return as_of
