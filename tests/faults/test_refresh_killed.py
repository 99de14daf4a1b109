"""A refresh of stale snapshots killed half-way (SIGKILL of `manage.py refresh_snapshots` while it
waits on a row of its third boundary): the boundaries it finished are refreshed and their part of
the mark settled, the rest stays marked, and the next run completes it. Deterministic: a
transaction of the test holds the row the refresh must update, so it is killed exactly there."""

import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from snapshots.models import BalanceSnapshot, StaleMark
from snapshots.periods import floor_boundary
from snapshots.services.healing import refresh_stale_snapshots
from snapshots.services.snapshots import take_snapshot
from tests.faults.support import active_backend, backend_gone, raw_connection
from tests.jobs_support import ROOT, process_env

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_killed_refresh_leaves_the_marks_and_the_next_run_completes_it(make_tx, wallet, token):
    today = floor_boundary("daily", timezone.now())
    days = [today - timedelta(days=n) for n in (4, 3, 2, 1)]
    make_tx("buy", "10", price=100, at=days[0] - timedelta(hours=15))  # priced: the totals move with the rows
    for day in days:
        take_snapshot("daily", day, "scheduled")
    sell = make_tx("sell", "5", at=days[0] - timedelta(hours=6))

    def chart():
        rows = BalanceSnapshot.objects.filter(wallet=wallet, period="daily", as_of__in=days).order_by("as_of")
        return [int(r.amount) for r in rows]

    assert chart() == [10, 10, 10, 10] and StaleMark.objects.get().since == sell.timestamp

    # The third boundary's totals, row-locked: its re-take (the wallet's rows, and so their values,
    # change there) waits on them, after the first two boundaries committed. (Its states and wallet
    # state, one interval each over all four boundaries, are first written by the first.)
    blocker = raw_connection()
    blocker.execute("SELECT 1 FROM snapshots_boundarytotal WHERE period = 'daily' AND as_of = %s FOR UPDATE", [days[2]])
    refresh = subprocess.Popen(
        [sys.executable, "manage.py", "refresh_snapshots"],
        cwd=ROOT,
        env=process_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pid, _ = active_backend("WITH recent AS", waiting_on="Lock", timeout=60)
        refresh.send_signal(signal.SIGKILL)
        refresh.wait(timeout=10)
    finally:
        blocker.rollback()
        blocker.close()
        if refresh.poll() is None:
            refresh.kill()
    backend_gone(pid)

    assert chart() == [5, 5, 10, 10]  # two boundaries done, the third rolled back with the process
    mark = StaleMark.objects.get()
    assert mark.since == days[1] + timedelta(microseconds=1)  # settled as far as it got

    result = refresh_stale_snapshots()
    assert (result.status, len(result.boundaries), result.settled) == ("success", 2, 1)
    assert chart() == [5, 5, 5, 5]
    assert not StaleMark.objects.exists()
