from command_line import BaseCommand, Progress
from snapshots.periods import format_boundary, retention_setting
from snapshots.services.retention import prune_snapshots


class Command(BaseCommand):
    help = "Delete snapshots older than their period's retention, in bounded batches (0 days = kept forever)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")

    def handle(self, *args, **options):
        dry_run = options["dry_run"]
        progress = Progress("Deleting expired snapshots", stream=self.stderr._out, verbosity=options["verbosity"])
        try:
            result = prune_snapshots(dry_run=dry_run, progress=progress if progress.enabled else None)
        finally:
            progress.close()
        if options["verbosity"] == 0:
            return
        verb = "would delete" if dry_run else "deleted"
        for name, outcome in result.periods.items():
            if outcome.cutoff is None:
                self.stdout.write(f"{name}: kept forever ({retention_setting(name)}=0)")
            else:
                self.stdout.write(
                    f"{name}: {verb} {outcome.rows:,} rows and {outcome.runs:,} runs "
                    f"before {format_boundary(outcome.cutoff)}"
                )
        summary = "Dry run: would delete" if dry_run else "Deleted"
        self.stdout.write(f"{summary} {result.rows:,} expired snapshot rows in {result.duration_seconds:.2f} s")
