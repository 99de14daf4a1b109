"""The database itself refuses what the domain forbids: a shell session, a bulk import or raw SQL
cannot store a row that a form would refuse (CHECK/UNIQUE constraints and the triggers of
migration 0002)."""

from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from bagtracker.models import Chain, Price, Token, Transaction, Wallet
from snapshots.models import Balance
from tests.conftest import utc

D = Decimal


@contextmanager
def refused(constraint):
    """Expect the database to refuse the statement, naming ``constraint``; the test goes on after."""
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        yield


@pytest.fixture
def solana(db):
    return Chain.objects.create(slug="solana", name="Solana")


# --- Chain, Token, Wallet, Price ------------------------------------------------------------------


def test_a_chain_slug_is_unique(chain):
    with refused("bagtracker_chain_slug"):
        Chain.objects.create(slug="ethereum", name="Another Ethereum")


@pytest.mark.parametrize("decimals", [0, 6, 18])
def test_token_decimals_from_0_to_18_are_accepted(chain, decimals):
    assert Token.objects.create(chain=chain, symbol=f"T{decimals}", decimals=decimals).decimals == decimals


@pytest.mark.parametrize("decimals, constraint", [(19, "token_decimals_0_18"), (-1, "decimals")])
def test_token_decimals_outside_0_to_18_are_refused(chain, decimals, constraint):
    with refused(constraint):
        Token.objects.create(chain=chain, symbol="BAD", decimals=decimals)
    assert not Token.objects.exists()


def test_a_token_symbol_is_unique_per_chain(chain, solana):
    Token.objects.create(chain=chain, symbol="USDC", decimals=6)
    Token.objects.create(chain=solana, symbol="USDC", decimals=6)  # another chain: fine
    with refused("token_unique_symbol_per_chain"):
        Token.objects.create(chain=chain, symbol="USDC", decimals=6)


def test_a_contract_address_is_unique_per_chain_but_natives_have_none(chain):
    Token.objects.create(chain=chain, symbol="ETH")
    Token.objects.create(chain=chain, symbol="WETH", contract_address="0xc02a")
    Token.objects.create(chain=chain, symbol="STETH")  # another token without an address: fine
    with refused("token_unique_contract_per_chain"):
        Token.objects.create(chain=chain, symbol="WETH2", contract_address="0xc02a")


def test_a_wallet_address_is_unique_per_chain(chain, solana):
    Wallet.objects.create(chain=chain, address="0xabc")
    Wallet.objects.create(chain=solana, address="0xabc")
    with refused("wallet_unique_address_per_chain"):
        Wallet.objects.create(chain=chain, address="0xabc")
    with refused("wallet_address_not_empty"):
        Wallet.objects.create(chain=chain, address="")


def test_a_price_is_unique_per_token_and_instant(token):
    Price.objects.create(token=token, as_of=utc(2026, 1, 1), price_usd=D(100))
    Price.objects.create(token=token, as_of=utc(2026, 1, 1, 1), price_usd=D(101))
    with refused("price_unique_token_as_of"):
        Price.objects.create(token=token, as_of=utc(2026, 1, 1), price_usd=D(102))


def test_a_price_is_not_negative(token):
    Price.objects.create(token=token, as_of=utc(2026, 1, 1), price_usd=D(0))
    with refused("price_not_negative"):
        Price.objects.create(token=token, as_of=utc(2026, 1, 2), price_usd=D("-0.000000000000000001"))


# --- Transaction ----------------------------------------------------------------------------------


def new_tx(wallet, token, **fields):
    row = {
        "wallet": wallet,
        "token": token,
        "kind": "buy",
        "status": "confirmed",
        "amount": D(1),
        "timestamp": utc(2026, 1, 1),
    }
    return Transaction.objects.create(**{**row, **fields})


def test_an_empty_tx_hash_is_refused_but_missing_ones_may_repeat(wallet, token):
    new_tx(wallet, token, tx_hash=None)
    new_tx(wallet, token, tx_hash=None)
    with refused("transaction_tx_hash_null_not_empty"):
        new_tx(wallet, token, tx_hash="")
    assert Transaction.objects.count() == 2


def test_the_full_18_places_fit_a_token_of_18_decimals(wallet, token):
    tx = new_tx(wallet, token, amount=D("0.000000000000000001"))
    tx.refresh_from_db()
    assert tx.amount == D("1e-18")


