"""A system check (database tag): snapshot runs recorded for a boundary in the future.

A run never takes a future boundary now (bagtracker.instants.check_boundary), but older code let a
job given `at=2099-…` record one, after which staleness could never be reported again. Such rows
are listed, as a warning, by `manage.py migrate` and `manage.py check --database default`.
"""

from django.core import checks
from django.db import DatabaseError
from django.utils import timezone

SHOWN = 5


def future_snapshot_runs(app_configs=None, databases=None, **kwargs):
    if not databases or "default" not in databases:
        return []
    from snapshots.models import SnapshotRun

    try:
        runs = list(
            SnapshotRun.objects.filter(as_of__gt=timezone.now()).order_by("as_of").values_list("pk", "period", "as_of")
        )
    except DatabaseError:  # tables not created yet (a first migrate)
        return []
    if not runs:
        return []
    named = [f"#{pk} {period} {as_of:%Y-%m-%dT%H:%MZ}" for pk, period, as_of in runs[:SHOWN]]
    more = f" and {len(runs) - SHOWN:,} more" if len(runs) > SHOWN else ""
    return [
        checks.Warning(
            f"{len(runs):,} snapshot run(s) are recorded for a boundary in the future: {', '.join(named)}{more}",
            hint="Delete them (and their snapshot rows) in the admin; they hide the staleness of their period.",
            id="snapshots.W001",
        )
    ]
