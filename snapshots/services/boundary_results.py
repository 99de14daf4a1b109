"""What a job over many boundaries reports (a backfill, a rebuild, a refresh of stale marks): the
totals over its boundaries' SnapshotResults, each boundary taken in its own transaction."""

from typing import Any

from snapshots.job_registry import Outcome


class BoundaryTotals:
    """Totals over ``self.boundaries`` (SnapshotResults), shared by the results that hold many."""

    boundaries: list[Any]

    @property
    def failures(self) -> list[Any]:
        return [b for b in self.boundaries if b.status == Outcome.ERROR]

    @property
    def status(self) -> Outcome:
        if not self.failures:
            return Outcome.SUCCESS
        return Outcome.PARTIAL_SUCCESS if len(self.failures) < len(self.boundaries) else Outcome.ERROR

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.boundaries if b.status == Outcome.SUCCESS)

    @property
    def written(self) -> int:
        return sum(b.written for b in self.boundaries)

    @property
    def removed(self) -> int:
        return sum(b.removed for b in self.boundaries)
