from django.core.management.base import CommandError

from command_line import BaseCommand, Progress
from snapshots.periods import format_boundary
from snapshots.services.healing import refresh_stale_snapshots


class Command(BaseCommand):
    help = "Refresh, now, the retained snapshot rows that history edits made stale (what the queued job does)."

    def handle(self, *args, **options):
        progress = Progress("Refreshing stale snapshots", stream=self.stderr._out, verbosity=options["verbosity"])
        try:
            result = refresh_stale_snapshots(progress=progress)
        finally:
            progress.close()
        for failure in result.failures:
            self.stderr.write(f"failed: {failure.period} {format_boundary(failure.as_of)}: {failure.error}")
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Refreshed {len(result.boundaries):,} boundaries for {result.marks:,} stale marks "
                f"({result.written:,} rows written, {result.removed:,} removed; {result.settled:,} marks cleared) "
                f"in {result.duration_seconds:.2f} s"
            )
        if result.failures:
            raise CommandError(f"{len(result.failures):,} boundaries failed; their marks stay for the next run")
