"""Retention cleanup: expired snapshots go, in bounded batches; an interruption leaves a consistent state."""

from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone

from snapshots import tasks
from snapshots.models import BalanceSnapshot, SnapshotRun, WalletSnapshot
from snapshots.periods import boundaries_between
from snapshots.services import retention
from snapshots.services.bounds import missing_boundaries
from snapshots.services.retention import prune_snapshots
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc

NOW = utc(2026, 6, 1, 3)


@pytest.fixture
def history(settings, make_tx, make_wallet, make_token, wallet, token):
    """Three wallets × two tokens, snapshots for every daily boundary of May and hourly of 05-25..05-31."""
    settings.BALANCE_HOURLY_RETENTION_DAYS = 7
    settings.BALANCE_HISTORY_RETENTION_DAYS = 20
    usdc = make_token("USDC", decimals=6)
    for w in [wallet, make_wallet(), make_wallet()]:
        make_tx("buy", "1", at=utc(2026, 1, 1), on_wallet=w)
        make_tx("buy", "5", at=utc(2026, 1, 1), on_wallet=w, of_token=usdc)
    for b in boundaries_between("daily", utc(2026, 5, 1), utc(2026, 6, 1)):
        take_snapshot("daily", b, "scheduled")
    for b in boundaries_between("hourly", utc(2026, 5, 25), utc(2026, 5, 25, 5)):
        take_snapshot("hourly", b, "scheduled")


def as_ofs(period, model=BalanceSnapshot):
    return sorted(set(model.objects.filter(period=period).values_list("as_of", flat=True)))


def test_it_deletes_rows_and_runs_before_the_cutoff_and_keeps_the_row_exactly_at_it(history):
    result = prune_snapshots(now=NOW)
    # daily: cutoff = 2026-06-01 03:00 − 20 days = 2026-05-12 03:00; 05-12 00:00 is before it.
    assert as_ofs("daily") == list(boundaries_between("daily", utc(2026, 5, 13), utc(2026, 6, 1)))
    assert as_ofs("daily", SnapshotRun) == as_ofs("daily")
    # hourly: cutoff = 2026-05-25 03:00 exactly; the row at the cutoff stays.
    assert as_ofs("hourly") == [utc(2026, 5, 25, 3), utc(2026, 5, 25, 4), utc(2026, 5, 25, 5)]
    data = result.as_dict()
    assert data["status"] == "success"
    assert data["deleted"] == {"hourly": 3 * 6, "daily": 12 * 6, "weekly": 0, "monthly": 0}
    assert data["runs_deleted"]["daily"] == 12


def test_zero_keeps_forever(settings, history, monkeypatch):
    settings.BALANCE_HISTORY_RETENTION_DAYS = 0
    settings.BALANCE_HOURLY_RETENTION_DAYS = 0
    before = BalanceSnapshot.objects.count()
    monkeypatch.setattr(timezone, "now", lambda: NOW + timedelta(days=3650))  # ten years later
    result = prune_snapshots(now=NOW + timedelta(days=3650))
    assert BalanceSnapshot.objects.count() == before
    assert result.as_dict()["cutoffs"]["daily"] is None


def test_a_dry_run_counts_and_deletes_nothing(history):
    before = (BalanceSnapshot.objects.count(), SnapshotRun.objects.count())
    result = prune_snapshots(now=NOW, dry_run=True)
    assert (BalanceSnapshot.objects.count(), SnapshotRun.objects.count()) == before
    assert result.as_dict()["deleted"] == {"hourly": 18, "daily": 72, "weekly": 0, "monthly": 0}


def test_it_deletes_in_bounded_batches(monkeypatch, history):
    monkeypatch.setattr(retention, "PRUNE_BATCH_SIZE", 5)
    done = []
    result = prune_snapshots(now=NOW, progress=lambda deleted, total: done.append(deleted))
    batches = [b - a for a, b in pairwise([0, *done])]
    assert result.periods["daily"].rows == 72
    # A batch takes whole wallet summaries with their rows, two (4 rows) at a time: a third would not
    # fit in 5. Hourly's 9 expired summaries (18 rows) first, then daily's 36 (72 rows).
    assert max(batches) == 4
    assert batches[:5] == [4, 4, 4, 4, 2] and batches[6:] == [4] * 17
    assert BalanceSnapshot.objects.filter(period="daily", as_of__lt=utc(2026, 5, 12, 3)).count() == 0


