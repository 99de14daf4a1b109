"""Writing transactions: every write updates the wallet's balances in the same database transaction.

If the change would drive a running amount negative, RunningAmountNegative is raised and nothing is written.
"""

import copy

from django.db import transaction
from django.db.models import QuerySet

from bagtracker.balances import update_pair_balances
from bagtracker.errors import RunningAmountNegative
from bagtracker.models import Transaction
from bagtracker.signals import history_written


class _DryRun(Exception):
    pass


def save_transaction(tx: Transaction) -> Transaction:
    """Insert or update ``tx`` and rebuild the balance of its (wallet, token) (and the old one, if moved)."""
    adding = tx.pk is None
    try:
        with transaction.atomic():
            pairs = {(tx.wallet_id, tx.token_id)}
            if not adding:
                pairs.update(Transaction.objects.filter(pk=tx.pk).values_list("wallet_id", "token_id"))
            tx.save()
            update_pair_balances(pairs)
            history_written.send(sender=Transaction)
    except Exception as error:
        if adding:
            # Rolled back: the id the insert drew names no row. Leave ``tx`` as it came, unsaved.
            new_id, tx.pk, tx._state.adding = tx.pk, None, True
            if isinstance(error, RunningAmountNegative) and error.transaction_id == new_id:
                raise error.as_new_transaction() from None
        raise
    return tx


def delete_transactions(queryset: QuerySet[Transaction]) -> int:
    """Delete these transactions and rebuild the balances of the (wallet, token) pairs they belonged to."""
    with transaction.atomic():
        pairs = set(queryset.values_list("wallet_id", "token_id").distinct())
        deleted, _ = queryset.delete()
        update_pair_balances(pairs)
        history_written.send(sender=Transaction)
    return deleted


def check_save_transaction(tx: Transaction) -> None:
    """Dry run of save_transaction: raises RunningAmountNegative if it would be refused; writes nothing."""
    try:
        with transaction.atomic():
            save_transaction(copy.copy(tx))
            raise _DryRun
    except _DryRun:
        pass
