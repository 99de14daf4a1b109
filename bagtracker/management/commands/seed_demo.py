from datetime import UTC, date, datetime

from django.core.management.base import CommandError

from bagtracker.services import demo
from command_line import BaseCommand, Progress, integer


def end_date(text):
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Load a deterministic demo portfolio: several chains and tokens, price history, wallets with a mix of "
        "kinds and statuses, balances computed. The same --seed, sizes and --end give the same rows."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--wallets",
            type=integer,
            default=demo.DEFAULT_WALLETS,
            metavar="N",
            help=f"wallets to create (default {demo.DEFAULT_WALLETS})",
        )
        parser.add_argument(
            "--transactions",
            type=integer,
            default=demo.DEFAULT_TRANSACTIONS,
            metavar="M",
            help="transactions PER WALLET, on average: each wallet gets between M/2 and 3M/2 "
            f"(default {demo.DEFAULT_TRANSACTIONS})",
        )
        parser.add_argument(
            "--days",
            type=integer,
            default=demo.DEFAULT_DAYS,
            metavar="D",
            help=f"days of history ending at --end (default {demo.DEFAULT_DAYS})",
        )
        parser.add_argument(
            "--seed",
            type=integer,
            default=demo.DEFAULT_SEED,
            metavar="S",
            help=f"random seed (default {demo.DEFAULT_SEED}); another seed gives other wallets",
        )
        parser.add_argument(
            "--end", type=end_date, metavar="YYYY-MM-DD", help="last day of history, 00:00 UTC (default: today)"
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing if the database already has a wallet (used by `dev.py up`)",
        )

    def handle(self, *args, **options):
        progress = Progress("Seeding", stream=self.stderr._out, verbosity=options["verbosity"])
        try:
            result = demo.seed_demo(
                wallets=options["wallets"],
                transactions=options["transactions"],
                days=options["days"],
                seed=options["seed"],
                end=options["end"],
                if_empty=options["if_empty"],
                progress=progress,
            )
        except demo.DemoError as error:
            raise CommandError(str(error)) from None
        finally:
            progress.close()
        if options["verbosity"] == 0:
            return
        if result.skipped:
            self.stdout.write("The database already has wallets: seed_demo --if-empty did nothing.")
            return
        self.stdout.write(
            f"Seeded {result.wallets:,} wallets, {result.transactions:,} transactions, {result.prices:,} prices "
            f"and {result.balances_written:,} balances (seed {options['seed']}) in {result.duration_seconds:.2f} s"
        )