def test_an_interrupted_cleanup_leaves_a_consistent_state(history):
    class Interrupted(Exception):
        pass

    def stop_after_first_batch(done, total):
        raise Interrupted

    with pytest.raises(Interrupted):
        prune_snapshots(now=NOW, batch_size=4, progress=stop_after_first_batch)

    # Hourly is pruned first and was interrupted there, in the middle of its oldest boundary.
    cutoff = utc(2026, 5, 25, 3)
    assert BalanceSnapshot.objects.filter(period="hourly", as_of__lt=cutoff).count() == 18 - 4
    # No completed marker remains in front of an expired, half-deleted boundary...
    assert not SnapshotRun.objects.filter(period="hourly", as_of__lt=cutoff).exists()
    # ...the retained boundaries are whole, with their markers...
    for b in [utc(2026, 5, 25, 3), utc(2026, 5, 25, 4), utc(2026, 5, 25, 5)]:
        assert BalanceSnapshot.objects.filter(period="hourly", as_of=b).count() == 6
        assert SnapshotRun.objects.filter(period="hourly", as_of=b, status="completed").exists()
    # ...catch-up would not re-create what is expired...
    assert all(b >= cutoff for b in missing_boundaries("hourly", NOW))
    # ...and the next cleanup finishes the job.
    prune_snapshots(now=NOW)
    assert as_ofs("hourly") == [utc(2026, 5, 25, 3), utc(2026, 5, 25, 4), utc(2026, 5, 25, 5)]
    assert as_ofs("daily") == as_ofs("daily", SnapshotRun)


def test_the_wallet_summaries_of_expired_boundaries_go_with_their_rows(history):
    assert as_ofs("daily", WalletSnapshot) == as_ofs("daily")
    dry = prune_snapshots(now=NOW, dry_run=True)
    assert dry.periods["daily"].summaries == 3 * 12  # three wallets, 05-01 .. 05-12 00:00
    result = prune_snapshots(now=NOW, batch_size=4)
    assert result.as_dict()["summaries_deleted"]["daily"] == 3 * 12
    assert as_ofs("daily", WalletSnapshot) == as_ofs("daily")


IMPOSSIBLE = [
    ("2099-01-01T00:00:00+00:00", "more than one day in the future"),
    ("0001-01-01T00:00:00+00:00", "before 2009-01-03"),
    ("0001-01-05T00:00:00+05:00", "before 2009-01-03"),
    ("soon", "Invalid isoformat string"),
]


def test_a_cleanup_for_an_impossible_time_is_refused_and_deletes_nothing(history):
    """A cleanup "as of 2099" would move every cutoff past every snapshot still inside retention."""
    before = (BalanceSnapshot.objects.count(), WalletSnapshot.objects.count(), SnapshotRun.objects.count())
    for scheduled_at, message in IMPOSSIBLE:
        result = tasks.cleanup_old_snapshots(scheduled_at=scheduled_at)
        assert result["status"] == "error" and message in result["error"], result
        assert (BalanceSnapshot.objects.count(), WalletSnapshot.objects.count(), SnapshotRun.objects.count()) == before


def test_a_cleanup_slightly_ahead_counts_as_now(history, monkeypatch):
    """Two nodes' clocks an hour apart: the run deletes what a run at now would, no more."""
    monkeypatch.setattr(timezone, "now", lambda: NOW)  # hourly cutoff: 05-25 03:00 (7 days)
    tasks.cleanup_old_snapshots(scheduled_at=(NOW + timedelta(hours=1)).isoformat())
    assert as_ofs("hourly") == [utc(2026, 5, 25, h) for h in (3, 4, 5)]  # 03:00 is not an hour early
