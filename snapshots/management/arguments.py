"""Argument parsing shared by the snapshot commands: bad input is one clear line (CommandError)."""

from datetime import date, datetime, time, timezone

from django.core.management.base import CommandError

from snapshots.periods import PERIODS

PERIOD_HELP = f"one of {', '.join(PERIODS)}"


def add_period_argument(parser):
    parser.add_argument("--period", required=True, choices=PERIODS, help=PERIOD_HELP)


def parse_instant(text, option):
    """ISO 8601 date or date-time; a date means 00:00 UTC, a time without offset means UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=timezone.utc)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{option}: {text!r} is not an ISO 8601 date or time (e.g. 2026-11-29 or 2026-11-29T10:00Z)"
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    return instant.astimezone(timezone.utc)


def parse_range(options, now):
    """--since/--until as UTC instants; --since after --until or in the future is refused."""
    since = parse_instant(options["since"], "--since") if options.get("since") else None
    until = parse_instant(options["until"], "--until") if options.get("until") else None
    if since and until and since > until:
        raise CommandError(f"--since {options['since']} is after --until {options['until']}")
    if since and since > now:
        raise CommandError(f"--since {options['since']} is in the future")
    return since, until
