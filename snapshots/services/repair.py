"""Repairs: rebuild balances from transaction history, then, if asked, re-take the retained
snapshots from the repaired ledger — leaving out the wallets whose recalculation failed (their
balances are still the damaged ones). One function for `manage.py recalculate` and its `--async`
jobs (recalculate_wallet_balances, recalculate_all_wallets).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bagtracker.errors import check_wallet_exists
from snapshots.job_registry import Outcome
from snapshots.services import ledger
from snapshots.services.ledger import RecalculationResult
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import ManyBoundariesResult, rebuild_all_snapshots, rebuild_wallet_snapshots

ProgressCallback = Callable[[int, int], None]


@dataclass
class RepairResult:
    ledger: RecalculationResult
    snapshots: ManyBoundariesResult | None = None  # None: not asked for, or no wallet was repaired

    @property
    def status(self) -> Outcome:
        status = Outcome(self.ledger.status)
        # A failed boundary makes an otherwise successful repair a partial success.
        if self.snapshots is not None and self.snapshots.status != Outcome.SUCCESS and status == Outcome.SUCCESS:
            return Outcome.PARTIAL_SUCCESS
        return status

    def as_dict(self) -> dict[str, Any]:
        """The recalculation's dict, plus the snapshot rebuild's under "snapshots"."""
        data = self.ledger.as_dict()
        if self.snapshots is not None:
            data["snapshots"] = self.snapshots.as_dict()
        data["status"] = str(self.status)
        return data


def recalculate(
    wallet_id: int | None = None,
    *,
    snapshots: bool = False,
    progress: ProgressCallback | None = None,
    snapshot_progress: ProgressCallback | None = None,
) -> RepairResult:
    """Recalculate one wallet (``wallet_id``) or all (None), then rebuild their retained snapshots
    if ``snapshots``. WalletNotFound for an unknown wallet, before anything is written."""
    if wallet_id is not None:
        check_wallet_exists(wallet_id)
        result = RepairResult(ledger.recalculate_wallet(wallet_id))
    else:
        result = RepairResult(ledger.recalculate_all_wallets(progress=progress))
    if snapshots and result.ledger.wallets:
        if wallet_id is not None:
            result.snapshots = rebuild_wallet_snapshots(wallet_id, progress=snapshot_progress)
        else:
            failed = [failure.wallet_id for failure in result.ledger.failures]
            result.snapshots = rebuild_all_snapshots(WalletScope(excluding=failed), progress=snapshot_progress)
    return result
