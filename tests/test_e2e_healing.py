"""History edits heal themselves, end to end: a back-dated sell queues the refresh when it
commits, and a real `manage.py qcluster` on Redis (REDIS_TEST_URL) runs it — no scheduler tick,
no command, no operator."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Task

from snapshots.models import BalanceSnapshot, StaleMark
from snapshots.periods import floor_boundary
from snapshots.services.snapshots import take_snapshot
from tests.jobs_support import process_env, redis_test_url, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_broker(monkeypatch):
    """This process and the cluster on the same Redis database: the commit hook queues there."""
    import redis

    url = redis_test_url()
    redis.from_url(url).flushdb()
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    yield process_env(broker_url=url)
    redis.from_url(url).flushdb()


def test_a_chart_reading_5_5_10_5_after_a_back_dated_sell_heals_with_nothing_but_the_cluster(
    redis_broker, qcluster, make_tx, wallet
):
    today = floor_boundary("daily", timezone.now())
    days = [today - timedelta(days=n) for n in (4, 3, 2, 1)]
    make_tx("buy", "10", at=days[0] - timedelta(hours=15))
    take_snapshot("daily", days[2], "scheduled")
    make_tx("sell", "5", at=days[0] - timedelta(hours=6))  # back-dated; its commit queues the refresh
    for day in (days[0], days[1], days[3]):
        take_snapshot("daily", day, "scheduled")

    def chart():
        rows = BalanceSnapshot.objects.filter(wallet=wallet, period="daily", as_of__in=days).order_by("as_of")
        return [int(r.amount) for r in rows]

    assert chart() == [5, 5, 10, 5]
    assert StaleMark.objects.filter(wallet_id=wallet.pk).exists()

    qcluster(redis_broker)
    wait_until(lambda: chart() == [5, 5, 5, 5], timeout=60, what="the chart to heal")
    task = wait_until(lambda: Task.objects.filter(func="snapshots.tasks.refresh_stale_snapshots").first(), 30)
    assert task.success and task.result["status"] == "success", task.result
    assert not StaleMark.objects.exists()
