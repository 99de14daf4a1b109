"""`recalculate --async` queues the job on the cluster's broker and prints its task id."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from snapshots import tasks
from tests.jobs_support import queued_payloads


def run(*args):
    out = StringIO()
    call_command("recalculate", *args, stdout=out)
    return out.getvalue().strip()


def queued():
    return queued_payloads()


def test_it_queues_one_wallet_and_prints_the_task_id(wallet):
    task_id = run("--wallet", str(wallet.pk), "--async")
    [task] = queued()
    assert task["id"] == task_id
    assert task["func"] == "snapshots.tasks.recalculate_wallet_balances"
    assert task["args"] == (wallet.pk,)
    assert task["kwargs"] == {"create_snapshots": False}
    assert task["group"] == "recalculate_wallet_balances"


def test_it_queues_all_wallets(db):
    task_id = run("--all", "--async")
    [task] = queued()
    assert (task["id"], task["func"]) == (task_id, "snapshots.tasks.recalculate_all_wallets")


def test_it_refuses_a_wallet_that_does_not_exist_and_queues_nothing(db):
    with pytest.raises(CommandError, match="wallet 999999 does not exist"):
        run("--wallet", "999999", "--async")
    assert queued() == []


def test_the_task_is_a_plain_function_returning_the_result_dict(make_tx, wallet):
    make_tx("buy", "2", price="10")
    result = tasks.recalculate_wallet_balances(wallet.pk)
    assert result["status"] == "success"
    assert result["wallets"] == 1
    assert "duration_seconds" in result


def test_the_task_reports_a_missing_wallet_as_an_error(db):
    assert tasks.recalculate_wallet_balances(424242) == {"status": "error", "error": "wallet 424242 does not exist"}


def test_create_snapshots_async_queues_a_manual_run_of_the_period(db):
    out = StringIO()
    call_command("create_snapshots", "--period", "daily", "--at", "2026-03-02T10:00Z", "--async", stdout=out)
    [task] = queued()
    assert task["id"] == out.getvalue().strip()
    assert task["func"] == "snapshots.tasks.create_daily_snapshots"
    assert task["kwargs"] == {"force": False, "at": "2026-03-02T10:00:00+00:00"}


def test_an_unreachable_broker_is_one_clear_error(wallet, monkeypatch):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(CommandError, match="could not queue recalculate_wallet_balances: ConnectionError"):
        run("--wallet", str(wallet.pk), "--async")
