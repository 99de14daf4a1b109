"""History edits heal themselves (docs/snapshots.md).

A write to transactions or prices dated at or before the latest boundary taken leaves a *stale
mark* (snapshots.StaleMark), written by database triggers in the writer's own transaction
(migration snapshots 0006_stale_marks): a wallet from an instant on, or a token from one price to the next.
At commit the writer queues the job `refresh_stale_snapshots` (refresh_at_commit, connected to the
domain's `history_written` signal); every scheduled snapshot run and `manage.py
refresh_snapshots` run it too.

refresh_stale_snapshots re-takes exactly the retained rows the marks name, with the wallet-scoped
re-take of a boundary (snapshots.take_snapshot), oldest boundary first, each boundary its own
transaction. A mark is settled in the transaction that refreshed its rows: moved past the instant
just refreshed, or removed with its last boundary. So a refresh killed half-way leaves the marks
of what it had not done, and the next run completes it. A mark that a write touched after the
refresh read it (its generation moved) is left for the next run: the refresh may not have seen
that write.

The wallets a boundary covers are fixed when it is first taken: a refresh recomputes a wallet
that has rows at the boundary even if it was deactivated since, and adds a wallet without rows
there only while it is active and has a confirmed transaction before the boundary.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from snapshots.models import SnapshotSource, StaleMark
from snapshots.periods import PERIODS, format_boundary, retention_cutoff
from snapshots.services.boundary_results import BoundaryTotals
from snapshots.services.scope import WalletScope

logger = logging.getLogger(__name__)

JOB = "refresh_stale_snapshots"

# One refresh at a time (session-level: held across the boundaries' transactions, released with
# the connection if the process dies). A second one waits, then finds what is left.
REFRESH_LOCK_SQL = "SELECT pg_advisory_lock(%s, 1)"
REFRESH_UNLOCK_SQL = "SELECT pg_advisory_unlock(%s, 1)"
LOCK_NAMESPACE = 0x4845414C  # "HEAL"

# The work the marks name: per retained boundary (period, as_of), the wallets to re-take, those
# of them the boundary covers (rows or a wallet summary there), and the marks served. A wallet
# mark names every boundary at or after its since that covers the wallet or has a completed run, or
# one being written in shards (the wallet active with a confirmed transaction before it: its shard
# may be done already); a token mark names the wallets with
# rows of the token at the boundaries from its since until its until.
PLAN_SQL = """
WITH marks AS MATERIALIZED (
    SELECT id, wallet_id, token_id, since, until FROM snapshots_stalemark WHERE id = ANY(%(marks)s)
), cutoffs AS (
    SELECT * FROM unnest(%(periods)s::text[], %(cutoffs)s::timestamptz[]) c(period, cutoff)
), work AS (
    SELECT m.id AS mark_id, s.period, s.as_of, s.wallet_id, true AS covered
    FROM marks m JOIN snapshots_balancesnapshot s ON s.wallet_id = m.wallet_id AND s.as_of >= m.since
    UNION ALL
    SELECT m.id, s.period, s.as_of, s.wallet_id, true  -- its summary there: covered
    FROM marks m JOIN snapshots_walletsnapshot s ON s.wallet_id = m.wallet_id AND s.as_of >= m.since
    UNION ALL
    SELECT m.id, r.period, r.as_of, m.wallet_id, false
    FROM marks m
    JOIN bagtracker_wallet w ON w.id = m.wallet_id AND w.is_active
    JOIN snapshots_snapshotrun r ON r.status IN ('completed', 'running') AND r.as_of >= m.since
    WHERE EXISTS (SELECT 1 FROM bagtracker_transaction t
                  WHERE t.wallet_id = m.wallet_id AND t.status = 'confirmed' AND t.timestamp < r.as_of)
    UNION ALL
    SELECT m.id, s.period, s.as_of, s.wallet_id, true
    FROM marks m JOIN snapshots_balancesnapshot s
      ON s.token_id = m.token_id AND s.as_of >= m.since AND (m.until IS NULL OR s.as_of < m.until)
)
SELECT w.period, w.as_of, array_agg(DISTINCT w.wallet_id),
       array_agg(DISTINCT w.wallet_id) FILTER (WHERE w.covered), array_agg(DISTINCT w.mark_id)
