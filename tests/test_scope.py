"""WalletScope: one type says which wallets the ledger and a snapshot write cover."""

from decimal import Decimal

import pytest
from django.db import connection

from bagtracker.models import Transaction
from snapshots.models import Balance, BalanceSnapshot, SnapshotRun
from snapshots.services import ledger
from snapshots.services.scope import MAX_WALLET_ID, WalletScope
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc

D = Decimal


def rendered(composable):
    with connection.cursor() as cursor:
        return composable.as_string(cursor.connection)


def test_the_default_scope_is_every_wallet(db):
    scope = WalletScope()
    assert scope.is_everything
    assert rendered(scope.condition("b")) == "TRUE"
    assert rendered(scope.covered_condition("wa")) == "FALSE"
    assert scope.params() == {
        "lo": 0,
        "hi": MAX_WALLET_ID,
        "wallets": None,
        "tokens": None,
        "excluded_wallets": [],
        "covered_wallets": [],
    }


def test_wallets_are_sorted_once_each_and_bound_the_id_range(db):
    scope = WalletScope(wallets=[7, 3, 7, 5])
    assert scope.wallets == (3, 5, 7)
    assert scope.bounds == (3, 7)
    assert not scope.is_everything
    assert rendered(scope.condition("t")) == (
        '"t"."wallet_id" BETWEEN %(lo)s AND %(hi)s AND "t"."wallet_id" = ANY(%(wallets)s::bigint[])'
    )
    assert rendered(scope.wallets_condition("b", "id")).startswith('"b"."id" BETWEEN')


def test_pairs_keep_each_wallet_beside_its_token(db):
    scope = WalletScope(wallets=[9, 2, 9, 2], tokens=[1, 4, 1, 3])
    assert (scope.wallets, scope.tokens) == ((2, 2, 9), (3, 4, 1))
    assert scope.wallet_ids == [2, 9]
    assert "unnest(%(wallets)s::bigint[], %(tokens)s::bigint[])" in rendered(scope.condition("b"))
    assert "token_id" not in rendered(scope.wallets_condition("b", "id"))  # a wallet row has no token


def test_an_excluding_scope_is_unbounded_and_leaves_some_out(db):
    scope = WalletScope(excluding=[4, 4, 1])
    assert (scope.excluding, scope.is_bounded, scope.is_everything) == ((1, 4), False, False)
    assert rendered(scope.condition("e")) == '"e"."wallet_id" <> ALL(%(excluded_wallets)s::bigint[])'


def test_an_id_range_is_a_shard_of_wallets(db):
    scope = WalletScope(id_range=(10, 19))
    assert scope.bounds == (10, 19)
    assert not scope.is_everything
    assert rendered(scope.condition("m")) == '"m"."wallet_id" BETWEEN %(lo)s AND %(hi)s'
    assert WalletScope(id_range=(10, 19), wallets=[12, 15]).bounds == (12, 15)
    assert WalletScope(id_range=(10, 19), wallets=[5, 30]).bounds == (10, 19)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id_range": (5, 4)}, "is empty"),
        ({"tokens": [1]}, "give the wallets too"),
        ({"wallets": [1, 2], "tokens": [1]}, "pairs need one of each"),
    ],
)
def test_a_malformed_scope_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WalletScope(**kwargs)


def test_scopes_compare_by_value():
    assert WalletScope(wallets=[2, 1]) == WalletScope(wallets=(1, 2, 2))
    assert WalletScope(wallets=[1]) != WalletScope(excluding=[1])
    assert repr(WalletScope(id_range=(1, 9))) == "WalletScope(id_range=(1, 9))"


def test_a_snapshot_of_an_id_range_writes_only_those_wallets_and_completes_nothing(make_tx, make_wallet, wallet):
    others = [make_wallet() for _ in range(3)]
    for each in [wallet, *others]:
        make_tx("buy", "1", at=utc(2026, 3, 1), on_wallet=each)
    ids = sorted(w.id for w in [wallet, *others])

    result = take_snapshot("daily", utc(2026, 3, 2), "manual", WalletScope(id_range=(ids[1], ids[2])))

    assert (result.rows, result.partial) == (2, True)
    written = BalanceSnapshot.objects.filter(period="daily", as_of=utc(2026, 3, 2))
    assert sorted(written.values_list("wallet_id", flat=True)) == ids[1:3]
    assert not SnapshotRun.objects.exists()


def test_the_ledger_rebuilds_an_id_range_and_nothing_outside_it(make_tx, make_wallet, wallet):
    others = [make_wallet() for _ in range(2)]
    for each in [wallet, *others]:
        make_tx("buy", "2", at=utc(2026, 3, 1), on_wallet=each)
    ids = sorted(w.id for w in [wallet, *others])
    Transaction.objects.filter(wallet_id__in=ids).update(amount=D(5))  # behind the ledger's back
    with connection.cursor() as cursor:
        written, removed, refused = ledger._write(cursor, WalletScope(id_range=(ids[1], ids[2])))
    assert (written, removed, refused) == (2, 0, [])
    assert dict(Balance.objects.values_list("wallet_id", "amount")) == {ids[0]: D(2), ids[1]: D(5), ids[2]: D(5)}


def test_the_ledger_refuses_a_scope_it_cannot_walk(db):
    with connection.cursor() as cursor, pytest.raises(ValueError, match="the ledger walks"):
        ledger._write(cursor, WalletScope(excluding=[1]))
