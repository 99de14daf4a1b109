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
# ((wallet id, token id) pairs) -> (balances written, balances removed)
PairBalanceUpdater = Callable[[Iterable[tuple[int, int]]], tuple[int, int]]

_updater: BalanceUpdater | None = None
_pair_updater: PairBalanceUpdater | None = None


def register_balance_updater(updater: BalanceUpdater, pair_updater: PairBalanceUpdater | None = None) -> None:
    """Install the functions that rebuild wallets' balances, or only some (wallet, token) pairs'
    (called once, by the ledger's app)."""
    global _updater, _pair_updater
    _updater = updater
    _pair_updater = pair_updater


def update_balances(wallet_ids: Iterable[int]) -> tuple[int, int]:
    """Rebuild these wallets' balances inside the caller's transaction; RunningAmountNegative if refused."""
    if _updater is None:
        raise ImproperlyConfigured("no balance updater is registered: is 'snapshots' in INSTALLED_APPS?")
    return _updater(wallet_ids)


def update_pair_balances(pairs: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """Rebuild only these (wallet id, token id) balances: a write that knows what it touched (an
    import, one transaction's edit) spares the wallet's other tokens the walk."""
    pairs = list(pairs)
    if _pair_updater is None:
        return update_balances({wallet_id for wallet_id, _ in pairs})
    return _pair_updater(pairs)
