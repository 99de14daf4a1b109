"""Redis down (issue 6, item 2), on a redis-server of the test's own, killed and restarted on the
same port. What django-q2 1.11 does (django_q/cluster.py, pusher.py, scheduler.py):

- Redis down when a schedule is due: the scheduler's async_task raises inside its transaction,
  which rolls back, so the schedule's next_run is not advanced ("Could not create task from
  schedule"). The pusher's dequeue fails; it sleeps 10 s and exits; the sentinel starts another.
  When Redis is back, the next tick (30 s later) fires the schedule for the instant it was due,
  and the snapshot's catch-up takes any boundary missed meanwhile. No operator needed. (The test
  drives the cluster's scheduler tick itself instead of waiting 30 s for each.)
- Redis down when a cluster starts: the sentinel's ping fails and `qcluster` exits with status 1;
  docker-compose's `restart: unless-stopped` (tests/test_compose.py) starts it again until Redis
  answers.
"""

import logging
import time
from datetime import timedelta
from decimal import Decimal

import django_q.cluster
import pytest
from django.utils import timezone
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.models import Schedule, Task

from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.periods import floor_boundary
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc
from tests.faults.support import PrivateRedis, free_port
from tests.jobs_support import QCluster, process_env, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCHEDULER_TICK = 30  # django-q2's sentinel calls the scheduler every 30 s, the first 30 s after start


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def completed(as_of):
    return SnapshotRun.objects.filter(period="hourly", as_of=as_of, status="completed").first()


def test_a_schedule_due_while_redis_is_down_fires_when_it_is_back_and_catches_up(
    private_redis, qcluster, make_tx, wallet, caplog, monkeypatch
):
    make_tx("buy", "5", price="3", at=utc(2026, 1, 1))
    current = floor_boundary("hourly", timezone.now())
    history_starts, missed, due = (current - timedelta(hours=h) for h in (3, 2, 1))
    take_snapshot("hourly", history_starts, "scheduled")
    cluster = qcluster(process_env(broker_url=private_redis.url))
    started = time.monotonic()
    monkeypatch.setattr(Conf, "REDIS", private_redis.url)

    def tick():
        """What the cluster's sentinel does every 30 s: its (guarded) scheduler on the cluster's broker."""
        django_q.cluster.scheduler(broker=RedisBroker())

    private_redis.kill()
    Schedule.objects.filter(name="hourly_balance_snapshots").update(next_run=due + timedelta(minutes=5))
    with caplog.at_level(logging.INFO, logger="django-q"):
        tick()
    assert "Could not create task from schedule" in caplog.text
    assert Schedule.objects.get(name="hourly_balance_snapshots").next_run == due + timedelta(minutes=5)  # not lost
    assert completed(due) is None
    private_redis.start()  # same port

    tick()
    wait_until(lambda: completed(due), SCHEDULER_TICK + 45, what="the hourly snapshot after Redis is back")
    cluster.assert_running()  # recovered without an operator
    assert time.monotonic() - started < 3 * SCHEDULER_TICK + 45
    for boundary in (history_starts, missed, due):
        assert completed(boundary) is not None
        assert list(
            BalanceSnapshot.objects.filter(period="hourly", as_of=boundary).values_list("amount", flat=True)
        ) == [Decimal("5")]
    assert completed(missed).source == "scheduled"
    assert Task.objects.filter(group="hourly_balance_snapshots").count() == 1  # fired once
    assert Schedule.objects.get(name="hourly_balance_snapshots").next_run > timezone.now()


def test_a_cluster_started_while_redis_is_down_exits_for_its_supervisor_to_restart(tmp_path, private_redis):
    absent = f"redis://127.0.0.1:{free_port()}/0"
    cluster = QCluster(process_env(broker_url=absent), tmp_path / "no-redis.log").start()
    try:
        assert cluster.process.wait(timeout=60) != 0
    finally:
        cluster.stop()
    assert "Can not connect to Redis server" in cluster.log()

    # What the supervisor does next, once Redis answers: the same command starts a cluster.
    again = QCluster(process_env(broker_url=private_redis.url), tmp_path / "redis-back.log").start()
    try:
        again.wait_ready()
    finally:
        again.stop()
