"""How far a snapshot job reaches in time (docs/snapshots.md: catch-up and backfill).

- Catch-up (missing_boundaries): after its own boundary, a scheduled run takes the boundaries its
  period missed, newest first, at most BALANCE_CATCH_UP_MAX_BOUNDARIES per run; the next run goes
  on where it stopped. Listed lazily, newest first: a long gap costs what the run takes, not what
  the gap holds.
- Backfill (plan_backfill): its range is clamped before a single boundary is listed — to now, to
  the first confirmed transaction (of the wallets asked for, else of any wallet), and to the
  period's retention — and each clamp is said in a note the command, the admin and the job show.
  So any range a user can type (an hourly backfill from 0001-01-01) is planned in constant time
  and memory; its boundaries are generated one at a time.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Min

from bagtracker.models import Transaction, TransactionStatus
from snapshots.models import SnapshotRun
from snapshots.periods import (
    as_utc,
    boundaries_between,
    count_boundaries,
    floor_boundary,
    format_boundary,
    next_boundary,
    previous_boundary,
    retention_cutoff,
    retention_days,
    retention_setting,
)


def catch_up_limit():
    return settings.BALANCE_CATCH_UP_MAX_BOUNDARIES


def missing_boundaries(period, as_of, limit=None):
    """Boundaries before ``as_of`` that a scheduled run at ``as_of`` catches up, newest first, at
    most ``limit`` (default BALANCE_CATCH_UP_MAX_BOUNDARIES).

    Those with no completed run between the period's earliest completed run and ``as_of``, inside
    the retention window (as_of − retention). None before the period's first completed run: a
    first deploy takes only its own boundary; older history comes from backfill_snapshots.
    """
    limit = catch_up_limit() if limit is None else limit
    runs = SnapshotRun.objects.filter(period=period, status=SnapshotRun.Status.COMPLETED)
    earliest = runs.aggregate(first=Min("as_of"))["first"]
    if earliest is None or earliest >= as_of or limit <= 0:
        return []
    cutoff = retention_cutoff(period, as_of)
    start = max(earliest, cutoff) if cutoff else earliest
    completed = set(runs.filter(as_of__gte=start, as_of__lt=as_of).values_list("as_of", flat=True))
    found: list[datetime] = []
    boundary = previous_boundary(period, as_of)
    while boundary >= start and len(found) < limit:
        if boundary not in completed:
            found.append(boundary)
        boundary = previous_boundary(period, boundary)
    return found


@dataclass
class BackfillPlan:
    """The boundaries a backfill takes: every boundary of ``period`` from ``since`` to ``until``
    once clamped (``notes`` say how); none when ``empty``."""

    period: str
    since: datetime
    until: datetime
    notes: list = field(default_factory=list)
    empty: bool = False

    @property
    def first(self):
        floor = floor_boundary(self.period, self.since)
        return floor if floor == self.since else next_boundary(self.period, floor)

    @property
    def last(self):
        return floor_boundary(self.period, self.until)

    @property
    def count(self):
        if self.empty or self.first > self.last:
            return 0
        return count_boundaries(self.period, self.first, self.last)

    def boundaries(self):
        """Oldest first, one at a time."""
        if not self.count:
            return iter(())
        return boundaries_between(self.period, self.first, self.last)

    def as_dict(self):
        data = {"boundaries": self.count, "notes": list(self.notes)}
        if self.count:
            data["first_as_of"] = format_boundary(self.first)
            data["last_as_of"] = format_boundary(self.last)
        return data


def first_transaction(wallet_ids=None):
    """The instant of the first confirmed transaction (of ``wallet_ids``, else of any wallet)."""
    txs = Transaction.objects.filter(status=TransactionStatus.CONFIRMED)
    if wallet_ids is not None:
        txs = txs.filter(wallet_id__in=wallet_ids)
    return txs.aggregate(first=Min("timestamp"))["first"]


def _whose(wallet_ids):
    if wallet_ids is None:
        return "of any wallet"
    return f"of wallet {', '.join(map(str, wallet_ids))}"


def plan_backfill(period, since, until, now, wallet_ids=None):
    """Clamp a backfill's range (see the module docstring) and say so; lists nothing."""
    since = as_utc(since)
    requested_until = as_utc(until) if until else None
    until = min(requested_until, now) if requested_until else now
    notes = []
    if requested_until and requested_until > now:
        notes.append(f"until {format_boundary(requested_until)} is in the future: clamped to now")
    first = first_transaction(wallet_ids)
    if first is None:
        notes.append(f"no confirmed transaction {_whose(wallet_ids)}: nothing to backfill")
        return BackfillPlan(period, since, until, notes, empty=True)
    if since < first:
        notes.append(
            f"since {format_boundary(since)} is before the first confirmed transaction {_whose(wallet_ids)} "
            f"({format_boundary(first)}): clamped to it"
        )
        since = first
    cutoff = retention_cutoff(period, now)
    if cutoff and since < cutoff:
        notes.append(
            f"since {format_boundary(since)} is older than {period} retention "
            f"({retention_days(period)} days, {retention_setting(period)}): clamped to {format_boundary(cutoff)}"
        )
        since = cutoff
    return BackfillPlan(period, since, until, notes)