def test_an_update_to_more_places_than_the_token_allows_is_refused(wallet, make_token):
    usdc = make_token("USDC", decimals=6)
    tx = new_tx(wallet, usdc, amount=D("1.5"))
    with refused("transaction_amount_within_token_decimals"):
        Transaction.objects.filter(pk=tx.pk).update(amount=D("1.0000005"))


def test_moving_a_transaction_to_a_token_of_another_chain_is_refused(wallet, token, solana):
    tx = new_tx(wallet, token)
    sol = Token.objects.create(chain=solana, symbol="SOL", decimals=9)
    with refused("transaction_token_on_wallet_chain"):
        Transaction.objects.filter(pk=tx.pk).update(token=sol)


def test_token_decimals_cannot_shrink_below_stored_amounts(wallet, make_token):
    usdc = make_token("USDC", decimals=6)
    new_tx(wallet, usdc, amount=D("1.25"))
    new_tx(wallet, usdc, amount=D("3"), status="cancelled")  # every stored amount counts, any status
    with refused("token_decimals_cover_amounts"):
        Token.objects.filter(pk=usdc.pk).update(decimals=1)
    Token.objects.filter(pk=usdc.pk).update(decimals=2)  # still holds 1.25
    Token.objects.filter(pk=usdc.pk).update(decimals=18)  # growing is always fine
    assert Token.objects.get(pk=usdc.pk).decimals == 18


def test_a_token_with_transactions_keeps_its_chain(wallet, token, solana):
    unused = Token.objects.create(chain=token.chain, symbol="UNUSED")
    new_tx(wallet, token)
    with refused("token_chain_fixed"):
        Token.objects.filter(pk=token.pk).update(chain=solana)
    Token.objects.filter(pk=unused.pk).update(chain=solana)  # no transactions: fine


def test_a_wallet_with_transactions_keeps_its_chain(make_wallet, token, solana):
    used, unused = make_wallet(), make_wallet()
    new_tx(used, token)
    with refused("wallet_chain_fixed"):
        Wallet.objects.filter(pk=used.pk).update(chain=solana)
    Wallet.objects.filter(pk=unused.pk).update(chain=solana)
    assert Wallet.objects.get(pk=used.pk).chain_id == token.chain_id


def test_the_rules_hold_for_raw_sql_too(wallet, make_token):
    usdc = make_token("USDC", decimals=6)
    with refused("transaction_amount_within_token_decimals"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bagtracker_transaction (wallet_id, token_id, kind, status, amount, timestamp, created_at)"
            " VALUES (%s, %s, 'buy', 'confirmed', 0.0000001, now(), now())",
            [wallet.pk, usdc.pk],
        )


# --- Balance ----------------------------------------------------------------------------------------


def test_a_balance_is_unique_per_wallet_and_token_and_never_negative(wallet, token):
    row = {
        "wallet": wallet,
        "token": token,
        "amount": D(1),
        "total_in": D(1),
        "total_out": D(0),
        "realized_pnl_usd": D(0),
    }
    Balance.objects.create(**row)
    with refused("balance_unique_wallet_token"):
        Balance.objects.create(**row)
    Balance.objects.all().delete()
    with refused("balance_amount_not_negative"):
        Balance.objects.create(**{**row, "amount": D(-1)})


# --- Validation before the database (the admin's form errors) ---------------------------------------


@pytest.mark.parametrize(
    "decimals, amount, allowed",
    [
        (0, "1234567890123456789012345678.5", False),  # 29 digits: normalize() would round the .5 away
        (6, "123456789012345678901234567890.000000000000000001", False),
        (18, "123456789012345678901234567890.000000000000000001", True),
        (2, "1.500000", True),
        (0, "100", True),
    ],
)
def test_validation_counts_decimal_places_exactly(wallet, make_token, decimals, amount, allowed):
    usdx = make_token("USDX", decimals=decimals)
    tx = Transaction(wallet=wallet, token=usdx, kind="buy", amount=D(amount), timestamp=utc(2026, 1, 1))
    if allowed:
        tx.full_clean()
        tx.save()  # and the database agrees
    else:
        with pytest.raises(ValidationError) as error:
            tx.full_clean()
        assert error.value.message_dict == {"amount": [f"USDX allows at most {decimals} decimal places"]}
        with refused("transaction_amount_within_token_decimals"):
            tx.save()
