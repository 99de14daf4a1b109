"""History edits heal themselves: a back-dated write marks the retained snapshots it made stale, in
its own transaction, and refresh_stale_snapshots re-takes exactly those rows and clears the marks."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from bagtracker.models import Price, Transaction
from bagtracker.services.imports import ImportRejected, import_prices, import_transactions
from bagtracker.services.transactions import delete_transactions, save_transaction
from bagtracker.signals import history_written
from snapshots.models import BalanceSnapshot, StaleMark
from snapshots.services import healing, jobs
from snapshots.services.healing import refresh_stale_snapshots
from snapshots.services.snapshots import run_snapshots, take_snapshot
from tests.conftest import utc

D = Decimal
NOW = utc(2026, 3, 10, 12)  # every boundary below is inside retention at this instant
DAYS = [utc(2026, 3, day) for day in (2, 3, 4, 5)]


def chart(wallet, token=None, period="daily"):
    rows = BalanceSnapshot.objects.filter(wallet=wallet, period=period, as_of__in=DAYS)
    if token is not None:
        rows = rows.filter(token=token)
    return {r.as_of.day: r.amount for r in rows}


def values(wallet, period="daily"):
    return {r.as_of.day: r.value_usd for r in BalanceSnapshot.objects.filter(wallet=wallet, period=period)}


def marks():
    return {(m.wallet_id, m.token_id): (m.since, m.until) for m in StaleMark.objects.all()}


def take_days(days=DAYS):
    for day in days:
        take_snapshot("daily", day, "scheduled")


def csv(*lines):
    return io.BytesIO("\n".join(lines).encode())


def test_a_back_dated_sell_marks_its_wallet_and_the_refresh_makes_5_5_10_5_read_5_5_5_5(make_tx, wallet, token):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days([DAYS[2]])  # the 4th, taken before the edit
    sell = make_tx("sell", "5", at=utc(2026, 3, 1, 18))  # back-dated: before every boundary
    take_days([DAYS[0], DAYS[1], DAYS[3]])  # taken after it
    assert chart(wallet) == {2: 5, 3: 5, 4: 10, 5: 5}
    assert marks() == {(wallet.id, None): (sell.timestamp, None)}

    result = refresh_stale_snapshots(now=NOW)

    assert chart(wallet) == {2: 5, 3: 5, 4: 5, 5: 5}
    assert (result.status, result.marks, result.settled, len(result.boundaries)) == ("success", 1, 1, 4)
    assert result.written == 1  # only the stale row changed
    assert marks() == {}


def test_a_write_after_every_boundary_marks_nothing(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("buy", "1", at=utc(2026, 3, 6))
    make_tx("buy", "1", at=utc(2026, 3, 6), status="pending")
    assert marks() == {}


def test_writes_before_any_boundary_mark_nothing(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    assert marks() == {}


def test_marks_coalesce_to_the_earliest_instant_and_record_each_write(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("buy", "1", at=utc(2026, 3, 3, 12))
    first = StaleMark.objects.get()
    make_tx("buy", "1", at=utc(2026, 3, 2, 12))
    make_tx("buy", "1", at=utc(2026, 3, 4, 12))
    mark = StaleMark.objects.get()
    assert mark.since == utc(2026, 3, 2, 12)
    assert mark.generation == first.generation + 2


def test_an_admin_edit_marks_both_the_old_and_the_new_instant_and_both_wallets(make_tx, make_wallet, wallet, token):
    other = make_wallet()
    tx = make_tx("buy", "10", at=utc(2026, 3, 3, 9))
    take_days()
    tx.timestamp, tx.wallet = utc(2026, 3, 4, 9), other
    save_transaction(tx)
    assert marks() == {(wallet.id, None): (utc(2026, 3, 3, 9), None), (other.id, None): (utc(2026, 3, 4, 9), None)}

    refresh_stale_snapshots(now=NOW)
    assert chart(wallet) == {}
    assert chart(other) == {5: 10}
    assert marks() == {}


def test_an_edit_that_changes_nothing_the_ledger_reads_marks_nothing(make_tx, wallet):
    tx = make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    tx.tx_hash = "0xabc"
    save_transaction(tx)
    assert marks() == {}


def test_a_delete_marks_and_heals(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    extra = make_tx("buy", "2", at=utc(2026, 3, 3, 9))
    take_days()
    delete_transactions(Transaction.objects.filter(pk=extra.pk))
    refresh_stale_snapshots(now=NOW)
    assert chart(wallet) == {2: 10, 3: 10, 4: 10, 5: 10}
    assert marks() == {}


def test_a_back_dated_import_marks_in_its_own_transaction(make_tx, wallet, token):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    import_transactions(
        csv(
            "wallet,chain,token,kind,status,amount,price_usd,timestamp,tx_hash",
            f"{wallet.address},ethereum,ETH,sell,confirmed,4,,2026-03-02T12:00:00Z,",
        )
    )
    assert marks() == {(wallet.id, None): (utc(2026, 3, 2, 12), None)}
    refresh_stale_snapshots(now=NOW)
    assert chart(wallet) == {2: 10, 3: 6, 4: 6, 5: 6}


def test_a_refused_import_leaves_no_mark(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    with pytest.raises(ImportRejected):
        import_transactions(
            csv(
                "wallet,chain,token,kind,status,amount,price_usd,timestamp,tx_hash",
                f"{wallet.address},ethereum,ETH,sell,confirmed,40,,2026-03-02T12:00:00Z,",
            )
        )
    assert marks() == {}


def test_a_past_price_refreshes_the_holders_until_the_next_price(make_tx, make_wallet, make_price, wallet, token):
    other = make_wallet()
    make_tx("buy", "2", price="10", at=utc(2026, 3, 1, 9))
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1, 9), on_wallet=other)
    make_price("30", utc(2026, 3, 4))
    take_days()
    assert values(wallet) == {2: 20, 3: 20, 4: 60, 5: 60}

    import_prices(csv("chain,token,as_of,price_usd", "ethereum,ETH,2026-03-03T00:00:00Z,15"))
    assert marks() == {(None, token.id): (utc(2026, 3, 3), utc(2026, 3, 4))}
    result = refresh_stale_snapshots(now=NOW)

    assert values(wallet) == {2: 20, 3: 30, 4: 60, 5: 60}
    assert values(other) == {2: 10, 3: 15, 4: 30, 5: 30}
    assert len(result.boundaries) == 1  # only the 3rd: the 4th has its own price
    assert marks() == {}


def test_a_back_dated_priced_trade_is_the_token_price_of_every_holder_until_the_first_price(
    make_tx, make_wallet, make_price, wallet, token
):
    other = make_wallet()
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1, 9))
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1, 9), on_wallet=other)
    make_price("50", utc(2026, 3, 5))
    take_days()
    make_tx("buy", "1", price="20", at=utc(2026, 3, 2, 12), on_wallet=other)
    assert marks() == {
        (other.id, None): (utc(2026, 3, 2, 12), None),
        (None, token.id): (utc(2026, 3, 2, 12), utc(2026, 3, 5)),
    }
    refresh_stale_snapshots(now=NOW)
    assert values(wallet) == {2: 10, 3: 20, 4: 20, 5: 50}
    assert values(other) == {2: 10, 3: 40, 4: 40, 5: 100}


def test_an_admin_price_edit_marks_the_old_and_new_range(make_price, make_tx, wallet, token):
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1, 9))
    price = make_price("30", utc(2026, 3, 4))
    take_days()
    Price.objects.filter(pk=price.pk).update(as_of=utc(2026, 3, 3))
    assert marks() == {(None, token.id): (utc(2026, 3, 3), None)}
    refresh_stale_snapshots(now=NOW)
    assert values(wallet) == {2: 10, 3: 30, 4: 30, 5: 30}


def test_a_deactivated_wallet_keeps_its_past_rows_and_they_are_refreshed(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    wallet.is_active = False
    wallet.save()
    make_tx("sell", "5", at=utc(2026, 3, 3, 9))
    refresh_stale_snapshots(now=NOW)
    assert chart(wallet) == {2: 10, 3: 10, 4: 5, 5: 5}
    assert sorted(wallet.summaries.filter(period="daily").values_list("as_of__day", "rows")) == [
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 1),
    ]


def test_a_back_dated_first_transaction_adds_an_active_wallet_to_completed_boundaries(make_tx, make_wallet, wallet):
    newcomer, sleeper = make_wallet(), make_wallet(is_active=False)
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("buy", "3", at=utc(2026, 3, 3, 9), on_wallet=newcomer)
    make_tx("buy", "3", at=utc(2026, 3, 3, 9), on_wallet=sleeper)
    refresh_stale_snapshots(now=NOW)
    assert chart(newcomer) == {4: 3, 5: 3}
    assert chart(sleeper) == {}  # not covered when the boundaries were taken, not active now
    assert marks() == {}


def test_only_retained_boundaries_are_refreshed(make_tx, wallet, settings):
    settings.BALANCE_HISTORY_RETENTION_DAYS = 7
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("sell", "5", at=utc(2026, 3, 1, 18))
    result = refresh_stale_snapshots(now=utc(2026, 3, 11, 12))  # cutoff: the 4th, 12:00
    assert chart(wallet) == {2: 10, 3: 10, 4: 10, 5: 5}
    assert len(result.boundaries) == 1 and marks() == {}


def test_a_write_during_the_refresh_keeps_its_mark(make_tx, wallet):
    """The refresh settles a mark only if its generation did not move since it read it."""
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("sell", "1", at=utc(2026, 3, 1, 18))
    mark = StaleMark.objects.get()
    with connection.cursor() as cursor:  # what a concurrent write's trigger does
        cursor.execute("UPDATE snapshots_stalemark SET generation = generation + 1 WHERE id = %s", [mark.pk])
    from snapshots.services import healing

    real = healing.StaleMark.objects.only

    def stale_read(*fields):
        return [StaleMark(id=mark.pk, generation=mark.generation)]

    healing.StaleMark.objects.only = stale_read
    try:
        refresh_stale_snapshots(now=NOW)
    finally:
        healing.StaleMark.objects.only = real
    assert StaleMark.objects.filter(pk=mark.pk).exists()
    assert chart(wallet) == {2: 9, 3: 9, 4: 9, 5: 9}
    refresh_stale_snapshots(now=NOW)
    assert marks() == {}


def test_a_failed_boundary_keeps_the_mark_at_it(make_tx, wallet, refuse_snapshot_rows):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("sell", "5", at=utc(2026, 3, 1, 18))
    refuse_snapshot_rows(DAYS[2])
    result = refresh_stale_snapshots(now=NOW)
    assert result.status == "partial_success"  # the 4th and the 5th were refused
    assert chart(wallet) == {2: 5, 3: 5, 4: 10, 5: 10}
    assert StaleMark.objects.get().since == DAYS[1] + timedelta(microseconds=1)
    refuse_snapshot_rows(None)
    refresh_stale_snapshots(now=NOW)
    assert chart(wallet) == {2: 5, 3: 5, 4: 5, 5: 5}
    assert marks() == {}


def test_the_command_refreshes_and_says_so(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("sell", "5", at=utc(2026, 3, 1, 18))
    out = io.StringIO()
    call_command("refresh_snapshots", stdout=out)
    assert out.getvalue().startswith("Refreshed ")
    assert "1 stale marks" in out.getvalue()


def test_a_scheduled_run_also_refreshes_what_is_still_marked(make_tx, wallet):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("sell", "5", at=utc(2026, 3, 1, 18))  # its queued refresh was lost

    result = run_snapshots("daily", at=utc(2026, 3, 6, 0, 15), source="scheduled")

    assert result.as_dict()["refreshed"]["settled"] == 1
    assert chart(wallet) == {2: 5, 3: 5, 4: 5, 5: 5}
    assert marks() == {}
    assert run_snapshots("daily", at=utc(2026, 3, 6, 0, 15), source="manual").refreshed is None


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_an_admin_price_for_the_past_marks_its_token_and_tells_the_snapshots_app(
    fast_hasher, admin_client, make_tx, wallet, token
):
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1, 9))
    take_days()
    sent = []
    history_written.connect(lambda sender, **kwargs: sent.append(sender), weak=False, dispatch_uid="test")
    try:
        response = admin_client.post(
            "/admin/bagtracker/price/add/",
            {"token": token.pk, "as_of_0": "2026-03-03", "as_of_1": "00:00:00", "price_usd": "30", "source": "admin"},
        )
    finally:
        history_written.disconnect(dispatch_uid="test")
    assert response.status_code == 302
    assert sent == [Price]
    assert marks() == {(None, token.id): (utc(2026, 3, 3), None)}


def test_the_refresh_is_queued_once_per_transaction_and_only_when_something_is_marked(
    make_tx, wallet, django_capture_on_commit_callbacks, monkeypatch
):
    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    # (the test's own transaction never commits: forget what make_tx queued for its commit)
    connection.run_on_commit = [c for c in connection.run_on_commit if c[1] is not healing._queue_refresh]
    with django_capture_on_commit_callbacks() as callbacks:
        healing.refresh_at_commit()
        healing.refresh_at_commit()
    assert callbacks == [healing._queue_refresh]

    queued = []
    monkeypatch.setattr(jobs, "queue_job", queued.append)
    healing._queue_refresh()  # nothing marked: nothing queued
    make_tx("sell", "1", at=utc(2026, 3, 1, 18))
    healing._queue_refresh()
    assert queued == ["refresh_stale_snapshots"]


def test_the_refresh_also_heals_the_wallet_summaries(make_tx, wallet):
    from snapshots.models import WalletSnapshot

    make_tx("buy", "10", price="10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("sell", "5", price="30", at=utc(2026, 3, 3, 9))  # back-dated: realizes 100 from the 4th on
    refresh_stale_snapshots(now=NOW)
    summaries = WalletSnapshot.objects.filter(wallet=wallet, period="daily").order_by("as_of")
    assert [(s.as_of.day, s.realized_pnl_usd, s.cost_basis_usd) for s in summaries] == [
        (2, 0, 100),
        (3, 0, 100),
        (4, 100, 50),
        (5, 100, 50),
    ]


def test_the_refresh_job_is_a_plain_function_returning_its_counts(make_tx, wallet):
    from snapshots import tasks

    make_tx("buy", "10", at=utc(2026, 3, 1, 9))
    take_days()
    make_tx("sell", "5", at=utc(2026, 3, 1, 18))
    result = tasks.refresh_stale_snapshots()  # now: March is outside the default retention
    assert (result["status"], result["marks"], result["settled"], result["boundaries"]) == ("success", 1, 1, 0)
    assert marks() == {}
