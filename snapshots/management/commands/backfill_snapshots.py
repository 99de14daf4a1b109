from django.core.management.base import CommandError
from django.utils import timezone

from bagtracker.errors import WalletNotFound
from command_line import BaseCommand, Progress, integer
from snapshots.management.arguments import add_period_argument, parse_range
from snapshots.periods import format_boundary
from snapshots.services.snapshots import backfill_snapshots


class Command(BaseCommand):
    help = (
        "Take every boundary of a period in a date range (e.g. after importing a wallet's history); the range "
        "is clamped to now, the first confirmed transaction and retention, and the command says so."
    )

    def add_arguments(self, parser):
        add_period_argument(parser)
        parser.add_argument(
            "--since",
            required=True,
            metavar="DATE",
            help="first instant: an ISO 8601 date (00:00 UTC) or a time with offset (2026-11-29T10:00Z)",
        )
        parser.add_argument("--until", metavar="DATE", help="last instant (default: now)")
        parser.add_argument(
            "--wallet",
            type=integer,
            action="append",
            metavar="ID",
            help="only this wallet's rows (repeatable); other wallets' rows are untouched",
        )

    def handle(self, *args, **options):
        period = options["period"]
        now = timezone.now()
        since, until = parse_range(options, now, future_since_refused=True)
        wallet_ids = options["wallet"]
        progress = Progress(f"Backfilling {period}", stream=self.stderr._out, verbosity=options["verbosity"])
        try:
            result = backfill_snapshots(period, since, until, wallet_ids=wallet_ids, progress=progress)
        except WalletNotFound as error:  # checked by the service before anything is written
            raise CommandError(str(error)) from None
        finally:
            progress.close()
        for note in result.notes:  # how the range was clamped: said, not silently done
            self.stdout.write(f"Clamped: {note}")
        if not result.boundaries:
            self.stdout.write(f"No {period} boundary to take; nothing written.")
            return

        for failure in result.failures:
            self.stderr.write(f"failed: {period} {format_boundary(failure.as_of)}: {failure.error}")
        scope = f" for wallet {', '.join(map(str, result.wallet_ids))}" if result.wallet_ids else ""
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Backfilled {len(result.boundaries):,} {period} boundaries{scope} "
                f"({format_boundary(result.boundaries[0].as_of)} to {format_boundary(result.boundaries[-1].as_of)}): "
                f"{result.rows:,} balances, {result.written:,} written, {result.removed:,} removed "
                f"in {result.duration_seconds:.2f} s"
            )
        if result.failures:
            raise CommandError(f"backfill of {period}: {len(result.failures):,} boundaries failed ({result.status})")
