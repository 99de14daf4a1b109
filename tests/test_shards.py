"""One boundary in shards (snapshots/services/shards.py): planned in one running SnapshotRun, each
shard its own transaction, the last one completes the run; nothing of the boundary is read before;
a lost shard is queued again by the next scheduled run, and nothing is ever written twice.

The shards run here, in-process, as a worker would run them (tests/test_e2e_shards.py runs them in
real clusters)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, Sum

from snapshots import tasks
from snapshots.models import BalanceSnapshot, BoundaryTotal, SnapshotRun, WalletSnapshot
from snapshots.services import exports, portfolio, shards, snapshot_sql
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import run_snapshots, take_snapshot
from tests.conftest import plans_of, utc
from tests.faults.support import raw_connection

WALLETS = 5
FIRST = utc(2026, 3, 2, 10)  # the period's first boundary: a completed run before the one in shards
AS_OF = utc(2026, 3, 2, 11)
NEXT = utc(2026, 3, 2, 12)


@pytest.fixture
def fleet(settings, monkeypatch, wallet, make_wallet, make_tx, token):
    """WALLETS wallets, each buying before FIRST and again between FIRST and AS_OF; shards of 2
    wallets (cut at any id: cells of one id)."""
    settings.BALANCE_SNAPSHOT_SHARD_WALLETS = 2
    monkeypatch.setattr(shards, "CELL_IDS", 1)
    # Every boundary in full: AS_OF, newest after a complete FIRST, would otherwise take the fast
    # path in one statement (test_a_newest_boundary_after_a_complete_one_is_not_sharded).
    monkeypatch.setattr(snapshot_sql, "FAST_PATH", False)
    settings.BALANCE_HOURLY_RETENTION_DAYS = 0  # kept forever: 2026-03 is inside retention
    wallets = [wallet] + [make_wallet() for _ in range(WALLETS - 1)]
    for n, wallet in enumerate(wallets, start=1):
        make_tx("buy", str(n), price="10", at=FIRST - timedelta(minutes=30), on_wallet=wallet)
        make_tx("buy", "1", price=str(10 + n), at=AS_OF - timedelta(minutes=n), on_wallet=wallet)
    take_snapshot("hourly", FIRST, "scheduled")
    return wallets


class Queue(list):
    """The cluster's queue, recorded: queue(job, *args)."""

    def __call__(self, job, *args):
        self.append((job, *args))

    def run_all(self):
        results = [getattr(tasks, job)(*args) for job, *args in self]
        self.clear()
        return results


def scheduled(at, queue):
    return run_snapshots("hourly", at + timedelta(minutes=5), source="scheduled", queue=queue)


def rows(as_of):
    fields = ("wallet_id", "token_id", "amount", "price_usd", "value_usd", "cost_basis_usd", "realized_pnl_usd")
    return list(BalanceSnapshot.objects.filter(period="hourly", as_of=as_of).order_by("wallet_id").values_list(*fields))


def summaries(as_of):
    fields = ("wallet_id", "value_usd", "rows", "cost_basis_usd", "realized_pnl_usd")
    return list(WalletSnapshot.objects.filter(period="hourly", as_of=as_of).order_by("wallet_id").values_list(*fields))


def in_one_statement(as_of):
    """The rows and summaries of the boundary taken whole, for comparison (then put back as they were)."""
    taken = rows(as_of), summaries(as_of)
    BalanceSnapshot.objects.filter(as_of=as_of).delete()
    WalletSnapshot.objects.filter(as_of=as_of).delete()
    take_snapshot("hourly", as_of, "scheduled", WalletScope(wallets=[w for w, *_ in taken[0]]))  # rows only: no run
    assert (rows(as_of), summaries(as_of)) == taken
    return taken


def totals_are_the_rows(as_of):
    """The boundary's stored totals per token are those of its rows as read (done shards' only, while
    it is running)."""
    totals = sorted(BoundaryTotal.objects.filter(as_of=as_of).values_list("token_id", "value_usd", "rows"))
    from_rows = BalanceSnapshot.objects.filter(period="hourly", as_of=as_of).values("token_id")
    return totals == sorted(from_rows.annotate(v=Sum("value_usd"), n=Count("*")).values_list("token_id", "v", "n"))


def forget_first():
    """FIRST forgotten: AS_OF is the period's first boundary."""
    with connection.cursor() as cursor:
        for table in ("balancestate", "walletstate", "boundary", "boundaryprice", "boundarytotal", "snapshotrun"):
            cursor.execute(f"DELETE FROM snapshots_{table}")


