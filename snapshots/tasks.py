"""django-q2 jobs: thin wrappers over the service layer (DESIGN.md, "Jobs and schedules").

Each is a plain function — call it in a test or a shell to run it in-process — returning the
result dict of its service. Queue one with `async_task("snapshots.tasks.<name>", …)`, the
management commands' `--async`, or the schedule admin's "Run now".
"""

from bagtracker.models import Wallet
from snapshots.services import ledger
from snapshots.services.jobs import report


def _snapshots_not_ready(create_snapshots):
    if create_snapshots:  # TODO(jobs): wire rebuild_wallet_snapshots once the snapshot service lands
        raise NotImplementedError("create_snapshots needs the snapshot service")


def recalculate_wallet_balances(wallet_id, create_snapshots=False):
    _snapshots_not_ready(create_snapshots)
    if not Wallet.objects.filter(pk=wallet_id).exists():
        return report("recalculate_wallet_balances", {"status": "error", "error": f"wallet {wallet_id} does not exist"})
    result = ledger.recalculate_wallet(wallet_id).as_dict()
    return report("recalculate_wallet_balances", result)


def recalculate_all_wallets(create_snapshots=False):
    _snapshots_not_ready(create_snapshots)
    result = ledger.recalculate_all_wallets().as_dict()
    return report("recalculate_all_wallets", result)
