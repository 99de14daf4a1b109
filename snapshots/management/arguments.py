"""Argument parsing shared by the snapshot commands: bad input is one clear line (CommandError)."""

from datetime import UTC, date, datetime, time

from django.core.management.base import CommandError

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
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{option}: {text!r} is not an ISO 8601 date or time (e.g. 2026-11-29 or 2026-11-29T10:00Z)"
        ) from None
    if instant.tzinfo is None:
        raise CommandError(f"{option}: {text!r} has no UTC offset (write e.g. {value}Z or {value}+00:00)")
    return instant.astimezone(UTC)


def parse_range(options, now=None):
    """--since/--until as UTC instants; --since after --until is refused, and so is a --since in
    the future when ``now`` is given (a backfill cannot take boundaries that have not happened)."""
    since = parse_instant(options["since"], "--since") if options.get("since") else None
    until = parse_instant(options["until"], "--until") if options.get("until") else None
    if since and until and since > until:
        raise CommandError(f"--since {options['since']} is after --until {options['until']}")
    if since and now and since > now:
        raise CommandError(f"--since {options['since']} is in the future")
    return since, until
