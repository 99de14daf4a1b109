"""Two writers on one wallet at once, on real connections: serialised, never both accepted, never
deadlocked. Each writer does what the write path does (save_transaction, the importer): write its
rows, then rebuild the wallet's balances, in one database transaction."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from bagtracker.models import Chain, Token, Transaction, Wallet
from bagtracker.services.transactions import save_transaction
from snapshots.models import Balance
from snapshots.services.ledger import LedgerError, apply_to_wallets, recalculate_all_wallets
from tests.conftest import utc

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def holding():
    chain = Chain.objects.create(slug="ethereum", name="Ethereum")
    wallet = Wallet.objects.create(chain=chain, address="0xconcurrent")
    token = Token.objects.create(chain=chain, symbol="ETH")
    save_transaction(Transaction(wallet=wallet, token=token, kind="buy", amount=Decimal(1), timestamp=utc(2026, 1, 1)))
    return wallet, token


def run_together(*writers):
    """Run each writer in its own thread and connection; all have written their rows before any
    of them rebuilds balances (the widest overlap two requests can have)."""
    both_written = threading.Barrier(len(writers), timeout=10)
    outcomes = [None] * len(writers)

    def run(i, write_rows):
        try:
            with transaction.atomic():
                write_rows()
                both_written.wait()
                apply_to_wallets(write_rows.wallets)
            outcomes[i] = "committed"
        except LedgerError:
            outcomes[i] = "refused"
        except Exception as error:  # a deadlock, a timeout: reported, not hidden
            outcomes[i] = f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def sell(wallet, token, amount, at):
    def write_rows():
        Transaction.objects.create(wallet=wallet, token=token, kind="sell", amount=Decimal(amount), timestamp=at)

    write_rows.wallets = [wallet.id]
    return write_rows


def test_two_sells_of_the_whole_holding_at_once_one_is_refused(holding):
    wallet, token = holding
    outcomes = run_together(sell(wallet, token, "1", utc(2026, 1, 2)), sell(wallet, token, "1", utc(2026, 1, 3)))
    assert sorted(outcomes) == ["committed", "refused"]
    assert Transaction.objects.filter(kind="sell").count() == 1
    assert Balance.objects.get(wallet=wallet, token=token).amount == 0


def test_two_compatible_writers_both_commit_and_both_count(holding):
    wallet, token = holding
    outcomes = run_together(sell(wallet, token, "0.25", utc(2026, 1, 2)), sell(wallet, token, "0.5", utc(2026, 1, 3)))
    assert outcomes == ["committed", "committed"]
    b = Balance.objects.get(wallet=wallet, token=token)
    assert (b.amount, b.total_out) == (Decimal("0.25"), Decimal("0.75"))


def test_writers_that_check_foreign_keys_at_once_do_not_deadlock(holding):
    # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, but a writer may check them at
    # once (SET CONSTRAINTS, raw SQL, another client): its insert then holds a KEY SHARE lock
    # on the wallet row, which a FOR UPDATE lock of the other writer would wait on, each for
    # the other.
    wallet, token = holding

    def immediately(write_rows):
        def write():
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            write_rows()

        write.wallets = write_rows.wallets
        return write

    outcomes = run_together(
        immediately(sell(wallet, token, "1", utc(2026, 1, 2))), immediately(sell(wallet, token, "1", utc(2026, 1, 3)))
    )
    assert sorted(outcomes) == ["committed", "refused"]
    assert Balance.objects.get(wallet=wallet, token=token).amount == 0


def test_a_writer_and_a_full_recalculation_at_once(holding):
    wallet, token = holding
    write = sell(wallet, token, "0.5", utc(2026, 1, 2))
    written = threading.Event()
    result = {}

    def recalculate():
        written.wait(timeout=10)
        try:
            result["status"] = recalculate_all_wallets().status
        finally:
            connection.close()

    def write_then_let_recalculation_in():
        write()
        written.set()

    write_then_let_recalculation_in.wallets = write.wallets
    other = threading.Thread(target=recalculate)
    other.start()
    [outcome] = run_together(write_then_let_recalculation_in)
    other.join(timeout=30)
    # Whichever locks the wallet first, the other sees its committed work.
    assert outcome == "committed" and result == {"status": "success"}
    assert Balance.objects.get(wallet=wallet, token=token).amount == Decimal("0.5")
