from bagtracker.management.importing import run_import
from bagtracker.services.imports import import_transactions
from command_line import BaseCommand


class Command(BaseCommand):
    help = (
        "Import transactions from a CSV file (columns wallet,chain,token,kind,status,amount,price_usd,"
        "timestamp,tx_hash), all or nothing: a bad row aborts with its line number and nothing is written. "
        "Missing chains, wallets and tokens (18 decimals) are created; rows already stored are skipped; "
        "balances are updated in the same transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE.csv")

    def handle(self, *args, **options):
        result = run_import(self, import_transactions, options["file"], options["verbosity"])
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Imported {result.inserted:,} transactions from {options['file']} "
                f"({result.rows:,} rows, {result.skipped:,} already stored or repeated); created "
                f"{result.chains_created:,} chains, {result.wallets_created:,} wallets, "
                f"{result.tokens_created:,} tokens; "
                f"balances of {result.wallets_updated:,} wallets updated in {result.duration_seconds:.2f} s"
            )
