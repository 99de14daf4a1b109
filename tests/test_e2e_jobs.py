"""End to end: a real `manage.py qcluster` subprocess on the test database, with Redis and with the
ORM broker. Bounded waits; every process is stopped at teardown (tests/jobs_support.py)."""

from decimal import Decimal

import pytest
from django_q.models import Task

from snapshots.models import Balance
from tests.jobs_support import manage, process_env, qcluster, redis_test_url, wait_until  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["redis", "orm"])
def broker_env(request):
    """The environment of every process of one test: the same database, Redis or the ORM."""
    if request.param == "redis":
        import redis

        url = redis_test_url()
        redis.from_url(url).flushdb()
        yield process_env(broker_url=url)
        redis.from_url(url).flushdb()
    else:
        yield process_env()


def test_recalculate_async_is_executed_by_the_cluster(broker_env, qcluster, make_tx, wallet):
    make_tx("buy", "3", price="10")
    make_tx("sell", "1", price="20")
    Balance.objects.all().delete()  # damaged: the job must repair it

    qcluster(broker_env)
    queued = manage("recalculate", "--wallet", str(wallet.pk), "--async", env=broker_env)
    assert queued.returncode == 0, queued.stderr
    task_id = queued.stdout.strip().splitlines()[-1]  # log lines go to stdout too

    task = wait_until(lambda: Task.objects.filter(id=task_id).first(), timeout=60, what=f"task {task_id}")
    assert task.success, task.result
    assert task.result["status"] == "success" and task.result["wallets"] == 1
    balance = Balance.objects.get(wallet=wallet)
    assert balance.amount == Decimal("2")
    assert balance.realized_pnl_usd == Decimal("10")
