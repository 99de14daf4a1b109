"""The snapshot commands, each once through call_command, and their answers to bad input."""

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.periods import floor_boundary
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def holding(make_tx, make_price, wallet, token):
    make_tx("buy", "1.5", price="2000", at=utc(2026, 1, 1))
    make_price("0.000000000000000001", at=utc(2026, 1, 2))  # prints exactly, never as 1E-18
    return wallet


class TestCreateSnapshots:
    def test_it_takes_the_boundary_of_at_and_says_so(self, holding):
        out, _ = run("create_snapshots", "--period", "daily", "--at", "2026-03-02T10:30:00+02:00")
        assert out.startswith("Snapshotted 1 balances for daily 2026-03-02T00:00Z in ")
        run_row = SnapshotRun.objects.get()
        assert (run_row.as_of, run_row.source) == (utc(2026, 3, 2), "manual")

    def test_without_at_it_takes_the_current_boundary(self, holding):
        run("create_snapshots", "--period", "hourly")
        assert SnapshotRun.objects.get().as_of == floor_boundary("hourly", timezone.now())

    def test_a_disabled_period_says_so_writes_nothing_and_exits_zero(self, settings, holding):
        settings.BALANCE_WEEKLY_SNAPSHOTS = False
        out, _ = run("create_snapshots", "--period", "weekly", "--at", "2026-03-02")
        assert "weekly snapshots are disabled (BALANCE_WEEKLY_SNAPSHOTS is false); nothing written" in out
        assert not BalanceSnapshot.objects.exists() and not SnapshotRun.objects.exists()

    def test_force_takes_a_disabled_period(self, settings, holding):
        settings.BALANCE_SNAPSHOT_ENABLED = False
        out, _ = run("create_snapshots", "--period", "weekly", "--at", "2026-03-02", "--force")
        assert out.startswith("Snapshotted 1 balances for weekly 2026-03-01T00:00Z")

    @pytest.mark.parametrize(
        "args, message",
        [
            (["--period", "yearly"], "invalid choice: 'yearly'"),
            (["--period", "daily", "--at", "yesterday"], "--at: 'yesterday' is not an ISO 8601 date or time"),
            (["--period", "daily", "--at", "2026-13-01"], "is not an ISO 8601 date or time"),
            (["--period", "daily", "--at", "2999-01-01"], "is in the future"),
        ],
    )
    def test_bad_input_is_one_clear_line(self, holding, args, message):
        with pytest.raises(CommandError, match=message):
            run("create_snapshots", *args)
        assert not SnapshotRun.objects.exists()


