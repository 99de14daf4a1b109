"""Catch-up: a scheduled run takes its own boundary, then the ones its period missed (downtime, a lost
message), newest first."""

from datetime import timedelta

from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.periods import boundaries_between
from snapshots.services.snapshots import run_snapshots, take_snapshot
from tests.conftest import utc


def completed(period):
    return sorted(SnapshotRun.objects.filter(period=period, status="completed").values_list("as_of", flat=True))


def test_the_first_run_takes_only_its_own_boundary(make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    result = run_snapshots("daily", at=utc(2026, 3, 2, 0, 15))
    assert [b.as_of for b in result.boundaries] == [utc(2026, 3, 2)]
    assert completed("daily") == [utc(2026, 3, 2)]


def test_after_a_three_day_outage_it_fills_exactly_the_missing_boundaries(make_tx, wallet):
    make_tx("buy", "1", at=utc(2026, 3, 1, 7))
    for hour in range(24):  # hourly ran normally until 2026-03-02 23:00
        run_snapshots("hourly", at=utc(2026, 3, 2, hour, 5))
    make_tx("buy", "1", at=utc(2026, 3, 4, 12, 30))  # during the outage
    before = dict(SnapshotRun.objects.values_list("as_of", "finished_at"))

    result = run_snapshots("hourly", at=utc(2026, 3, 6, 0, 5))  # back three days later

    missing = list(boundaries_between("hourly", utc(2026, 3, 3), utc(2026, 3, 5, 23)))
    assert len(missing) == 72
    assert [b.as_of for b in result.boundaries] == [utc(2026, 3, 6), *reversed(missing)]  # own first, newest first
    assert result.status == "success" and len(result.caught_up) == 72
    assert completed("hourly") == list(boundaries_between("hourly", utc(2026, 3, 2), utc(2026, 3, 6)))
    # Nothing else: the boundaries taken before the outage were not re-taken.
    assert dict(SnapshotRun.objects.filter(as_of__in=before).values_list("as_of", "finished_at")) == before
    assert not BalanceSnapshot.objects.filter(as_of__lt=utc(2026, 3, 2)).exists()
    amounts = dict(BalanceSnapshot.objects.filter(period="hourly").values_list("as_of", "amount"))
    assert amounts[utc(2026, 3, 4, 12)] == 1 and amounts[utc(2026, 3, 4, 13)] == 2


def test_a_single_lost_boundary_between_completed_ones_is_filled(make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    for day in [1, 2, 4]:
        take_snapshot("daily", utc(2026, 3, day), "scheduled")
    result = run_snapshots("daily", at=utc(2026, 3, 5, 0, 15))
    assert [b.as_of for b in result.boundaries] == [utc(2026, 3, 5), utc(2026, 3, 3)]


def test_catch_up_stays_inside_retention(settings, make_tx):
    settings.BALANCE_HOURLY_RETENTION_DAYS = 1
    make_tx("buy", "1", at=utc(2026, 1, 1))
    take_snapshot("hourly", utc(2026, 3, 1), "scheduled")
    result = run_snapshots("hourly", at=utc(2026, 3, 10, 12, 5))
    # The cutoff is as_of − 1 day = 2026-03-09 12:00; a boundary exactly at the cutoff is kept.
    assert result.boundaries[-1].as_of == utc(2026, 3, 9, 12)  # the oldest, taken last
    assert len(result.boundaries) == 25


def test_catch_up_can_be_turned_off(settings, make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    take_snapshot("daily", utc(2026, 3, 1), "scheduled")
    settings.BALANCE_SNAPSHOT_CATCH_UP = False
    assert [b.as_of for b in run_snapshots("daily", at=utc(2026, 3, 5)).boundaries] == [utc(2026, 3, 5)]
    assert [b.as_of for b in run_snapshots("daily", at=utc(2026, 3, 7), catch_up=True).boundaries] == [
        utc(2026, 3, 7),
        utc(2026, 3, 6),
        utc(2026, 3, 4),
        utc(2026, 3, 3),
        utc(2026, 3, 2),
    ]


def test_a_manual_run_takes_only_the_boundary_asked_for(make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    take_snapshot("daily", utc(2026, 3, 1), "scheduled")
    result = run_snapshots("daily", at=utc(2026, 3, 5, 8), source="manual")
    assert [b.as_of for b in result.boundaries] == [utc(2026, 3, 5)]


def test_a_boundary_completed_meanwhile_by_another_worker_is_skipped(make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    take_snapshot("daily", utc(2026, 3, 1), "scheduled")
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    result = take_snapshot("daily", utc(2026, 3, 2), "scheduled", skip_if_completed=True)
    assert (result.status, result.reason) == ("skipped", "already_completed")


def test_an_interrupted_catch_up_keeps_what_it_finished(make_tx, refuse_snapshot_rows):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    take_snapshot("daily", utc(2026, 3, 1), "scheduled")
    refuse_snapshot_rows(utc(2026, 3, 3))  # from 03-03 on, the database refuses the rows
    result = run_snapshots("daily", at=utc(2026, 3, 4, 0, 15))
    assert [(b.as_of.day, b.status) for b in result.boundaries] == [(4, "error"), (3, "error"), (2, "success")]
    assert result.status == "partial_success"
    assert result.as_dict()["failed_boundaries"][0]["as_of"] == "2026-03-04T00:00:00Z"
    assert completed("daily") == [utc(2026, 3, 1), utc(2026, 3, 2)]
    assert SnapshotRun.objects.filter(status="failed").count() == 2
    # Once the database accepts rows again, the next run takes the boundaries still missing.
    refuse_snapshot_rows(None)
    result = run_snapshots("daily", at=utc(2026, 3, 5, 0, 15))
    assert [b.as_of.day for b in result.boundaries] == [5, 4, 3]
    assert completed("daily")[-1] - completed("daily")[0] == timedelta(days=4)


def test_every_boundary_failing_is_an_error(make_tx, refuse_snapshot_rows):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    refuse_snapshot_rows(utc(2026, 1, 1))
    assert run_snapshots("daily", at=utc(2026, 3, 4)).as_dict()["status"] == "error"
