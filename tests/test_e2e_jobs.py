"""End to end: a real `manage.py qcluster` subprocess on the test database, with Redis and with the
ORM broker. Bounded waits; every process is stopped at teardown (tests/jobs_support.py)."""

import logging
import re
import time
from datetime import timedelta
from decimal import Decimal

import django_q.cluster
import pytest
from django.utils import timezone
from django_q.brokers.orm import ORM as OrmBroker
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.models import Schedule, Task
from django_q.tasks import async_task

from snapshots.models import Balance, BalanceSnapshot, JobRunStats, SnapshotRun
from snapshots.periods import floor_boundary
from tests.conftest import utc
from tests.jobs_support import manage, process_env, wait_until

# django-q2's sentinel calls the scheduler every 30 s; the first call comes 30 s after start-up. Only
# test_two_clusters_fire_a_due_schedule_once waits for real ticks; the others drive the scheduler.
SCHEDULER_TICK = 30

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["redis", "orm"])
def broker_env(request, redis_url):
    """The environment of every process of one test: the same database, and the run's private Redis
    (the default) or the ORM broker (chosen explicitly: BAGTRACKER_BROKER=orm)."""
    return process_env(broker_url=redis_url) if request.param == "redis" else process_env(orm=True)


def test_recalculate_async_is_executed_by_the_cluster(broker_env, qcluster, make_tx, wallet):
    make_tx("buy", "3", price="10")
    make_tx("sell", "1", price="20")
    Balance.objects.all().delete()  # damaged: the job must repair it

    qcluster(broker_env)
    info = manage("qinfo", env=broker_env)
    assert re.search(r"Clusters\s*1\s*Workers", info.stdout), info.stdout + info.stderr  # qinfo sees the cluster
    queued = manage("recalculate", "--wallet", str(wallet.pk), "--async", env=broker_env)
    assert queued.returncode == 0, queued.stderr
    task_id = queued.stdout.strip().splitlines()[-1]  # log lines go to stdout too

    task = wait_until(lambda: Task.objects.filter(id=task_id).first(), timeout=60, what=f"task {task_id}")
    assert task.success, task.result
    assert task.result["status"] == "success" and task.result["wallets"] == 1
    balance = Balance.objects.get(wallet=wallet)
    assert balance.amount == Decimal("2")
    assert balance.realized_pnl_usd == Decimal("10")
    # The worker counted the run for /metrics (the web process reads it from the database).
    stats = wait_until(
        lambda: JobRunStats.objects.filter(task="recalculate_wallet_balances", outcome="success").first(),
        timeout=10,
        what="the run's count",
    )
    assert stats.runs == 1 and sum(stats.duration_buckets) == 1


def _make_hourly_due(wallet, make_tx):
    """The hourly schedule overdue since the previous hour's :05, and a wallet holding 5 tokens."""
    make_tx("buy", "5", price="3", at=utc(2026, 1, 1))
    previous_hour = floor_boundary("hourly", timezone.now()) - timedelta(hours=1)
    Schedule.objects.filter(name="hourly_balance_snapshots").update(next_run=previous_hour + timedelta(minutes=5))
    return previous_hour


def _completed_run(as_of):
    return SnapshotRun.objects.filter(period="hourly", as_of=as_of, status="completed").first()


