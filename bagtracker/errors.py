"""The domain's errors: what a caller (command, task, admin) translates at its edge.

Their messages are composed when shown (``__str__``), from what the raiser already knew: building
one never runs a query, so raising one under a lock costs nothing.
"""

from datetime import datetime


class WalletNotFound(LookupError):
    """No wallet has this id. A command says it in one line, a task returns status "error", the admin 404s."""

    def __init__(self, wallet_id):
        super().__init__(wallet_id)
        self.wallet_id = wallet_id

    def __str__(self):
        return f"wallet {self.wallet_id} does not exist"


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
