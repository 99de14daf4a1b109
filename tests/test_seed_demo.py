"""manage.py seed_demo: deterministic, realistic, never-negative, and a no-op with --if-empty on a used database."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count

from bagtracker.models import Chain, Price, Token, Transaction, Wallet
from bagtracker.services.demo import DemoError, seed_demo
from snapshots.models import Balance
from snapshots.services.ledger import recalculate_all_wallets
from tests.conftest import utc

pytestmark = pytest.mark.django_db

END = utc(2026, 3, 1)


def content_hash():
    """A digest of every seeded row by its natural keys (not ids or created_at)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT md5(string_agg(line, E'\\n' ORDER BY line)) FROM (
                SELECT concat_ws('|', 'tx', c.slug, w.address, w.name, k.symbol, t.kind, t.status, t.amount,
                                 t.price_usd, t.timestamp, t.tx_hash) AS line
                FROM bagtracker_transaction t JOIN bagtracker_wallet w ON w.id = t.wallet_id
                JOIN bagtracker_chain c ON c.id = w.chain_id JOIN bagtracker_token k ON k.id = t.token_id
                UNION ALL
                SELECT concat_ws('|', 'price', c.slug, k.symbol, k.decimals, k.contract_address, p.as_of, p.price_usd)
                FROM bagtracker_price p JOIN bagtracker_token k ON k.id = p.token_id
                JOIN bagtracker_chain c ON c.id = k.chain_id
                UNION ALL
                SELECT concat_ws('|', 'balance', w.address, k.symbol, b.amount, b.avg_buy_price_usd, b.realized_pnl_usd)
                FROM snapshots_balance b JOIN bagtracker_wallet w ON w.id = b.wallet_id
                JOIN bagtracker_token k ON k.id = b.token_id
            ) rows
            """
        )
        return cursor.fetchone()[0]


def wipe():
    Balance.objects.all().delete()
    Transaction.objects.all().delete()
    Price.objects.all().delete()
    Wallet.objects.all().delete()
    Token.objects.all().delete()
    Chain.objects.all().delete()


def test_the_same_seed_gives_identical_rows_and_another_seed_other_rows():
    seed_demo(wallets=6, transactions=20, days=10, seed=3, end=END)
    first = content_hash()
    wipe()
    seed_demo(wallets=6, transactions=20, days=10, seed=3, end=END)
    assert content_hash() == first
    wipe()
    seed_demo(wallets=6, transactions=20, days=10, seed=4, end=END)
    assert content_hash() != first


def test_it_builds_a_realistic_portfolio():
    result = seed_demo(wallets=30, transactions=40, days=30, seed=1, end=END)
    assert result.wallets == 30 == Wallet.objects.count()
    assert result.transactions == Transaction.objects.count()
    assert 30 * 20 <= result.transactions <= 30 * 60  # about 40 per wallet
    assert {"ethereum", "solana", "arbitrum"} <= set(Wallet.objects.values_list("chain__slug", flat=True))
    assert {18, 9, 6, 5} <= set(Token.objects.values_list("decimals", flat=True))
    assert Token.objects.filter(contract_address="").exists() and Token.objects.exclude(contract_address="").exists()
    kinds = dict(Transaction.objects.values_list("kind").annotate(n=Count("id")))
    statuses = dict(Transaction.objects.values_list("status").annotate(n=Count("id")))
    assert set(kinds) == {"buy", "sell", "transfer_in", "transfer_out"}
    assert set(statuses) == {"confirmed", "pending", "failed", "cancelled"}
    assert statuses["confirmed"] > 0.8 * result.transactions
    trades = Transaction.objects.filter(kind__in=["buy", "sell"])
    assert trades.filter(price_usd__isnull=False).count() > 0.85 * trades.count()
    assert not Transaction.objects.filter(status="pending", timestamp__lt=END - timedelta(days=2)).exists()
    assert Transaction.objects.filter(timestamp__gte=END).count() == 0


def test_price_history_is_hourly_for_the_last_week_and_daily_before():
    seed_demo(wallets=1, transactions=1, days=30, seed=1, end=END)
    eth = Price.objects.filter(token__chain__slug="ethereum", token__symbol="ETH")
    assert eth.filter(as_of__gte=END - timedelta(days=7)).count() == 7 * 24 + 1
    assert eth.filter(as_of__lt=END - timedelta(days=7)).count() == 23
    assert set(eth.values_list("source", flat=True)) == {"demo"}


def test_balances_are_current_and_never_negative():
    result = seed_demo(wallets=40, transactions=60, days=20, seed=9, end=END)
    confirmed_pairs = Transaction.objects.filter(status="confirmed").values("wallet", "token").distinct().count()
    assert result.balances_written == confirmed_pairs == Balance.objects.count()
    assert not Balance.objects.filter(amount__lt=0).exists()
    repair = recalculate_all_wallets()
    assert (repair.failures, repair.balances_written, repair.balances_removed) == ([], 0, 0)


def test_seeding_the_same_seed_twice_is_refused_and_another_seed_adds_wallets():
    seed_demo(wallets=3, transactions=5, days=5, seed=1, end=END)
    with pytest.raises(DemoError, match="the demo wallets of this seed already exist"):
        seed_demo(wallets=3, transactions=5, days=5, seed=1, end=END)
    seed_demo(wallets=3, transactions=5, days=5, seed=2, end=END)
    assert Wallet.objects.count() == 6


def test_the_command_seeds_then_does_nothing_with_if_empty():
    out = io.StringIO()
    call_command(
        "seed_demo",
        "--wallets",
        "4",
        "--transactions",
        "10",
        "--days",
        "5",
        "--end",
        "2026-03-01",
        "--if-empty",
        stdout=out,
    )
    assert out.getvalue().startswith("Seeded 4 wallets, ")
    state = content_hash()
    out = io.StringIO()
    call_command("seed_demo", "--if-empty", stdout=out)
    assert out.getvalue() == "The database already has wallets: seed_demo --if-empty did nothing.\n"
    assert content_hash() == state
    with pytest.raises(CommandError, match="already exist"):
        call_command("seed_demo", "--wallets", "4", "--transactions", "10", "--days", "5", "--end", "2026-03-01")