class TestBackfillSnapshots:
    def test_it_takes_every_boundary_in_the_range_from_the_first_transaction(self, holding, settings):
        settings.BALANCE_HISTORY_RETENTION_DAYS = 0  # kept forever
        out, err = run(
            "backfill_snapshots", "--period", "daily", "--since", "2025-12-30", "--until", "2026-01-03T12:00Z"
        )
        assert out.splitlines() == [
            "Clamped: since 2025-12-30T00:00Z is before the first confirmed transaction of any wallet "
            "(2026-01-01T00:00Z): clamped to it",
            "Backfilled 3 daily boundaries (2026-01-01T00:00Z to 2026-01-03T00:00Z): 2 balances, 2 written, "
            + out.splitlines()[-1].split(" written, ", 1)[1],
        ]
        assert sorted(BalanceSnapshot.objects.values_list("as_of", flat=True)) == [utc(2026, 1, 2), utc(2026, 1, 3)]
        assert set(BalanceSnapshot.objects.values_list("source", flat=True)) == {"backfill"}
        assert err == ""

    def test_it_clamps_to_retention_and_says_so(self, holding):
        out, _ = run("backfill_snapshots", "--period", "daily", "--since", "2025-12-30")
        cutoff = timezone.now() - timedelta(days=90)
        assert "is older than daily retention (90 days, BALANCE_HISTORY_RETENTION_DAYS): clamped to" in out
        assert SnapshotRun.objects.filter(period="daily").count() == 90
        assert not SnapshotRun.objects.filter(period="daily", as_of__lt=cutoff).exists()  # cleanup would delete them

    def test_it_says_nothing_about_a_range_it_did_not_clamp(self, holding):
        since = (timezone.now() - timedelta(days=2)).date().isoformat()
        out, err = run("backfill_snapshots", "--period", "daily", "--since", since)
        assert "Clamped" not in out and err == ""
        assert SnapshotRun.objects.filter(period="daily").count() >= 2

    def test_it_can_be_limited_to_a_wallet(self, holding, make_wallet, make_tx, settings):
        settings.BALANCE_MONTHLY_RETENTION_DAYS = 0  # kept forever
        other = make_wallet()
        make_tx("buy", "1", at=utc(2026, 1, 1), on_wallet=other)
        out, _ = run(
            "backfill_snapshots",
            "--period",
            "monthly",
            "--since",
            "2026-02-01",
            "--until",
            "2026-03-01",
            "--wallet",
            str(other.id),
        )
        assert f"for wallet {other.id}" in out
        assert set(BalanceSnapshot.objects.values_list("wallet_id", flat=True)) == {other.id}
        assert not SnapshotRun.objects.exists()  # a partial run completes no boundary

    @pytest.mark.parametrize(
        "args, message",
        [
            (["--period", "daily", "--since", "2026-03-02", "--until", "2026-03-01"], "is after --until"),
            (["--period", "daily", "--since", "March"], "--since: 'March' is not an ISO 8601"),
            (["--period", "daily", "--since", "2026-01-01", "--wallet", "999999"], "wallet 999999 does not exist"),
            (["--period", "fortnightly", "--since", "2026-01-01"], "invalid choice"),
            (["--period", "daily"], "the following arguments are required: --since"),
        ],
    )
    def test_bad_input_is_one_clear_line(self, holding, args, message):
        with pytest.raises(CommandError, match=message):
            run("backfill_snapshots", *args)
        assert not BalanceSnapshot.objects.exists()


class TestCleanupSnapshots:
    def test_dry_run_prints_counts_per_period_and_deletes_nothing(self, holding):
        take_snapshot("daily", utc(2026, 1, 2), "backfill")
        out, _ = run("cleanup_snapshots", "--dry-run")
        assert "daily: would delete 1 rows and 1 runs before " in out
        assert "hourly: would delete 0 rows" in out
        assert "Dry run: would delete 1 expired snapshot rows" in out
        assert BalanceSnapshot.objects.count() == 1

    def test_it_deletes_expired_rows(self, settings, holding):
        settings.BALANCE_MONTHLY_RETENTION_DAYS = 0
        take_snapshot("daily", utc(2026, 1, 2), "backfill")
        take_snapshot("monthly", utc(2026, 2, 1), "backfill")
        out, _ = run("cleanup_snapshots")
        assert "daily: deleted 1 rows and 1 runs" in out
        assert "monthly: kept forever (BALANCE_MONTHLY_RETENTION_DAYS=0)" in out
        assert list(BalanceSnapshot.objects.values_list("period", flat=True)) == ["monthly"]