def test_a_due_schedule_fires_and_the_rows_of_its_intended_boundary_appear(
    broker_env, qcluster, make_tx, wallet, settings, caplog
):
    settings.BAGTRACKER_EXTRA_TASKS = ["math.floor"]
    intended = _make_hourly_due(wallet, make_tx)
    # A schedule broken behind the ORM's back, due too: the cluster's guard pauses it, so it cannot
    # roll back the scheduler's batch (which would make the hourly schedule fire every tick).
    broken = Schedule.objects.create(
        name="broken",
        func="math.floor",
        args="1.5",
        schedule_type=Schedule.MINUTES,
        minutes=60,
        next_run=timezone.now() - timedelta(minutes=1),
    )
    Schedule.objects.filter(pk=broken.pk).update(args="1.5,,")
    cluster = qcluster({**broker_env, "BAGTRACKER_EXTRA_TASKS": "math.floor"})

    # The cluster's scheduler tick (django_q.cluster.scheduler, with the guard), driven here rather
    # than awaited (the sentinel's first tick comes 30 s after start-up; test_two_clusters… waits
    # for real ones). It queues on the cluster's broker; the cluster runs the job.
    with caplog.at_level(logging.INFO, logger="django-q"):
        django_q.cluster.scheduler(broker=_broker_of(broker_env))
        django_q.cluster.scheduler(broker=_broker_of(broker_env))  # a second tick fires nothing again

    run = wait_until(lambda: _completed_run(intended), timeout=45, what="the hourly snapshot")
    assert run.source == "scheduled" and run.rows == 1
    snapshot = BalanceSnapshot.objects.get(period="hourly", as_of=intended)
    assert (snapshot.wallet_id, snapshot.amount) == (wallet.pk, Decimal("5"))
    # The boundary it was scheduled for, not the one of the pick-up time; next run moved forward.
    assert not SnapshotRun.objects.filter(period="hourly", as_of__gt=intended).exists()
    assert Schedule.objects.get(name="hourly_balance_snapshots").next_run > timezone.now()
    assert Schedule.objects.get(pk=broken.pk).next_run is None
    assert "paused schedule broken: the scheduler cannot process it" in caplog.text
    assert caplog.text.count("from schedule [hourly_balance_snapshots]") == 1
    cluster.assert_running()


def _broker_of(env):
    """The broker the cluster of ``env`` reads: its Redis, or the ORM's queue table."""
    if env.get("BAGTRACKER_BROKER") == "orm":
        return OrmBroker()
    assert env["REDIS_URL"] == Conf.REDIS  # the private Redis of this test process (the redis_url fixture)
    return RedisBroker()


@pytest.fixture
def redis_env(redis_url):
    return process_env(broker_url=redis_url)


def test_two_clusters_fire_a_due_schedule_once(redis_env, qcluster, make_tx, wallet):
    intended = _make_hourly_due(wallet, make_tx)
    first, second = qcluster(redis_env, "first"), qcluster(redis_env, "second")
    both_ticked = time.monotonic() + SCHEDULER_TICK + 5  # each cluster's first scheduler call is behind us

    wait_until(lambda: _completed_run(intended), timeout=SCHEDULER_TICK + 45, what="the hourly snapshot")
    time.sleep(max(0.0, both_ticked - time.monotonic()))

    fired = [log for log in (first.log(), second.log()) if "from schedule [hourly_balance_snapshots]" in log]
    assert len(fired) == 1, "both clusters created a task from the schedule"
    assert sum(log.count("from schedule [hourly_balance_snapshots]") for log in fired) == 1
    assert Task.objects.filter(group="hourly_balance_snapshots").count() == 1
    assert SnapshotRun.objects.filter(period="hourly", status="completed").count() == 1


def test_a_snapshot_job_delivered_twice_leaves_one_set_of_rows(redis_env, qcluster, make_tx, make_wallet, monkeypatch):
    for _ in range(3):
        make_tx("buy", "1", price="2", at=utc(2026, 1, 1), on_wallet=make_wallet())
    for name in ("first", "second"):  # one worker each: the two deliveries run side by side
        qcluster(redis_env, name)
    boundary = floor_boundary("hourly", timezone.now())

    # The same message twice on the cluster's queue, as a redelivery or a double fire would do.
    monkeypatch.setattr(Conf, "REDIS", redis_env["REDIS_URL"])
    broker = RedisBroker()
    scheduled_at = (boundary + timedelta(minutes=5)).isoformat()
    ids = [
        async_task("snapshots.tasks.create_hourly_snapshots", scheduled_at=scheduled_at, broker=broker)
        for _ in range(2)
    ]

    wait_until(lambda: Task.objects.filter(id__in=ids).count() == 2, timeout=60, what="both deliveries")
    assert all(task.success and task.result["status"] == "success" for task in Task.objects.filter(id__in=ids))
    assert BalanceSnapshot.objects.filter(period="hourly", as_of=boundary).count() == 3
    assert SnapshotRun.objects.filter(period="hourly", as_of=boundary, status="completed").count() == 1
