from django.core.management.base import CommandError

from bagtracker.errors import WalletNotFound, check_wallet_exists
from command_line import BaseCommand, Progress, integer
from snapshots.services import jobs, repair


class Command(BaseCommand):
    help = "Rebuild balances from transaction history, for one wallet or all (a repair tool)."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--wallet", type=integer, metavar="ID", help="database id of the wallet (as in the admin)")
        target.add_argument(
            "--all", action="store_true", help="every wallet; one failing wallet does not stop the others"
        )
        parser.add_argument("--snapshots", action="store_true", help="also rebuild the wallet's retained snapshots")
        parser.add_argument(
            "--async", dest="run_async", action="store_true", help="queue the job and print its task id"
        )

    def handle(self, *args, **options):
        try:
            if options["run_async"]:
                return self.queue(options)
            return self.recalculate(options)
        except WalletNotFound as error:
            raise CommandError(str(error)) from None

    def recalculate(self, options):
        wallet_id = None if options["all"] else options["wallet"]
        target = "all wallets" if wallet_id is None else f"wallet {wallet_id}"
        verbosity = options["verbosity"]
        recalculating = Progress("Recalculating", stream=self.stderr._out, verbosity=verbosity)
        rebuilding = Progress("Rebuilding snapshots", stream=self.stderr._out, verbosity=verbosity)

        def rebuild_progress(done, total):
            recalculating.close()  # its line ends before the next bar starts
            rebuilding(done, total)

        try:
            result = repair.recalculate(
                wallet_id,
                snapshots=options["snapshots"],
                progress=recalculating if wallet_id is None else None,
                snapshot_progress=rebuild_progress,
            )
        finally:
            recalculating.close()
            rebuilding.close()

        recalculated = result.ledger
        for failure in recalculated.failures:
            self.stderr.write(f"failed: {failure.error}")
        if verbosity > 0:
            self.stdout.write(
                f"{recalculated.status}: recalculated {target}: {recalculated.wallets:,} wallets, "
                f"{recalculated.balances_written:,} balances written, {recalculated.balances_removed:,} removed, "
                f"{len(recalculated.failures):,} failed in {recalculated.duration_seconds:.2f} s"
            )
        if result.snapshots is not None:
            self._report_rebuild(result, wallet_id, verbosity)
        if recalculated.failures:
            raise CommandError(
                f"recalculation of {target}: {len(recalculated.failures):,} wallet(s) failed ({recalculated.status})"
            )

    def _report_rebuild(self, result, wallet_id, verbosity):
        rebuilt, failed_wallets = result.snapshots, result.ledger.failures
        if wallet_id is None:
            target = "all wallets" + (f" but {len(failed_wallets):,} failed" if failed_wallets else "")
        else:
            target = f"wallet {wallet_id}"
        for failure in rebuilt.failures:
            self.stderr.write(f"failed: snapshot {failure.period} {failure.as_of:%Y-%m-%dT%H:%MZ}: {failure.error}")
        if verbosity > 0:
            self.stdout.write(
                f"{rebuilt.status}: rebuilt {len(rebuilt.boundaries):,} retained snapshot boundaries of {target}: "
                f"{rebuilt.written:,} rows written, {rebuilt.removed:,} removed in {rebuilt.duration_seconds:.2f} s"
            )
        if rebuilt.failures:
            raise CommandError(f"snapshot rebuild of {target}: {len(rebuilt.failures):,} boundaries failed")

    def queue(self, options):
        """--async: hand the job to the cluster and print its task id (the only stdout line)."""
        create_snapshots = options["snapshots"]
        try:
            if options["all"]:
                task_id = jobs.queue_job("recalculate_all_wallets", create_snapshots=create_snapshots)
            else:
                check_wallet_exists(options["wallet"])
                task_id = jobs.queue_job(
                    "recalculate_wallet_balances", options["wallet"], create_snapshots=create_snapshots
                )
        except jobs.QueueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(task_id)
