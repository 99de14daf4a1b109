from django.core.management.base import CommandError

from bagtracker.errors import WalletNotFound
from command_line import BaseCommand, integer
from snapshots.services.exports import FORMATS, export_balances


class Command(BaseCommand):
    reads_replica = True
    help = (
        "Write balances to stdout as CSV or JSON: wallet (address), chain, token (symbol), amount, total_in, "
        "total_out, avg_buy_price_usd, avg_sell_price_usd, realized_pnl_usd, cost_basis_usd, avg_cost_usd, "
        "cost_basis_complete, realized_pnl_complete, cost_basis_method. Decimals are exact (strings in JSON)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--wallet", type=integer, metavar="ID", help="only this wallet (database id, as in the admin)"
        )
        parser.add_argument("--format", choices=FORMATS, default="csv")

    def handle(self, *args, **options):
        try:
            chunks = export_balances(options["wallet"], options["format"])
        except WalletNotFound as error:
            raise CommandError(str(error)) from None
        self.write_chunks(chunks)
