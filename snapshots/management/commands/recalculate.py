from django.core.management.base import CommandError

from bagtracker.models import Wallet
from command_line import BaseCommand, Progress, integer
from snapshots.services import jobs, ledger
from snapshots.services.snapshots import rebuild_all_snapshots, rebuild_wallet_snapshots


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
        if options["run_async"]:
            return self.queue(options)

        if options["all"]:
            progress = Progress("Recalculating", stream=self.stderr._out, verbosity=options["verbosity"])
            try:
                result = ledger.recalculate_all_wallets(progress=progress)
            finally:
                progress.close()
            target = "all wallets"
        else:
            wallet_id = options["wallet"]
            if not Wallet.objects.filter(pk=wallet_id).exists():
                raise CommandError(f"wallet {wallet_id} does not exist")
            result = ledger.recalculate_wallet(wallet_id)
            target = f"wallet {wallet_id}"

        for failure in result.failures:
            self.stderr.write(f"failed: {failure.error}")
        if options["verbosity"] > 0:
            self.stdout.write(
                f"{result.status}: recalculated {target}: {result.wallets:,} wallets, "
                f"{result.balances_written:,} balances written, {result.balances_removed:,} removed, "
                f"{len(result.failures):,} failed in {result.duration_seconds:.2f} s"
            )
        if options["snapshots"] and result.wallets:
            self._rebuild_snapshots(options, [f.wallet_id for f in result.failures])
        if result.failures:
            raise CommandError(
                f"recalculation of {target}: {len(result.failures):,} wallet(s) failed ({result.status})"
            )

    def queue(self, options):
        """--async: hand the job to the cluster and print its task id (the only stdout line)."""
        create_snapshots = options["snapshots"]
        try:
            if options["all"]:
                task_id = jobs.queue_job("recalculate_all_wallets", create_snapshots=create_snapshots)
            else:
                wallet_id = options["wallet"]
                if not Wallet.objects.filter(pk=wallet_id).exists():
                    raise CommandError(f"wallet {wallet_id} does not exist")
                task_id = jobs.queue_job("recalculate_wallet_balances", wallet_id, create_snapshots=create_snapshots)
        except jobs.QueueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(task_id)

    def _rebuild_snapshots(self, options, failed_wallets):
        """Re-take the retained snapshots from the recalculated history (failed wallets excluded)."""
        progress = Progress("Rebuilding snapshots", stream=self.stderr._out, verbosity=options["verbosity"])
        try:
            if options["all"]:
                rebuilt = rebuild_all_snapshots(excluding_wallets=failed_wallets, progress=progress)
                target = "all wallets" + (f" but {len(failed_wallets):,} failed" if failed_wallets else "")
            else:
                rebuilt = rebuild_wallet_snapshots(options["wallet"], progress=progress)
                target = f"wallet {options['wallet']}"
        finally:
            progress.close()
        for failure in rebuilt.failures:
            self.stderr.write(f"failed: snapshot {failure.period} {failure.as_of:%Y-%m-%dT%H:%MZ}: {failure.error}")
        if options["verbosity"] > 0:
            self.stdout.write(
                f"{rebuilt.status}: rebuilt {len(rebuilt.boundaries):,} retained snapshot boundaries of {target}: "
                f"{rebuilt.written:,} rows written, {rebuilt.removed:,} removed in {rebuilt.duration_seconds:.2f} s"
            )
        if rebuilt.failures:
            raise CommandError(f"snapshot rebuild of {target}: {len(rebuilt.failures):,} boundaries failed")
