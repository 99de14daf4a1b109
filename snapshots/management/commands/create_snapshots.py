from django.core.management.base import CommandError
from django.utils import timezone

from bagtracker.instants import InstantOutOfRange
from command_line import BaseCommand
from snapshots.job_registry import Outcome
from snapshots.management.arguments import add_period_argument, parse_boundary_instant
from snapshots.periods import disabled_reason, floor_boundary, format_boundary
from snapshots.services import jobs
from snapshots.services.snapshots import run_snapshots


class Command(BaseCommand):
    help = "Take (or re-take) the snapshot of one period boundary: the latest boundary at or before --at."

    def add_arguments(self, parser):
        add_period_argument(parser)
        parser.add_argument("--at", metavar="ISO8601", help="instant whose boundary to take (default: now)")
        parser.add_argument("--force", action="store_true", help="run even if the period is disabled in settings")
        parser.add_argument(
            "--async", dest="run_async", action="store_true", help="queue the job and print its task id"
        )

    def handle(self, *args, **options):
        period = options["period"]
        now = timezone.now()
        at = parse_boundary_instant(options["at"], "--at", now) if options["at"] else now
        if options["run_async"]:
            return self.queue(period, at if options["at"] else None, options["force"])

        try:
            result = run_snapshots(period, at, source="manual", force=options["force"])
        except InstantOutOfRange as error:  # --at 2009-01-03 --period weekly: its boundary is 2008-12-28
            raise CommandError(str(error)) from None
        label = f"{period} {format_boundary(floor_boundary(period, at))}"
        if result.status == Outcome.SKIPPED:
            self.stdout.write(
                f"{period} snapshots are disabled ({disabled_reason(period)}); nothing written. "
                "Use --force to take it anyway."
            )
            return
        own = result.own
        if own.status == Outcome.ERROR:
            raise CommandError(f"snapshot {label} failed: {own.error}")
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Snapshotted {own.rows:,} balances for {label} in {own.duration_seconds:.2f} s "
                f"({own.written:,} written, {own.removed:,} removed)"
            )

    def queue(self, period, at, force):
        """--async: hand the job to the cluster (a manual run, like without --async) and print its task id."""
        kwargs = {"force": force}
        if at is not None:
            kwargs["at"] = at.isoformat()
        try:
            task_id = jobs.queue_job(f"create_{period}_snapshots", **kwargs)
        except jobs.QueueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(task_id)
