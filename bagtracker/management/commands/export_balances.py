import os
import sys

from django.core.management.base import CommandError

from bagtracker.management.base import Command as BaseCommand
from bagtracker.services.exports import FORMATS, UnknownWallet, export_balances


class Command(BaseCommand):
    reads_replica = True
    help = (
        "Write balances to stdout as CSV or JSON: wallet (address), chain, token (symbol), amount, total_in, "
        "total_out, avg_buy_price_usd, avg_sell_price_usd, realized_pnl_usd. Decimals are exact (strings in JSON)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--wallet", type=int, metavar="ID", help="only this wallet (database id, as in the admin)")
        parser.add_argument("--format", choices=FORMATS, default="csv")

    def handle(self, *args, **options):
        try:
            chunks = export_balances(options["wallet"], options["format"])
        except UnknownWallet as error:
            raise CommandError(str(error)) from None
        try:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            self.stdout.flush()
        except BrokenPipeError:  # `export_balances | head`: the reader has all it wants
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
