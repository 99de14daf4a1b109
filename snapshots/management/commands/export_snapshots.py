from command_line import BaseCommand
from snapshots.management.arguments import add_period_argument, parse_range
from snapshots.services.exports import FORMATS, export_snapshots


class Command(BaseCommand):
    reads_replica = True
    help = "Export the snapshots of a period (CSV or JSON, exact decimals), oldest boundary first."

    def add_arguments(self, parser):
        add_period_argument(parser)
        parser.add_argument("--since", metavar="DATE", help="first as_of (inclusive, ISO 8601)")
        parser.add_argument("--until", metavar="DATE", help="last as_of (inclusive, ISO 8601)")
        parser.add_argument("--format", choices=FORMATS, default="csv")
        parser.add_argument(
            "--summaries",
            action="store_true",
            help="the wallet summaries instead of the rows: period, as_of, wallet, chain, value_usd, cost_basis_usd, "
            "realized_pnl_usd, unpriced_rows",
        )

    def handle(self, *args, **options):
        since, until = parse_range(options)
        self.write_chunks(export_snapshots(options["period"], since, until, options["format"], options["summaries"]))