def seen_by_readers(wallets, as_of):
    exported = list(exports.snapshot_rows("hourly", since=as_of, until=as_of))
    charted = [
        b for w in wallets for b in portfolio.wallet_value_history(w.pk, ["hourly"])["hourly"].as_of if b == as_of
    ]
    pnl = [b for w in wallets for b in portfolio.wallet_pnl_history(w.pk, ["hourly"])["hourly"].as_of if b == as_of]
    overview = [b for b in portfolio.portfolio_value_history("hourly").as_of if b == as_of]
    return exported, charted, pnl, overview


def test_the_plan_cuts_the_active_wallets_by_id_at_cell_edges(fleet, make_wallet, monkeypatch):
    make_wallet(is_active=False)
    ids = [w.pk for w in fleet]
    assert shards.plan_cuts(2) == [ids[2], ids[4]]
    assert shards.plan_cuts(5) == [] and shards.plan_cuts(0) == []
    monkeypatch.setattr(shards, "CELL_IDS", 64)
    cell = ids[-1] // 64 + 10  # cells past every wallet so far
    for n in (cell, cell + 1, cell + 2):
        make_wallet(id=64 * n + 5)
    # Every 2nd of the 8 active wallets: ids[2], ids[4] and the one in cell + 1, each cut at its cell's first id.
    assert shards.plan_cuts(2) == sorted({ids[2] - ids[2] % 64, ids[4] - ids[4] % 64, 64 * (cell + 1)} - {0})
    run = SnapshotRun(shard_cuts=[ids[2], ids[4]])
    assert [run.shard_range(i) for i in range(run.shards)] == [
        (0, ids[2] - 1),
        (ids[2], ids[4] - 1),
        (ids[4], 2**63 - 1),
    ]


def test_a_fleet_that_fits_one_shard_takes_its_boundary_in_one_statement(fleet, settings):
    settings.BALANCE_SNAPSHOT_SHARD_WALLETS = WALLETS
    queue = Queue()
    result = scheduled(AS_OF, queue)
    assert queue == [] and result.own.shards == 0 and result.own.rows == WALLETS
    assert SnapshotRun.objects.get(as_of=AS_OF).status == "completed"


def test_a_newest_boundary_after_a_complete_one_is_not_sharded(fleet, monkeypatch):
    monkeypatch.setattr(snapshot_sql, "FAST_PATH", True)
    queue = Queue()
    result = scheduled(AS_OF, queue)  # the fast path: only the wallets that moved since FIRST
    assert queue == [] and result.own.shards == 0 and result.own.rows == WALLETS
    assert SnapshotRun.objects.get(as_of=AS_OF).status == "completed"


def test_a_boundary_in_shards_is_read_only_once_its_last_shard_is_done(fleet):
    queue = Queue()
    result = scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    assert (run.status, run.shards, result.own.as_dict()["queued_shards"]) == ("running", 3, 3)
    assert [args for _, *args in queue] == [[run.pk, 0], [run.pk, 1], [run.pk, 2]]

    first, second, last = queue.run_all()
    assert first["status"] == second["status"] == last["status"] == "success"
    assert (first["completed"], second["completed"], last["completed"]) == (False, False, True)
    run.refresh_from_db()
    assert (run.status, run.shards_done, run.rows) == ("completed", [0, 1, 2], WALLETS)
    # The shards compared with FIRST's intervals: their totals were recomputed by the last one.
    assert run.totals_stale and totals_are_the_rows(AS_OF)
    assert seen_by_readers(fleet, AS_OF) != ([], [], [], [])
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)


def test_the_shards_of_a_periods_first_boundary_insert_their_states_directly(fleet, monkeypatch):
    """Nothing of the period is stored at or after the boundary in any shard's range: each shard
    inserts its states directly (FIRST_WRITE_SQL) and adds its rows to the totals, which therefore
    match the rows after every shard; the last one recomputes nothing (at 1,000,000 balances that
    was 2-3 s that no other worker could share). The boundary reads, totals included, as when taken
    in one statement."""
    forget_first()
    calls, recomputed = [], []
    first_statement = snapshot_sql._first_statement
    monkeypatch.setattr(snapshot_sql, "_first_statement", lambda *a: calls.append(a) or first_statement(*a))
    monkeypatch.setattr(snapshot_sql, "recompute_totals", lambda *a, **k: recomputed.append(a))
    queue = Queue()
    scheduled(AS_OF, queue)
    for job, *args in queue:
        assert getattr(tasks, job)(*args)["status"] == "success"
        assert totals_are_the_rows(AS_OF)
    assert [shard for _scope, shard in calls] == [True, True, True]
    assert recomputed == [] and not SnapshotRun.objects.get(as_of=AS_OF).totals_stale
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)


