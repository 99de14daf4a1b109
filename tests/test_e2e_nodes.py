"""Two qcluster nodes — separate `manage.py qcluster` processes, each in a working directory of its
own, same settings — on one Redis and one PostgreSQL share the queued work: every task runs once,
on one node or the other, and the rows are those of the same tasks run one after the other.

Tasks are queued directly (no scheduler tick is waited for). Which node ran a task is read from
each node's own log ("Processed '<func>' (<task name>)"): django-q2 records the cluster's queue
name on the Task, which both nodes share."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Task
from django_q.tasks import async_task

from snapshots import tasks
from snapshots.models import Balance, BalanceSnapshot, SnapshotRun, WalletSnapshot
from snapshots.periods import floor_boundary
from tests.jobs_support import QCluster, process_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BOUNDARIES = 8
WALLETS = 4


@pytest.fixture
def nodes(tmp_path):
    """start(env) -> two running nodes, each in its own directory; both stopped at teardown."""
    started = []

    def start(env):
        for name in ("node-a", "node-b"):
            directory = tmp_path / name
            directory.mkdir()
            started.append(QCluster(env, directory / "qcluster.log", cwd=directory).start())
        return [node.wait_ready() for node in started]

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def redis_env(redis_url):
    return process_env(broker_url=redis_url)


def history(make_wallet, make_tx, token):
    """WALLETS wallets buying at different hours of the last BOUNDARIES hours: each boundary differs."""
    latest = floor_boundary("hourly", timezone.now()) - timedelta(hours=1)
    boundaries = [latest - timedelta(hours=n) for n in reversed(range(BOUNDARIES))]
    for w in range(WALLETS):
        wallet = make_wallet()
        make_tx("buy", "1", price="100", at=boundaries[0] - timedelta(minutes=30), on_wallet=wallet)
        for n, boundary in enumerate(boundaries[1:], start=1):
            if (n + w) % 3 == 0:
                make_tx("buy", str(n + w), price=str(100 + n), at=boundary - timedelta(minutes=10), on_wallet=wallet)
    return boundaries


def jobs(boundaries):
    """(function, args, kwargs): a scheduled snapshot per boundary, oldest first, and a recalculation per wallet."""
    snapshots = [
        ("create_hourly_snapshots", (), {"scheduled_at": (b + timedelta(minutes=5)).isoformat()}) for b in boundaries
    ]
    recalculations = [
        ("recalculate_wallet_balances", (pk,), {})
        for pk in Balance.objects.values_list("wallet_id", flat=True).distinct()
    ]
    return snapshots + recalculations


def state():
    """Everything the jobs write, without ids and creation times (a run's horizon is one)."""
    skip = {"id", "created_at", "started_at", "finished_at", "duration_seconds", "updated_at", "horizon"}

    def rows(model, order):
        fields = [f.attname for f in model._meta.concrete_fields if f.name not in skip]
        return list(model.objects.order_by(*order).values_list(*fields))

    return {
        "snapshots": rows(BalanceSnapshot, ["period", "as_of", "wallet_id", "token_id"]),
        "summaries": rows(WalletSnapshot, ["period", "as_of", "wallet_id"]),
        "runs": rows(SnapshotRun, ["period", "as_of"]),
        "balances": rows(Balance, ["wallet_id", "token_id"]),
    }


def processed(node):
    return re.findall(r"Processed '[\w.]+' \(([\w-]+)\)", node.log())


def test_two_nodes_share_the_queue_and_each_task_runs_once(redis_env, nodes, make_wallet, make_tx, token):
    boundaries = history(make_wallet, make_tx, token)
    work = jobs(boundaries)
    first, second = nodes(redis_env)

    # This process's broker is the nodes' Redis (the run's private server: redis_url).
    queued = {async_task(f"snapshots.tasks.{func}", *args, **kwargs): func for func, args, kwargs in work}
    wait_until(lambda: Task.objects.filter(id__in=queued).count() == len(queued), timeout=120, what="every task")

    done = Task.objects.filter(id__in=queued)
    assert all(task.success and task.result["status"] == "success" for task in done), [t.result for t in done]
    names = {task.name for task in done}
    # django-q2's monitor saves the Task row first and logs "Processed" after it: wait for the logs too.
    wait_until(lambda: len(processed(first) + processed(second)) >= len(queued), timeout=30, what="every task in a log")
    ran = processed(first) + processed(second)
    assert sorted(ran) == sorted(names), "a task ran twice, or not at all"
    assert processed(first) and processed(second), "one node took all the work"
    assert SnapshotRun.objects.filter(period="hourly", status="completed").count() == BOUNDARIES
    together = state()

    # The same jobs, one after the other, in this process, from nothing.
    BalanceSnapshot.objects.all().delete()
    WalletSnapshot.objects.all().delete()
    SnapshotRun.objects.all().delete()
    for func, args, kwargs in work:
        assert getattr(tasks, func)(*args, **kwargs)["status"] == "success"
    assert together == state()
