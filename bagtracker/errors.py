"""The domain's errors: what a caller (command, task, admin) translates at its edge.

Their messages are composed when shown (``__str__``), from what the raiser already knew: building
one never runs a query, so raising one under a lock costs nothing.
"""

from datetime import datetime

from bagtracker.models import Wallet


class WalletNotFound(Wallet.DoesNotExist):
    """No wallet has this id (or these ids). Each edge says it its own way: a command in one line
    (CommandError), a task as a result with status "error", the admin as a 404. A subclass of
    Wallet.DoesNotExist, so code that speaks the ORM's language catches it too."""

    def __init__(self, *wallet_ids):
        super().__init__(*wallet_ids)
        self.wallet_ids = wallet_ids
        self.wallet_id = wallet_ids[0] if wallet_ids else None

    def __str__(self):
        return f"wallet {', '.join(map(str, self.wallet_ids))} does not exist"


def check_wallet_exists(wallet_id):
    """Raise WalletNotFound unless a wallet has this id."""
    if not Wallet.objects.filter(pk=wallet_id).exists():
        raise WalletNotFound(wallet_id)


class RunningAmountNegative(Exception):
    """A write would drive a wallet's running amount of a token below zero; nothing was written.

    Raised by the balance updater (bagtracker.balances) with ``wallet_id``, ``token_id`` and
    ``transaction_id`` (the transaction at which the amount first goes negative) and
    ``as_new_transaction()``, which retells it about a transaction being added (its id never
    committed). The ledger (snapshots) raises its subclass, LedgerError.
    """

    wallet_id: int
    token_id: int | None
    transaction_id: int | None
    timestamp: datetime  # the instant of that transaction

    def as_new_transaction(self):
        return self