def test_a_shard_that_stores_a_newer_price_than_its_plans_has_every_total_recomputed(fleet, make_price, token):
    """A price imported after the plan stored the boundary's: the next shard stores it, and the rows
    of the shards done before are read at it too. Their totals, added at the plan's price, are
    stale: the last shard recomputes every total."""
    forget_first()
    queue = Queue()
    scheduled(AS_OF, queue)
    (job, *first), *rest = queue
    assert getattr(tasks, job)(*first)["status"] == "success"
    make_price("99", AS_OF - timedelta(minutes=1), of_token=token)
    for job, *args in rest:
        assert getattr(tasks, job)(*args)["status"] == "success"
    assert SnapshotRun.objects.get(as_of=AS_OF).totals_stale
    assert set(BalanceSnapshot.objects.filter(as_of=AS_OF).values_list("price_usd", flat=True)) == {99}
    assert totals_are_the_rows(AS_OF)
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)


def test_readers_see_nothing_of_a_boundary_until_every_shard_is_done(fleet):
    queue = Queue()
    scheduled(AS_OF, queue)
    for _job, run_id, index in queue[:2]:
        assert tasks.take_snapshot_shard(run_id, index)["status"] == "success"
    assert BalanceSnapshot.objects.filter(as_of=AS_OF).count() == 4  # two shards of two wallets, committed
    assert seen_by_readers(fleet, AS_OF) == ([], [], [], [])
    assert SnapshotRun.objects.get(as_of=AS_OF).status == "running"


def test_a_lost_shard_is_queued_again_by_the_next_run_and_nothing_is_written_twice(fleet):
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    tasks.take_snapshot_shard(run.pk, 0)
    tasks.take_snapshot_shard(run.pk, 2)  # shard 1 was lost (Redis delivers at most once)
    queue.clear()

    scheduled(NEXT, queue)
    later = SnapshotRun.objects.get(as_of=NEXT)
    assert sorted(args for _, *args in queue) == [[run.pk, 1], [later.pk, 0], [later.pk, 1], [later.pk, 2]]
    queue.run_all()
    run.refresh_from_db()
    assert (run.status, run.shards_done, run.rows) == ("completed", [0, 1, 2], WALLETS)
    assert SnapshotRun.objects.get(as_of=NEXT).status == "completed"

    again = [tasks.take_snapshot_shard(run.pk, i) for i in range(3)]  # late copies of every shard
    assert {(r["status"], r["reason"]) for r in again} == {("skipped", "run_not_running")}
    assert BalanceSnapshot.objects.filter(as_of=AS_OF).count() == WALLETS
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)


def test_a_copy_of_a_shard_already_done_writes_nothing(fleet):
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    tasks.take_snapshot_shard(run.pk, 0)
    again = tasks.take_snapshot_shard(run.pk, 0)
    assert (again["status"], again["reason"], again["rows"]) == ("skipped", "already_done", 0)
    run.refresh_from_db()
    assert (run.shards_done, run.rows) == ([0], 2)


def test_the_first_run_of_a_period_resumes_its_own_lost_shards(fleet, settings):
    SnapshotRun.objects.all().delete()  # no completed run: catch-up has nothing to look back from
    queue = Queue()
    scheduled(AS_OF, queue)
    queue.clear()  # every shard lost
    scheduled(NEXT, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    assert [args for _, *args in queue if args[0] == run.pk] == [[run.pk, 0], [run.pk, 1], [run.pk, 2]]


def test_a_whole_take_completes_a_boundary_planned_in_shards_and_its_shards_then_do_nothing(fleet):
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    tasks.take_snapshot_shard(run.pk, 1)

    result = run_snapshots("hourly", AS_OF, source="manual")  # create_snapshots: one statement, no cluster
    assert (result.own.rows, result.own.shards) == (WALLETS, 0)
    assert list(SnapshotRun.objects.filter(as_of=AS_OF).values_list("status", flat=True)) == ["completed"]
    late = queue.run_all()
    assert {r["reason"] for r in late} == {"run_not_running"}
    assert BalanceSnapshot.objects.filter(as_of=AS_OF).count() == WALLETS


def test_a_failing_shard_is_recorded_on_its_run_and_left_to_the_next_run(fleet, refuse_snapshot_rows):
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    refuse_snapshot_rows(AS_OF)
    failed = tasks.take_snapshot_shard(run.pk, 2)
    assert failed["status"] == "error" and "simulated disk full" in failed["error"]
    run.refresh_from_db()
    assert (run.status, run.shards_done) == ("running", [])
    assert run.error.startswith("shard 2: ")

    refuse_snapshot_rows(None)
    queue.run_all()
    run.refresh_from_db()
    assert (run.status, run.error) == ("completed", "")


def test_a_shard_in_progress_elsewhere_is_left_to_it(fleet):
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    holder = raw_connection()  # another worker, mid-shard: it holds the shard's lock
    try:
        holder.execute(shards.TRY_SHARD_SQL, [shards.SHARD_NAMESPACE, f"hourly:{AS_OF.isoformat()}:0"])
        skipped = tasks.take_snapshot_shard(run.pk, 0)
    finally:
        holder.rollback()
        holder.close()
    assert (skipped["status"], skipped["reason"]) == ("skipped", "in_progress")


def test_a_back_dated_first_transaction_reaches_a_shard_already_done(fleet, make_wallet, make_tx):
    late = make_wallet()  # in the last shard, with no transaction before the boundary yet
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    tasks.take_snapshot_shard(run.pk, 2)
    make_tx("buy", "7", price="10", at=AS_OF - timedelta(hours=3), on_wallet=late)

    assert tasks.refresh_stale_snapshots()["status"] == "success"
    queue.run_all()
    assert BalanceSnapshot.objects.get(as_of=AS_OF, wallet=late).amount == 7
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)