class TestExportSnapshots:
    @pytest.fixture
    def snapshots(self, holding, make_tx):
        make_tx("buy", "0.000000000000000001", at=utc(2026, 1, 2, 12))
        for day in [2, 3, 4]:
            take_snapshot("daily", utc(2026, 1, day), "backfill")

    def test_csv_with_exact_decimals(self, snapshots, wallet):
        out, _ = run("export_snapshots", "--period", "daily", "--since", "2026-01-03", "--until", "2026-01-03")
        rows = list(csv.reader(io.StringIO(out)))
        assert rows == [
            [
                "period",
                "as_of",
                "wallet",
                "chain",
                "token",
                "amount",
                "price_usd",
                "value_usd",
                "cost_basis_usd",
                "realized_pnl_usd",
                "cost_basis_method",
                "source",
            ],
            [
                "daily",
                "2026-01-03T00:00:00Z",
                wallet.address,
                "ethereum",
                "ETH",
                "1.500000000000000001",
                "0.000000000000000001",
                "0.000000000000000002",
                "3000",  # 1.5 @2000; the unpriced 10^-18 has an unknown cost, counted as 0
                "0",
                "average",
                "backfill",
            ],
        ]

    def test_summaries_instead_of_rows(self, snapshots, wallet):
        out, _ = run("export_snapshots", "--period", "daily", "--since", "2026-01-03", "--summaries")
        rows = list(csv.reader(io.StringIO(out)))
        assert rows == [
            ["period", "as_of", "wallet", "chain", "value_usd", "cost_basis_usd", "realized_pnl_usd", "unpriced_rows"],
            ["daily", "2026-01-03T00:00:00Z", wallet.address, "ethereum", "0.000000000000000002", "3000", "0", "0"],
            ["daily", "2026-01-04T00:00:00Z", wallet.address, "ethereum", "0.000000000000000002", "3000", "0", "0"],
        ]

    def test_json(self, snapshots):
        out, _ = run("export_snapshots", "--period", "daily", "--format", "json")
        data = json.loads(out)
        assert [r["as_of"] for r in data] == ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]
        assert Decimal(data[0]["amount"]) == Decimal("1.5")
        assert data[0]["value_usd"] == "0.000000000000000002"  # 1.5e-18 rounded half up

    def test_an_empty_export_is_valid(self, db):
        assert json.loads(run("export_snapshots", "--period", "hourly", "--format", "json")[0]) == []

    def test_since_after_until_is_refused(self, db):
        with pytest.raises(CommandError, match="is after --until"):
            run("export_snapshots", "--period", "daily", "--since", "2026-02-01", "--until", "2026-01-01")


class TestRecalculateWithSnapshots:
    def test_it_rebuilds_the_wallets_retained_snapshots(self, holding, make_wallet, make_tx, wallet, token):
        other = make_wallet()
        make_tx("buy", "1", at=utc(2026, 1, 1), on_wallet=other)
        recent = floor_boundary("daily", timezone.now())
        take_snapshot("daily", recent, "scheduled")
        take_snapshot("daily", utc(2026, 1, 2), "backfill")  # outside retention: left alone
        BalanceSnapshot.objects.update(amount=42)  # drifted
        out, _ = run("recalculate", "--wallet", str(wallet.id), "--snapshots")
        assert "rebuilt 1 retained snapshot boundaries of wallet" in out
        assert BalanceSnapshot.objects.get(wallet=wallet, as_of=recent).amount == Decimal("1.5")
        assert BalanceSnapshot.objects.get(wallet=other, as_of=recent).amount == 42  # another wallet
        assert BalanceSnapshot.objects.get(wallet=wallet, as_of=utc(2026, 1, 2)).amount == 42  # expired

    def test_all_wallets(self, holding, wallet):
        recent = floor_boundary("hourly", timezone.now())
        take_snapshot("hourly", recent, "scheduled")
        BalanceSnapshot.objects.update(amount=42)
        out, _ = run("recalculate", "--all", "--snapshots")
        assert "rebuilt 1 retained snapshot boundaries of all wallets" in out
        assert BalanceSnapshot.objects.get().amount == Decimal("1.5")

    def test_unknown_wallet(self, db):
        with pytest.raises(CommandError, match="wallet 424242 does not exist"):
            run("recalculate", "--wallet", "424242", "--snapshots")


def test_export_snapshots_shows_completed_boundaries_only(holding, wallet):
    # A partial backfill (one wallet) never completes its boundary: its rows are not exported.
    take_snapshot("daily", utc(2026, 1, 3), "backfill", WalletScope(wallets=[wallet.pk]))
    assert BalanceSnapshot.objects.filter(as_of=utc(2026, 1, 3)).exists()
    out, _ = run("export_snapshots", "--period", "daily")
    assert out.splitlines()[1:] == []
    take_snapshot("daily", utc(2026, 1, 3), "manual")
    out, _ = run("export_snapshots", "--period", "daily", "--summaries")
    assert len(out.splitlines()) == 2
