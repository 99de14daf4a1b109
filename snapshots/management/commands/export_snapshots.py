import csv
import json

from bagtracker.management.base import Command as BaseCommand
from bagtracker.numbers import plain
from snapshots.management.arguments import add_period_argument, parse_range
from snapshots.models import BalanceSnapshot

COLUMNS = ["period", "as_of", "wallet", "chain", "token", "amount", "price_usd", "value_usd", "source"]
_FIELDS = [
    "period",
    "as_of",
    "wallet__address",
    "wallet__chain__slug",
    "token__symbol",
    "amount",
    "price_usd",
    "value_usd",
    "source",
]
# Rows are streamed from a server-side cursor in chunks: memory does not grow with the export.
CHUNK_SIZE = 5000


def _record(values):
    period, as_of, wallet, chain, token, amount, price, value, source = values
    return [
        period,
        as_of.isoformat().replace("+00:00", "Z"),
        wallet,
        chain,
        token,
        plain(amount),
        plain(price),
        plain(value),
        source,
    ]


class Command(BaseCommand):
    help = "Export the snapshots of a period (CSV or JSON, exact decimals), oldest boundary first."

    def add_arguments(self, parser):
        add_period_argument(parser)
        parser.add_argument("--since", metavar="DATE", help="first as_of (inclusive, ISO 8601)")
        parser.add_argument("--until", metavar="DATE", help="last as_of (inclusive, ISO 8601)")
        parser.add_argument("--format", choices=["csv", "json"], default="csv")

    def handle(self, *args, **options):
        since, until = parse_range(options)
        rows = BalanceSnapshot.objects.filter(period=options["period"])
        if since:
            rows = rows.filter(as_of__gte=since)
        if until:
            rows = rows.filter(as_of__lte=until)
        rows = rows.order_by("as_of", "wallet_id", "token_id").values_list(*_FIELDS).iterator(chunk_size=CHUNK_SIZE)
        out = self.stdout
        if options["format"] == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(COLUMNS)
            for values in rows:
                writer.writerow(_record(values))
            return
        out.write("[", ending="")
        for n, values in enumerate(rows):
            record = dict(zip(COLUMNS, _record(values), strict=True))
            for key in ("price_usd", "value_usd"):
                record[key] = record[key] or None  # unknown price: null, not ""
            out.write(("," if n else "") + "\n  " + json.dumps(record), ending="")
        out.write("\n]")
