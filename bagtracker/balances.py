"""The hook through which the domain's writes keep balances current, in the same database transaction.

Balances are the ledger's (the `snapshots` app, built on this one), and the domain imports nothing
from it. So the ledger registers its updater here when Django starts (SnapshotsConfig.ready), and
every write of transactions (the admin, the importers, the demo data) calls
``update_balances(wallet_ids)`` inside its own ``transaction.atomic()``, before it commits: a
refusal (RunningAmountNegative) rolls the write back with it. See docs/architecture.md.
"""

from collections.abc import Callable, Iterable

from django.core.exceptions import ImproperlyConfigured

# (wallet ids) -> (balances written, balances removed)
BalanceUpdater = Callable[[Iterable[int]], tuple[int, int]]

_updater: BalanceUpdater | None = None


def register_balance_updater(updater: BalanceUpdater) -> None:
    """Install the function that rebuilds wallets' balances (called once, by the ledger's app)."""
    global _updater
    _updater = updater


def update_balances(wallet_ids: Iterable[int]) -> tuple[int, int]:
    """Rebuild these wallets' balances inside the caller's transaction; RunningAmountNegative if refused."""
    if _updater is None:
        raise ImproperlyConfigured("no balance updater is registered: is 'snapshots' in INSTALLED_APPS?")
    return _updater(wallet_ids)
