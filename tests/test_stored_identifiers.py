"""Identifier rules on every path that stores a row (docs/interfaces.md), and the data stored
before them: model validation (the admin's forms), database CHECKs that never fail `migrate`, a
system check that lists what breaks the rules, and merge_wallet_case_variants."""

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from bagtracker.checks import stored_rows_follow_the_identifier_rules
from bagtracker.models import Chain, Price, Token, Transaction, Wallet
from snapshots.models import Balance, BalanceSnapshot
from snapshots.periods import floor_boundary
from snapshots.services.exports import export_balances
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc

pytestmark = pytest.mark.django_db

ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example
TYPO = ADDRESS[:-1] + "D"  # one letter in the wrong case


def today():
    return floor_boundary("daily", timezone.now())


CLEAN_CONSTRAINTS = {
    "bagtracker_chain": "chain_slug_clean",
    "bagtracker_token": "token_symbol_clean",
    "bagtracker_wallet": "wallet_address_clean",
    "bagtracker_transaction": "transaction_tx_hash_clean",
}


def legacy(sql, params=()):
    """Write rows as an older version could have: the identifier CHECKs are dropped for the test's
    transaction (rolled back with it)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred trigger
        for table, name in CLEAN_CONSTRAINTS.items():
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        cursor.execute(sql, params)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def messages():
    return {w.id: w.msg for w in stored_rows_follow_the_identifier_rules(databases=["default"])}


# --- every path that writes --------------------------------------------------------------------------


def test_a_wallet_saved_anywhere_is_stored_in_eip_55_form(chain):
    wallet = Wallet.objects.create(chain=chain, address=ADDRESS.lower())
    assert Wallet.objects.get(pk=wallet.pk).address == ADDRESS


@pytest.mark.parametrize(
    "address, message",
    [
        ("\ufeff" + ADDRESS, "U+FEFF"),
        (TYPO, "wrong EIP-55 checksum"),
        ("=HYPERLINK(1)", "begins with '='"),
    ],
)
def test_the_admin_form_refuses_a_bad_address(chain, address, message):
    with pytest.raises(ValidationError) as refused:
        Wallet(chain=chain, address=address).full_clean()
    assert message in str(refused.value.message_dict["address"])


def test_the_admin_form_refuses_a_case_variant_of_a_stored_wallet(chain):
    stored = Wallet.objects.create(chain=chain, address=ADDRESS)
    Wallet.objects.filter(pk=stored.pk).update(address=ADDRESS.lower())  # stored before the rule
    with pytest.raises(ValidationError, match="merge_wallet_case_variants"):
        Wallet(chain=chain, address=ADDRESS).full_clean()


def test_the_admin_forms_refuse_bad_slugs_symbols_hashes_and_instants(chain, token, wallet):
    with pytest.raises(ValidationError, match="begins with '-'"):
        Chain(slug="-eth", name="x").full_clean()
    with pytest.raises(ValidationError, match=r"U\+200B"):
        Token(chain=chain, symbol="ETH\u200b").full_clean()
    tx = Transaction(wallet=wallet, token=token, kind="buy", amount=Decimal(1), timestamp=utc(2008, 12, 31))
    tx.tx_hash = "@SUM(1)"
    with pytest.raises(ValidationError) as refused:
        tx.full_clean()
    assert set(refused.value.message_dict) == {"tx_hash", "timestamp"}
    assert "before 2009-01-03" in refused.value.message_dict["timestamp"][0]
    with pytest.raises(ValidationError, match="more than one day in the future"):
        Price(token=token, as_of=utc(2099, 1, 1), price_usd=Decimal(1)).full_clean()


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO bagtracker_chain (slug, name) VALUES ('=cmd', 'x')",
        "INSERT INTO bagtracker_chain (slug, name) VALUES (E'eth\\u200b', 'x')",
        "INSERT INTO bagtracker_chain (slug, name) VALUES (' eth', 'x')",
        "UPDATE bagtracker_token SET symbol = E'\\ufeffETH'",
        "UPDATE bagtracker_wallet SET address = E'0x1\\n2'",
    ],
)
def test_the_database_refuses_what_the_forms_refuse(token, wallet, sql):
    with pytest.raises(IntegrityError, match="_clean"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


# --- data stored before the rules ----------------------------------------------------------------------


def test_migrate_does_not_fail_on_rows_that_break_the_rules(chain):
    legacy(
        "INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at) "
        "VALUES (%s, %s, '', true, now())",
        [chain.pk, "=evil"],
    )
    executor = MigrationExecutor(connection)
    executor.migrate([("bagtracker", "0002_transaction_integrity_trigger")])
    executor.loader.build_graph()
    executor.migrate([("bagtracker", "0003_identifier_rules")])
    assert Wallet.objects.filter(address="=evil").exists()
    with pytest.raises(IntegrityError), transaction.atomic():  # and new rows are held to the rule
        Wallet.objects.create(chain=chain, address="=evil2")


def test_the_system_check_lists_rows_that_break_the_rules(chain, token):
    lower = Wallet.objects.create(chain=chain, address=ADDRESS)
    Wallet.objects.filter(pk=lower.pk).update(address=ADDRESS.lower())
    checksummed = Wallet.objects.create(chain=chain, address=ADDRESS)
    legacy(
        "INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at) "
        "VALUES (%s, E'\\ufeff0xE', '', true, now())",
        [chain.pk],
    )
    legacy("UPDATE bagtracker_token SET symbol = '+cmd' WHERE id = %s", [token.pk])
    Transaction.objects.bulk_create(
        [Transaction(wallet=checksummed, token=token, kind="buy", amount=Decimal(1), timestamp=utc(1999, 1, 1))]
    )
    found = messages()
    assert "'\\ufeff0xE' (contains an invisible" in found["bagtracker.W005"]
    assert f"#{lower.pk} '{ADDRESS.lower()}' (is not in its EIP-55 checksummed form" in found["bagtracker.W005"]
    assert f"ethereum: wallets #{lower.pk}, #{checksummed.pk}" in found["bagtracker.W006"]
    assert "'+cmd' (begins with '+'" in found["bagtracker.W002"]
    assert "1999-01-01T00:00:00Z" in found["bagtracker.W007"]

    err = io.StringIO()
    call_command("check", "--database", "default", stderr=err, stdout=io.StringIO())
    assert "bagtracker.W006" in err.getvalue()


def test_a_clean_database_passes_the_check(make_tx):
    make_tx("buy", "1", price="10")
    assert messages() == {}


def test_a_csv_export_neutralises_a_stored_formula(chain, token):
    legacy(
        "INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at) "
        "VALUES (%s, '=HYPERLINK(\"http://evil.example\")', '', true, now())",
        [chain.pk],
    )
    wallet = Wallet.objects.get(address__startswith="=")
    Balance.objects.create(
        wallet=wallet, token=token, amount=Decimal(1), total_in=Decimal(1), total_out=0, realized_pnl_usd=Decimal(-5)
    )
    csv_text = "".join(export_balances())
    assert '\n"\'=HYPERLINK(""http://evil.example"")",ethereum,ETH,1,1,0,' in csv_text
    assert ",-5" in csv_text  # numbers are never altered
    json_text = "".join(export_balances(fmt="json"))
    assert '"wallet": "=HYPERLINK' in json_text


# --- merge_wallet_case_variants --------------------------------------------------------------------------


@pytest.fixture
def variants(chain, token, make_tx):
    """The same address as three wallets (checksummed, lower, upper case), as imports before the
    rule made them: the same purchase stored in two of them, the rest spread over all three."""
    wallets = []
    for n, spelling in enumerate((ADDRESS, ADDRESS.lower(), "0x" + ADDRESS[2:].upper())):
        wallet = Wallet.objects.create(chain=chain, address=f"placeholder{n}", name="")
        Wallet.objects.filter(pk=wallet.pk).update(address=spelling)
        wallets.append(Wallet.objects.get(pk=wallet.pk))
    checksummed, lower, upper = wallets
    make_tx("buy", "1", price="100", at=utc(2026, 1, 1), on_wallet=checksummed, tx_hash="0x1")
    make_tx("buy", "1", price="100", at=utc(2026, 1, 1), on_wallet=lower, tx_hash="0x1")  # the same, twice
    make_tx("buy", "2", price="200", at=utc(2026, 1, 2), on_wallet=lower, tx_hash="0x2")
    make_tx("sell", "0.5", price="300", at=utc(2026, 1, 3), on_wallet=checksummed, tx_hash="0x3")
    make_tx("buy", "4", price="50", at=utc(2026, 1, 3), on_wallet=upper)
    Wallet.objects.filter(pk=lower.pk).update(name="savings")
    take_snapshot("daily", today(), "manual")  # inside retention: re-taken after the merge
    return wallets


def test_case_variants_are_merged_into_the_checksummed_wallet(variants):
    checksummed, lower, upper = variants
    out = io.StringIO()
    call_command("merge_wallet_case_variants", stdout=out, stderr=io.StringIO())
    assert (
        f"ethereum: merged wallet(s) #{lower.pk}, #{upper.pk} into wallet {checksummed.pk} ({ADDRESS})"
        in out.getvalue()
    )
    assert (
        "2 transactions moved, 1 stored twice kept once, balances rebuilt, 1 snapshot boundaries re-taken"
        in out.getvalue()
    )
    (wallet,) = Wallet.objects.filter(address__iexact=ADDRESS)
    assert (wallet.pk, wallet.address, wallet.name) == (checksummed.pk, ADDRESS, "savings")
    assert sorted(wallet.transactions.values_list("tx_hash", flat=True), key=str) == ["0x1", "0x2", "0x3", None]
    assert Balance.objects.get(wallet=wallet).amount == Decimal("6.5")  # 1 + 2 - 0.5 + 4
    (row,) = BalanceSnapshot.objects.filter(period="daily", as_of=today(), token__symbol="ETH", wallet=wallet)
    assert (row.wallet_id, row.amount) == (wallet.pk, Decimal("6.5"))
    assert not BalanceSnapshot.objects.filter(wallet_id__in=[lower.pk, upper.pk]).exists()
    assert messages() == {}


def test_a_dry_run_writes_nothing(variants):
    before = list(Wallet.objects.order_by("pk").values_list("pk", "address"))
    out = io.StringIO()
    call_command("merge_wallet_case_variants", "--dry-run", "--chain", "ethereum", stdout=out)
    assert "would merge" in out.getvalue() and "dry run: nothing written" in out.getvalue()
    assert list(Wallet.objects.order_by("pk").values_list("pk", "address")) == before


def test_a_conflict_is_reported_and_its_group_left_alone(variants, make_tx):
    checksummed, lower, _ = variants
    make_tx("buy", "9", at=utc(2026, 1, 2), on_wallet=checksummed, tx_hash="0xclash")
    make_tx("buy", "8", at=utc(2026, 1, 2), on_wallet=lower, tx_hash="0xclash")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 address group"):
        call_command("merge_wallet_case_variants", stdout=io.StringIO(), stderr=err)
    assert "not merged: ethereum" in err.getvalue() and "different values" in err.getvalue()
    assert Wallet.objects.filter(address__iexact=ADDRESS).count() == 3 and lower.transactions.count() == 3


def test_a_lone_lower_case_address_is_rewritten(chain):
    wallet = Wallet.objects.create(chain=chain, address=ADDRESS)
    Wallet.objects.filter(pk=wallet.pk).update(address=ADDRESS.lower())
    out = io.StringIO()
    call_command("merge_wallet_case_variants", stdout=out)
    assert f"rewrote wallet {wallet.pk} ({ADDRESS}) in EIP-55 form" in out.getvalue()
    assert Wallet.objects.get(pk=wallet.pk).address == ADDRESS


def test_what_it_cannot_fix_is_named(chain):
    legacy(
        "INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at) "
        "VALUES (%s, E'\\ufeff0xE', '', true, now())",
        [chain.pk],
    )
    err = io.StringIO()
    call_command("merge_wallet_case_variants", stdout=io.StringIO(), stderr=err)
    assert "not fixed (needs a person): 1 wallet address(es) break the identifier rules" in err.getvalue()


def test_a_snapshot_run_recorded_in_the_future_by_older_code_is_listed():
    from snapshots.checks import future_snapshot_runs
    from snapshots.models import SnapshotRun

    assert future_snapshot_runs(databases=["default"]) == []
    run = SnapshotRun.objects.create(
        period="daily", as_of=utc(2099, 1, 1), source="manual", status="completed", started_at=timezone.now()
    )
    (warning,) = future_snapshot_runs(databases=["default"])
    assert warning.id == "snapshots.W001" and f"#{run.pk} daily 2099-01-01T00:00Z" in warning.msg
