from django.core.management.base import CommandError

from command_line import BaseCommand
from snapshots.services.wallet_merge import UnknownChain, merge_wallet_case_variants


class Command(BaseCommand):
    help = (
        "Merge wallets of a chain whose EVM addresses differ only in letter case into one wallet in EIP-55 "
        "form: transactions moved (a transaction stored in both kept once), balances rebuilt, retained "
        "snapshots re-taken. Reports what it cannot fix."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chain", metavar="SLUG", help="only this chain (default: every chain)")
        parser.add_argument("--dry-run", action="store_true", help="say what would be merged; write nothing")

    def handle(self, *args, **options):
        try:
            result = merge_wallet_case_variants(chain=options["chain"], dry_run=options["dry_run"])
        except UnknownChain as error:
            raise CommandError(str(error)) from None
        verb = "would merge" if result.dry_run else "merged"
        for group in result.groups:
            into = f"wallet {group.kept} ({group.address})"
            if group.error:
                self.stderr.write(f"not merged: {group.chain} {group.address}: {group.error}")
            elif group.merged:
                detail = (
                    ""
                    if result.dry_run
                    else (
                        f": {group.moved:,} transactions moved, {group.duplicates_dropped:,} stored twice kept once, "
                        f"balances rebuilt, {group.snapshot_boundaries:,} snapshot boundaries re-taken"
                    )
                )
                merged = ", ".join(f"#{pk}" for pk in group.merged)
                self.stdout.write(f"{group.chain}: {verb} wallet(s) {merged} into {into}{detail}")
            else:
                self.stdout.write(
                    f"{group.chain}: {'would rewrite' if result.dry_run else 'rewrote'} {into} in EIP-55 form"
                )
        for message in result.not_fixed:
            self.stderr.write(f"not fixed (needs a person): {message}")
        done = [g for g in result.groups if not g.error]
        if options["verbosity"] > 0:
            self.stdout.write(
                f"{len(done):,} address(es) {'to fix' if result.dry_run else 'fixed'}, {len(result.failed):,} not "
                f"merged in {result.duration_seconds:.2f} s" + (" (dry run: nothing written)" if result.dry_run else "")
            )
        if result.failed:
            raise CommandError(f"{len(result.failed):,} address group(s) could not be merged; see above")
