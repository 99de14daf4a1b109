"""One boundary over many workers, in real clusters (`manage.py qcluster` subprocesses on the run's
private Redis): the shards of one boundary are taken side by side by every worker of two nodes, each
once; a worker SIGKILLed mid-shard leaves the boundary running and unread, and the next scheduled
run, queued to the cluster, completes it with no row written twice.

Tasks are queued directly (no scheduler tick). Deterministic: a connection of the test holds the
period's lock as a whole take would, so every shard a worker picks up waits there until the test
has seen what it needs (four workers busy at once; a worker to kill)."""

import re
import signal
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Task
from django_q.tasks import async_task

from snapshots.models import BalanceSnapshot, SnapshotRun, WalletSnapshot
from snapshots.periods import floor_boundary
from snapshots.services import exports, shards, snapshot_sql
from snapshots.services.snapshots import take_snapshot
from tests.faults.support import raw_connection
from tests.jobs_support import QCluster, process_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHARD = "snapshots.tasks.take_snapshot_shard"


@pytest.fixture
def fleet(settings, wallet, make_wallet, make_tx, token):
    """make(n): n wallets that bought before the last hour's boundary, one per wallet-id cell
    (shards.CELL_IDS), so each is a shard of its own (``wallet``, whose id depends on the tests run
    before, is deactivated: no shard is planned for it)."""
    settings.BALANCE_SNAPSHOT_SHARD_WALLETS = 1
    wallet.is_active = False
    wallet.save()

    def make(n):
        as_of = floor_boundary("hourly", timezone.now()) - timedelta(hours=1)
        for i in range(1, n + 1):
            w = make_wallet(id=shards.CELL_IDS * i)
            make_tx("buy", str(i), price="10", at=as_of - timedelta(minutes=30), on_wallet=w)
        return as_of

    return make


def cluster_env(redis_url, workers):
    return process_env(broker_url=redis_url, Q_CLUSTER_WORKERS=workers, BALANCE_SNAPSHOT_SHARD_WALLETS=1)


def hold_period():
    """A connection holding the hourly states' lock exclusively, as a whole take does: shards wait."""
    holder = raw_connection()
    holder.execute(snapshot_sql.LOCK_PERIOD_STATES_SQL, [snapshot_sql.STATE_NAMESPACE, "hourly"])
    return holder


def busy_workers(*nodes):
    """(node, worker name) of every worker that picked up a shard so far."""
    pattern = r"(\S+) processing \S+ '" + re.escape(SHARD) + "'"
    return {(n, name) for n, node in enumerate(nodes) for name in re.findall(pattern, node.log())}


def processed(node):
    return re.findall(r"Processed '" + re.escape(SHARD) + r"' \(([\w-]+)\)", node.log())


def state(as_of):
    rows = BalanceSnapshot.objects.filter(period="hourly", as_of=as_of).order_by("wallet_id", "token_id")
    sums = WalletSnapshot.objects.filter(period="hourly", as_of=as_of).order_by("wallet_id")
    return (
        list(rows.values_list("wallet_id", "token_id", "amount", "value_usd", "cost_basis_usd")),
        list(sums.values_list("wallet_id", "value_usd", "rows", "cost_basis_usd")),
    )


def in_one_statement(as_of):
    BalanceSnapshot.objects.filter(as_of=as_of).delete()
    WalletSnapshot.objects.filter(as_of=as_of).delete()
    SnapshotRun.objects.filter(as_of=as_of).delete()
    take_snapshot("hourly", as_of, "scheduled")
    return state(as_of)


def test_two_nodes_of_two_workers_share_the_shards_of_one_boundary(redis_url, tmp_path, fleet, settings):
    as_of = fleet(12)
    run = shards.plan_run("hourly", as_of, "scheduled")
    assert run.shards == 12
    nodes = []
    holder = hold_period()
    try:
        for name in ("node-a", "node-b"):
            (tmp_path / name).mkdir()
            nodes.append(QCluster(cluster_env(redis_url, 2), tmp_path / name / "qcluster.log", cwd=tmp_path / name))
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        queued = [async_task(SHARD, run.pk, index) for index in range(run.shards)]
        # Every worker of both nodes holds a shard of the same boundary at once.
        wait_until(lambda: len(busy_workers(*nodes)) == 4, timeout=60, what="four workers on one boundary")
        holder.rollback()
        wait_until(lambda: Task.objects.filter(id__in=queued).count() == len(queued), timeout=60, what="every shard")
    finally:
        holder.close()
        for node in nodes:  # both at once: each lets its workers finish first
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in nodes:
            node.stop()

    done = Task.objects.filter(id__in=queued)
    assert all(t.success and t.result["status"] == "success" for t in done), [
        t.result.get("error") for t in done if not (t.success and t.result["status"] == "success")
    ]
    assert sum(t.result["completed"] for t in done) == 1  # the last shard completed the run
    ran = processed(nodes[0]) + processed(nodes[1])
    assert sorted(ran) == sorted(t.name for t in done), "a shard ran twice, or not at all"
    assert processed(nodes[0]) and processed(nodes[1]), "one node took every shard"
    run.refresh_from_db()
    assert (run.status, run.shards_done, run.rows) == ("completed", list(range(12)), 12)
    assert state(as_of) == in_one_statement(as_of)


@pytest.mark.faults
def test_a_worker_killed_mid_shard_leaves_the_boundary_unread_and_the_next_run_completes_it(
    redis_url, qcluster, fleet, settings
):
    as_of = fleet(3)
    run = shards.plan_run("hourly", as_of, "scheduled")
    cluster = qcluster(cluster_env(redis_url, 2))
    holder = hold_period()
    try:
        queued = [async_task(SHARD, run.pk, index) for index in range(run.shards)]
        victim = cluster.worker_processing(SHARD)
        victim.kill()  # SIGKILL, mid-shard: its transaction rolls back with its connection
        victim.wait(timeout=10)
        holder.rollback()
        wait_until(
            lambda: Task.objects.filter(id__in=queued, success=True).count() == run.shards - 1,
            timeout=60,
            what="the shards that were not killed",
        )
    finally:
        holder.close()

    run.refresh_from_db()
    assert run.status == "running" and len(run.shards_done) == run.shards - 1
    assert list(exports.snapshot_rows("hourly", since=as_of, until=as_of)) == []  # readers see nothing of it

    # The next scheduled run, through the cluster: its own boundary, and the lost shard queued again.
    following = as_of + timedelta(hours=1)
    async_task("snapshots.tasks.create_hourly_snapshots", scheduled_at=(following + timedelta(minutes=5)).isoformat())
    wait_until(
        lambda: SnapshotRun.objects.filter(as_of__in=[as_of, following], status="completed").count() == 2,
        timeout=60,
        what="both boundaries completed",
    )
    assert not SnapshotRun.objects.filter(status="running").exists()
    run.refresh_from_db()
    assert (run.shards_done, run.rows) == ([0, 1, 2], 3)
    assert len(list(exports.snapshot_rows("hourly", since=as_of, until=as_of))) == 3
    assert state(as_of) == in_one_statement(as_of)
