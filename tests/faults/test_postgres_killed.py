"""The PostgreSQL connection of a job killed mid-recalculation (issue 6, item 3): pg_terminate_backend
on the worker's backend while it rebuilds a wallet's balances. The wallet's balances are as they
were, the job is recorded as failed with the reason, and running it again succeeds — on the same
worker, which must not keep its dead connection. Real qcluster subprocess, Redis of its own."""

from decimal import Decimal

import pytest
from django.db import connection

from snapshots.models import Balance
from tests.conftest import utc
from tests.faults.support import PrivateRedis, active_backend, finished_task, queue_on, raw_connection
from tests.jobs_support import process_env

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def balances(wallet):
    return list(
        Balance.objects.filter(wallet=wallet)
        .order_by("token_id")
        .values_list("token_id", "amount", "total_in", "total_out", "avg_buy_price_usd", "realized_pnl_usd")
    )


def test_a_recalculation_whose_connection_is_killed_changes_nothing_and_a_retry_succeeds(
    private_redis, qcluster, make_tx, make_token, wallet, token
):
    usdc = make_token("USDC", decimals=6)
    make_tx("buy", "3", price="10", at=utc(2026, 1, 1))
    make_tx("sell", "1", price="20", at=utc(2026, 1, 2))
    make_tx("buy", "100", price="1", at=utc(2026, 1, 1), of_token=usdc)
    # Damaged balances, which the job is to repair: ETH wrong, USDC missing.
    Balance.objects.filter(wallet=wallet, token=token).update(amount=Decimal("7"), total_out=0)
    Balance.objects.filter(wallet=wallet, token=usdc).delete()
    damaged = balances(wallet)
    cluster = qcluster(process_env(broker_url=private_redis.url, Q_CLUSTER_WORKERS=1))

    # The test holds the ETH balance row: the job's upsert, having locked the wallet and checked
    # its history, waits on it, mid-statement. Then its connection is killed.
    blocker = raw_connection()
    blocker.execute(
        "SELECT 1 FROM snapshots_balance WHERE wallet_id = %s AND token_id = %s FOR UPDATE", [wallet.pk, token.pk]
    )
    try:
        task_id = queue_on(private_redis.url, "snapshots.tasks.recalculate_wallet_balances", wallet.pk)
        pid, _ = active_backend("WITH walk AS", waiting_on="Lock", timeout=30)  # the upsert (first 1 kB)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        blocker.rollback()
        blocker.close()

    task = finished_task(task_id)
    assert not task.success
    assert "terminating connection due to administrator command" in str(task.result)
    assert balances(wallet) == damaged  # nothing of the wallet changed
    assert "Failed 'snapshots.tasks.recalculate_wallet_balances'" in cluster.log()

    retry = finished_task(queue_on(private_redis.url, "snapshots.tasks.recalculate_wallet_balances", wallet.pk))
    assert retry.success, retry.result
    assert retry.result["status"] == "success"
    assert balances(wallet) == [
        (token.pk, Decimal("2"), Decimal("3"), Decimal("1"), Decimal("10"), Decimal("10")),
        (usdc.pk, Decimal("100"), Decimal("100"), Decimal("0"), Decimal("1"), Decimal("0")),
    ]
    cluster.assert_running()


def test_the_recalculate_command_whose_connection_is_killed_says_so_in_one_line(make_tx, wallet, token):
    import subprocess
    import sys

    from tests.jobs_support import ROOT

    make_tx("buy", "3", price="10", at=utc(2026, 1, 1))
    Balance.objects.filter(wallet=wallet).update(amount=Decimal("7"))
    damaged = balances(wallet)
    blocker = raw_connection()
    blocker.execute("SELECT 1 FROM snapshots_balance WHERE wallet_id = %s FOR UPDATE", [wallet.pk])
    try:
        command = subprocess.Popen(
            [sys.executable, "manage.py", "recalculate", "--wallet", str(wallet.pk)],
            cwd=ROOT,
            env=process_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        pid, _ = active_backend("WITH walk AS", waiting_on="Lock", timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        blocker.rollback()
        blocker.close()
    _, stderr = command.communicate(timeout=60)

    assert command.returncode == 1
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "database" in stderr and "terminating connection due to administrator command" in stderr
    assert balances(wallet) == damaged
    rerun = subprocess.run(
        [sys.executable, "manage.py", "recalculate", "--wallet", str(wallet.pk)],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert Balance.objects.get(wallet=wallet).amount == Decimal("3")