def test_healing_between_the_shards_of_a_first_boundary_keeps_the_totals_of_the_rows(fleet, make_wallet, make_tx):
    """Shards of a first boundary add their rows to the totals; healing a wallet of a shard already
    done, between two shards, adds its difference too: the totals are the rows after each step."""
    forget_first()
    late = make_wallet()  # in the last shard
    queue = Queue()
    scheduled(AS_OF, queue)
    (job, *first), *rest = queue
    assert getattr(tasks, job)(*first)["status"] == "success"
    make_tx("buy", "7", price="10", at=AS_OF - timedelta(hours=3), on_wallet=fleet[0])  # shard 0's
    make_tx("buy", "5", price="10", at=AS_OF - timedelta(hours=3), on_wallet=late)  # not taken yet
    assert tasks.refresh_stale_snapshots()["status"] == "success"
    assert totals_are_the_rows(AS_OF)
    for job, *args in rest:
        assert getattr(tasks, job)(*args)["status"] == "success"
        assert totals_are_the_rows(AS_OF)
    assert BalanceSnapshot.objects.get(as_of=AS_OF, wallet=late).amount == 5
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)


def test_a_rebuild_after_a_repair_covers_the_shards_already_done(fleet):
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    tasks.take_snapshot_shard(run.pk, 0)
    BalanceSnapshot.objects.filter(as_of=AS_OF).update(amount=999)  # rows of a damaged ledger

    assert tasks.recalculate_all_wallets(create_snapshots=True)["status"] == "success"
    assert set(BalanceSnapshot.objects.filter(as_of=AS_OF).values_list("amount", flat=True)) != {999}
    assert SnapshotRun.objects.get(as_of=AS_OF).status == "completed"  # re-taken whole: complete
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)


def test_a_shard_waits_for_another_boundarys_shard_on_the_same_wallets(fleet):
    queue = Queue()
    scheduled(AS_OF, queue)
    run = SnapshotRun.objects.get(as_of=AS_OF)
    holder = raw_connection()  # a shard of another hourly boundary, mid-write, over the first wallet
    try:
        cells = {"period": "hourly", "lo": fleet[0].pk, "hi": fleet[0].pk, "cell": shards.CELL_IDS}
        holder.execute(shards.LOCK_CELLS_SQL, cells)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        waited = tasks.take_snapshot_shard(run.pk, 0)
        other = tasks.take_snapshot_shard(run.pk, 1)  # other wallets: no wait
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        holder.rollback()
        holder.close()
    assert waited["status"] == "error" and "lock timeout" in waited["error"]
    assert other["status"] == "success"
    assert tasks.take_snapshot_shard(run.pk, 0)["status"] == "success"  # once the other one is done


def test_shards_join_by_hashing_whatever_the_tables_statistics_say(fleet):
    """The shards of a boundary that starts a period's tables are planned while those tables are
    empty (one row, says the planner) and run while the other shards fill them: a nested loop that
    rescans the period's states for each row of a range read the others' rows over and over (a shard
    of 12,000 rows: 9-50 s instead of 0.4 s, in about one run in seven of the workers benchmark).
    Every shard's statement joins by hashing."""
    queue = Queue()
    scheduled(AS_OF, queue)
    with plans_of("WITH recent AS MATERIALIZED") as plans:
        assert all(result["status"] == "success" for result in queue.run_all())
    assert len(plans) == 3
    assert all("Nested Loop" not in plan for plan in plans), next(p for p in plans if "Nested Loop" in p)
    assert (rows(AS_OF), summaries(AS_OF)) == in_one_statement(AS_OF)
