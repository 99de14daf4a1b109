"""Retention by partitions (docs/snapshots.md, "Retention"): the jobs create the range partitions of
the states ahead; cleanup drops whole expired partitions, and a dropped partition never held a
state read at a boundary inside retention."""

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from snapshots.models import BalanceSnapshot, BalanceState
from snapshots.periods import boundaries_between
from snapshots.services import partitions
from snapshots.services.retention import prune_snapshots
from snapshots.services.snapshots import take_snapshot
from tests.conftest import index_columns, utc

NOW = utc(2026, 6, 1, 3)
CUTOFF = NOW - timedelta(days=20)  # 2026-05-12 03:00


def partitions_of(parent):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            [parent],
        )
        return [name for (name,) in cursor.fetchall()]


def range_partitions(period):
    return [name for name in partitions_of(f"snapshots_balancestate_{period}") if not name.endswith("_open")]


def latest_valid_to(partition):
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT max(valid_to), count(*) FROM {}").format(sql.Identifier(partition)))
        return cursor.fetchone()


def rows_from(as_of):
    return sorted(
        BalanceSnapshot.objects.filter(period="daily", as_of__gte=as_of).values_list(
            "wallet_id", "token_id", "as_of", "amount", "value_usd", "cost_basis_usd"
        )
    )


@pytest.fixture
def months_of_history(settings, make_tx, make_wallet, make_price, wallet):
    """A wallet trading once a month (its states close in February … May) and a quiet one whose
    state has been open since February; daily boundaries every four days, February to June."""
    settings.BALANCE_HISTORY_RETENTION_DAYS = 20
    # Range partitions that an earlier test of this database committed (a transactional test's flush
    # empties tables, it drops none) would be dropped by the cleanup below too: start without them
    # (dropped inside this test's transaction, so they are back afterwards).
    with connection.cursor() as cursor:
        for name in range_partitions("daily"):
            cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    quiet = make_wallet()
    make_tx("buy", "1", price=100, at=utc(2026, 1, 5), on_wallet=wallet)
    make_tx("buy", "7", price=100, at=utc(2026, 1, 5), on_wallet=quiet)
    for month in (2, 3, 4, 5):
        make_tx("buy", "1", price=100 + month, at=utc(2026, month, 10, 12), on_wallet=wallet)
    make_price(100, utc(2026, 1, 5))
    for n, b in enumerate(boundaries_between("daily", utc(2026, 2, 1), NOW)):
        if n % 4 == 0:
            take_snapshot("daily", b, "scheduled")
    return wallet, quiet


def test_a_snapshot_creates_the_partitions_of_its_range_and_the_next(wallet, make_tx):
    make_tx("buy", "1", at=utc(2026, 3, 1))
    take_snapshot("hourly", utc(2026, 3, 2, 23), "scheduled")
    take_snapshot("daily", utc(2026, 3, 31), "scheduled")
    assert {"snapshots_balancestate_hourly_20260302", "snapshots_balancestate_hourly_20260303"} <= set(
        range_partitions("hourly")
    )
    assert {"snapshots_balancestate_daily_202603", "snapshots_balancestate_daily_202604"} <= set(
        range_partitions("daily")
    )
    assert partitions.ensure("daily", utc(2026, 3, 31)) == 0  # idempotent


def indexed_columns(parent):
    """{partition: the column lists of its indexes but the primary key} of the partitions of ``parent``."""
    return {name: index_columns(name, "NOT i.indisprimary") for name in partitions_of(parent)}


def test_range_partitions_are_indexed_by_valid_to_and_token_and_the_open_ones_are_not(wallet, make_tx):
    """Cleanup trims a half-expired range by valid_to, and a token's states are found by index in
    the ranges; the open partitions, where every state a boundary opens is inserted, have neither
    (migrations 0018, 0020): a hot page for every state opened, and a WAL record."""
    make_tx("buy", "1", at=utc(2026, 3, 1))
    take_snapshot("hourly", utc(2026, 3, 2, 23), "scheduled")
    indexed = indexed_columns("snapshots_balancestate_hourly")
    # (other tests' partitions may be there too)
    assert {"snapshots_balancestate_hourly_20260302", "snapshots_balancestate_hourly_open"} <= set(indexed)
    for name, columns in indexed.items():
        assert columns == ([] if name.endswith("_open") else [["period", "valid_to"], ["token_id"]]), name
    assert indexed_columns("snapshots_balancestate") == {  # (the period partitions themselves)
        f"snapshots_balancestate_{period}": [] for period in ("hourly", "daily", "weekly", "monthly")
    }


def test_cleanup_drops_expired_partitions_and_never_a_state_valid_inside_retention(months_of_history):
    _, quiet = months_of_history
    before = rows_from(CUTOFF)
    held = {name: latest_valid_to(name) for name in range_partitions("daily")}
    assert {"snapshots_balancestate_daily_202602", "snapshots_balancestate_daily_202605"} <= set(held)
    open_since = BalanceState.objects.values_list("valid_from", flat=True).get(wallet_id=quiet.pk, period="daily")
    assert open_since < CUTOFF - timedelta(days=90)

    dry = prune_snapshots(now=NOW, dry_run=True)
    assert dry.periods["daily"].partitions == [
        "snapshots_balancestate_daily_202602",
        "snapshots_balancestate_daily_202603",
        "snapshots_balancestate_daily_202604",
    ]
    assert set(range_partitions("daily")) >= set(held)  # a dry run drops nothing

    result = prune_snapshots(now=NOW)
    dropped = result.periods["daily"].partitions
    assert dropped == dry.periods["daily"].partitions
    assert result.as_dict()["partitions_dropped"]["daily"] == 3
    for name in dropped:
        latest, states = held[name]
        assert states > 0 and latest <= CUTOFF  # it held only states of expired boundaries
    assert not set(dropped) & set(range_partitions("daily"))
    # The half-expired range is trimmed; nothing valid inside retention went anywhere.
    assert not BalanceState.objects.filter(period="daily", valid_to__lte=CUTOFF).exists()
    assert rows_from(CUTOFF) == before
    assert not BalanceSnapshot.objects.filter(period="daily", as_of__lt=CUTOFF).exists()
    # The quiet wallet's state, open since February, is still read at every retained boundary.
    assert (
        BalanceState.objects.values_list("valid_from", flat=True).get(wallet_id=quiet.pk, period="daily") == open_since
    )
    # Cleanup creates ahead too: the range of now and the next, for every period.
    assert {"snapshots_balancestate_daily_202606", "snapshots_balancestate_daily_202607"} <= set(
        range_partitions("daily")
    )
    assert "snapshots_balancestate_hourly_20260602" in range_partitions("hourly")


@pytest.mark.django_db(transaction=True)
def test_a_partition_a_reader_holds_is_left_to_the_next_cleanup(monkeypatch):
    old = utc(2026, 1, 10)
    partitions.ensure("hourly", old, ahead=0)
    (name,) = [n for n in range_partitions("hourly") if n.endswith("20260110")]
    monkeypatch.setattr(partitions, "DROP_LOCK_TIMEOUT", "100ms")
    with psycopg.connect(**connection.get_connection_params()) as reader:
        reader.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(sql.Identifier(name)))
        # Not granted in time: no error, the partition stays (nothing in it is readable anyway).
        assert partitions.drop_expired("hourly", utc(2026, 2, 1)) == []
        assert name in range_partitions("hourly")
    assert name in partitions.drop_expired("hourly", utc(2026, 2, 1))
    assert name not in range_partitions("hourly")
