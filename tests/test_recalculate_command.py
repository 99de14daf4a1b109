"""`manage.py recalculate (--wallet ID | --all)`: a repair tool with a one-line summary."""

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from bagtracker.models import Transaction
from snapshots.models import Balance
from snapshots.services import ledger
from tests.conftest import utc
from tests.jobs_support import process_env

ROOT = Path(__file__).resolve().parent.parent


class Terminal(io.StringIO):
    def isatty(self):
        return True


def recalculate(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("recalculate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def break_history(wallet, token):
    """A sell before any buy, written behind the app's back (as a bad restore or raw SQL would)."""
    return Transaction.objects.create(
        wallet=wallet, token=token, kind="sell", amount=1, timestamp=utc(2020, 1, 1), status="confirmed"
    )


def test_it_repairs_one_wallet_and_prints_a_summary(make_tx, wallet, token):
    make_tx("buy", "3", price="2")
    Balance.objects.update(amount=999)
    out, err = recalculate("--wallet", str(wallet.pk))
    assert re.fullmatch(
        rf"success: recalculated wallet {wallet.pk}: 1 wallets, 1 balances written, 0 removed, 0 failed in "
        r"\d+\.\d\d s\n",
        out,
    )
    assert err == ""
    assert Balance.objects.get().amount == 3


def test_it_refuses_an_unknown_wallet_with_one_line_and_a_failing_exit(db):
    # Once through a real process: the exit status and stderr a script sees.
    done = subprocess.run(
        [sys.executable, "manage.py", "recalculate", "--wallet", "987654321"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr == "CommandError: wallet 987654321 does not exist\n"
    assert done.stdout == ""


def test_an_unknown_wallet_writes_nothing(make_tx, wallet):
    make_tx("buy", "1")
    Balance.objects.update(amount=5)
    with pytest.raises(CommandError, match=r"^wallet 987654321 does not exist$"):
        recalculate("--wallet", "987654321")
    assert Balance.objects.get().amount == 5


def test_a_broken_wallet_fails_with_the_reason(make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    bad = break_history(wallet, token)
    Balance.objects.update(amount=42)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=rf"^recalculation of wallet {wallet.pk}: 1 wallet\(s\) failed \(error\)$"):
        call_command("recalculate", "--wallet", str(wallet.pk), stdout=out, stderr=err)
    # The reason is on stderr, naming wallet, token and transaction.
    assert err.getvalue() == (
        f"failed: wallet {wallet.pk} ({wallet.address} on ethereum), ETH: transaction {bad.pk} (sell of 1 at "
        "2020-01-01T00:00:00+00:00) would make the running amount negative (-1)\n"
    )
    assert out.getvalue().startswith(f"error: recalculated wallet {wallet.pk}: 0 wallets")
    assert Balance.objects.get().amount == 42  # untouched


def test_all_isolates_a_broken_wallet_and_reports_partial_success(make_tx, make_wallet, token):
    good, broken, empty = make_wallet(name="good"), make_wallet(name="broken"), make_wallet(name="empty")
    make_tx("buy", "2", on_wallet=good)
    make_tx("buy", "1", on_wallet=broken, at=utc(2026, 1, 1))
    bad = break_history(broken, token)
    Balance.objects.update(amount=42)
    # A stale balance on a wallet without transactions: recalculation removes it.
    Balance.objects.create(wallet=empty, token=token, amount=1, total_in=1, total_out=0, realized_pnl_usd=0)

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"^recalculation of all wallets: 1 wallet\(s\) failed \(partial_success\)$"):
        call_command("recalculate", "--all", stdout=out, stderr=err)

    # good, empty and the fixture's wallet recalculated; broken failed.
    assert out.getvalue().startswith(
        "partial_success: recalculated all wallets: 3 wallets, 1 balances written, 1 removed, 1 failed in "
    )
    [failure] = err.getvalue().splitlines()
    assert failure.startswith(f"failed: wallet {broken.pk} (") and f"transaction {bad.pk} (" in failure
    assert Balance.objects.get(wallet=good).amount == 2
    assert Balance.objects.get(wallet=broken).amount == 42  # untouched
    assert not Balance.objects.filter(wallet=empty).exists()


def test_all_works_across_batch_boundaries(monkeypatch, make_tx, make_wallet, wallet, token):
    monkeypatch.setattr(ledger, "RECALCULATE_BATCH_WALLETS", 2)
    wallets = [wallet] + [make_wallet() for _ in range(4)]
    for i, w in enumerate(wallets):
        make_tx("buy", str(i + 1), on_wallet=w, at=utc(2026, 1, 2))
    break_history(wallets[1], token)  # last of the first batch
    break_history(wallets[2], token)  # first of the second
    Balance.objects.update(amount=0)
    seen = []
    result = ledger.recalculate_all_wallets(progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert result.status == "partial_success"
    assert [f.wallet_id for f in result.failures] == [wallets[1].pk, wallets[2].pk]
    assert result.wallets == 3
    amounts = dict(Balance.objects.values_list("wallet_id", "amount"))
    assert amounts == {wallets[0].pk: 1, wallets[1].pk: 0, wallets[2].pk: 0, wallets[3].pk: 4, wallets[4].pk: 5}


def test_it_is_quiet_with_verbosity_zero(make_tx, wallet):
    make_tx("buy", "1")
    out, err = io.StringIO(), Terminal()
    call_command("recalculate", "--all", "-v", "0", stdout=out, stderr=err)
    assert (out.getvalue(), err.getvalue()) == ("", "")


def test_it_draws_a_progress_bar_on_a_terminal_only(make_tx, wallet):
    make_tx("buy", "1")
    out, err = recalculate("--all")
    assert err == ""  # not a terminal: no bar
    out, terminal = io.StringIO(), Terminal()
    call_command("recalculate", "--all", stdout=out, stderr=terminal)
    assert re.fullmatch(r"\rRecalculating \[#{30}\] 1/1 \d+\.\ds\n", terminal.getvalue())
    assert out.getvalue().startswith("success: recalculated all wallets: 1 wallets")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--wallet", "1", "--all"], "argument --all: not allowed with argument --wallet"),
        ([], "one of the arguments --wallet --all is required"),
        (["--wallet", "x"], "argument --wallet: invalid int value: 'x'"),
    ],
)
def test_it_needs_exactly_one_target(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        recalculate(*args)
