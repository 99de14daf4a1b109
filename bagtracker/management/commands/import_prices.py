from bagtracker.management.importing import run_import
from bagtracker.services.imports import import_prices
from command_line import BaseCommand


class Command(BaseCommand):
    help = (
        "Import price history from a CSV file (columns chain,token,as_of,price_usd), all or nothing: "
        "a bad row, an unknown chain or token, or a different price for a stored (token, as_of) aborts "
        "with its line number and nothing is written. Prices already stored are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE.csv")

    def handle(self, *args, **options):
        result = run_import(self, import_prices, options["file"], options["verbosity"])
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Imported {result.inserted:,} prices from {options['file']} "
                f"({result.rows:,} rows, {result.skipped:,} already stored or repeated) "
                f"in {result.duration_seconds:.2f} s"
            )
