"""Argument parsing shared by the snapshot commands: bad input is one clear line (CommandError).

Instants follow bagtracker.instants: `--at` (a boundary to take) outside [2009-01-03, now] is
refused by name; `--since`/`--until` (a range, a filter) are clamped into [2009-01-03, now + 1 day].
"""

from datetime import date

from django.core.management.base import CommandError

from bagtracker import instants
from snapshots.periods import PERIODS

PERIOD_HELP = f"one of {', '.join(PERIODS)}"


def add_period_argument(parser):
    parser.add_argument("--period", required=True, choices=PERIODS, help=PERIOD_HELP)


def parse_instant(text, option):
    """ISO 8601 date (00:00 UTC) or date-time with a UTC offset.

    A date-time without an offset is refused rather than guessed: 10:30 in whose time zone decides
    which boundary is taken.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            return instants.from_date(date.fromisoformat(value))
        return instants.parse_iso(value)  # 0001-01-01T00:00+01:00: datetime.min, not an OverflowError
    except instants.NoOffset:
        raise CommandError(f"{option}: {text!r} has no UTC offset (write e.g. {value}Z or {value}+00:00)") from None
    except ValueError:
        raise CommandError(
            f"{option}: {text!r} is not an ISO 8601 date or time (e.g. 2026-11-29 or 2026-11-29T10:00Z)"
        ) from None


def parse_boundary_instant(text, option, now):
    """An instant whose boundary a command takes: refused by name before 2009-01-03 or after now."""
    instant = parse_instant(text, option)
    if instant > now:
        raise CommandError(f"{option} {text} is in the future")
    try:
        return instants.check_instant(instant, option, now, text=text)
    except instants.InstantOutOfRange as error:
        raise CommandError(str(error)) from None


def parse_range(options, now=None, future_since_refused=False):
    """--since/--until as UTC instants clamped into [2009-01-03, now + 1 day]; --since after
    --until is refused, and so is a --since in the future with ``future_since_refused`` (a backfill
    cannot take boundaries that have not happened)."""
    since = parse_instant(options["since"], "--since") if options.get("since") else None
    until = parse_instant(options["until"], "--until") if options.get("until") else None
    if since and until and since > until:
        raise CommandError(f"--since {options['since']} is after --until {options['until']}")
    if since and future_since_refused and since > now:
        raise CommandError(f"--since {options['since']} is in the future")
    return (instants.clamp(since, now) if since else None), (instants.clamp(until, now) if until else None)