FROM work w JOIN cutoffs c ON c.period = w.period
WHERE c.cutoff IS NULL OR w.as_of >= c.cutoff
GROUP BY w.as_of, w.period
ORDER BY w.as_of, w.period
"""

# Settling, in the transaction of a refreshed boundary: each mark only if no write touched it
# since the refresh read it (same generation).
ADVANCE_MARKS_SQL = """
UPDATE snapshots_stalemark m SET since = %(since)s
FROM unnest(%(ids)s::bigint[], %(generations)s::bigint[]) x(id, generation)
WHERE m.id = x.id AND m.generation = x.generation AND m.since < %(since)s
"""
REMOVE_MARKS_SQL = """
DELETE FROM snapshots_stalemark m
USING unnest(%(ids)s::bigint[], %(generations)s::bigint[]) x(id, generation)
WHERE m.id = x.id AND m.generation = x.generation
"""


@dataclass
class RefreshResult(BoundaryTotals):
    marks: int = 0
    settled: int = 0
    boundaries: list = field(default_factory=list)
    duration_seconds: float = 0.0

    def as_dict(self):
        data = {
            "status": str(self.status),
            "marks": self.marks,
            "settled": self.settled,
            "boundaries": len(self.boundaries),
            "rows": self.rows,
            "written": self.written,
            "removed": self.removed,
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.failures:
            data["failed_boundaries"] = [
                {"period": b.period, "as_of": format_boundary(b.as_of), "error": b.error} for b in self.failures
            ]
        return data


@dataclass
class _Mark:
    id: int
    generation: int
    last: object = None  # the last boundary instant planned for it
    failed: bool = False


def refresh_stale_snapshots(now=None, progress=None):
    """Re-take the retained snapshot rows that the stale marks name; settle the marks."""
    from snapshots.services.snapshots import SnapshotError, take_snapshot  # (it calls this module)

    started = time.monotonic()
    now = now or timezone.now()
    result = RefreshResult()
    with connection.cursor() as cursor:
        cursor.execute(REFRESH_LOCK_SQL, [LOCK_NAMESPACE])
    try:
        marks = {m.id: _Mark(m.id, m.generation) for m in StaleMark.objects.only("id", "generation")}
        result.marks = len(marks)
        if not marks:
            return result
        plan = _plan(list(marks), now)
        served_at = defaultdict(set)  # boundary instant -> the marks served by its periods
        for _, as_of, _, _, mark_ids in plan:  # oldest first: the last instant seen is a mark's last
            served_at[as_of].update(mark_ids)
            for mark_id in mark_ids:
                marks[mark_id].last = as_of
        # Marks that name no retained row: nothing to refresh.
        result.settled += _settle(REMOVE_MARKS_SQL, [m for m in marks.values() if m.last is None])

        for index, (period, as_of, wallets, covered, mark_ids) in enumerate(plan):
            last_of_instant = index + 1 == len(plan) or plan[index + 1][1] != as_of
            served = [marks[i] for i in mark_ids]

            def settle(cursor, as_of=as_of, last_of_instant=last_of_instant):
                # Once every period at this instant is refreshed, in the last one's transaction.
                if last_of_instant:
                    ready = [marks[i] for i in served_at[as_of] if not marks[i].failed]
                    result.settled += _settle_after(cursor, ready, as_of)

            try:
                scope = WalletScope(wallets=wallets, covered=covered or ())
                boundary = take_snapshot(period, as_of, SnapshotSource.MANUAL, scope, then=settle)
            except SnapshotError as error:
                boundary = error.result
                for mark in served:
                    mark.failed = True
            result.boundaries.append(boundary)
            if progress:
                progress(index + 1, len(plan))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(REFRESH_UNLOCK_SQL, [LOCK_NAMESPACE])
        result.duration_seconds = time.monotonic() - started
    return result


def _plan(mark_ids, now):
    cutoffs = [retention_cutoff(period, now) for period in PERIODS]
    with connection.cursor() as cursor:
        cursor.execute(PLAN_SQL, {"marks": mark_ids, "periods": list(PERIODS), "cutoffs": cutoffs})
        return cursor.fetchall()


def _settle(sql, marks, cursor=None, since=None):
    if not marks:
        return 0
    params = {"ids": [m.id for m in marks], "generations": [m.generation for m in marks], "since": since}
    if cursor is not None:
        cursor.execute(sql, params)
        return cursor.rowcount
    with transaction.atomic(), connection.cursor() as own:
        own.execute(sql, params)
        return own.rowcount


def _settle_after(cursor, marks, as_of):
    """Every boundary of these marks up to ``as_of`` is refreshed: remove the marks that end
    here, move the others just past it. Returns how many were removed."""
    done = [m for m in marks if m.last == as_of]
    _settle(ADVANCE_MARKS_SQL, [m for m in marks if m.last != as_of], cursor, since=as_of + timedelta(microseconds=1))
    return _settle(REMOVE_MARKS_SQL, done, cursor)


def _queue_refresh():
    from snapshots.services import jobs

    if not StaleMark.objects.exists():
        return
    try:
        jobs.queue_job(JOB)
    except jobs.QueueError as error:  # the marks stay: the next scheduled snapshot run refreshes them
        logger.warning("%s; the next scheduled snapshot run refreshes the stale snapshots", error)


def refresh_at_commit(sender=None, **kwargs):
    """Queue refresh_stale_snapshots when the current transaction commits (once per transaction)."""
    if any(entry[1] is _queue_refresh for entry in connection.run_on_commit):
        return
    transaction.on_commit(_queue_refresh)
