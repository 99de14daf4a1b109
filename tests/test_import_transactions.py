"""manage.py import_transactions: all or nothing, line numbers, idempotence, balances in the same transaction."""

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from bagtracker.models import Chain, Token, Transaction, Wallet
from bagtracker.services.imports import ImportRejected, import_transactions
from snapshots.models import Balance
from tests.conftest import utc
from tests.csv_factory import HEADER, database_state, transactions_csv

D = Decimal
pytestmark = pytest.mark.django_db

BUY = "0xabc,ethereum,ETH,buy,confirmed,2,100,2026-01-01T00:00:00Z,0xh1"


def run(*lines, header=HEADER, raw=None):
    data = raw if raw is not None else "\n".join([header, *lines]).encode() + b"\n"
    return import_transactions(io.BytesIO(data))


def refused(*lines, **kwargs):
    """Run an import that must be refused; assert it changed nothing; return the rejection."""
    before = database_state()
    with pytest.raises(ImportRejected) as caught:
        run(*lines, **kwargs)
    assert database_state() == before
    return caught.value


def test_it_imports_rows_and_creates_missing_chains_wallets_and_tokens():
    result = run(
        BUY,
        "0xabc,ethereum,USDC,transfer_in,confirmed,50.5,,2026-01-01T01:00:00Z,",
        "SoLaNa1,solana,SOL,buy,pending,3,150.25,2026-01-02T00:00:00+02:00,sig1",
    )
    assert (result.rows, result.inserted, result.skipped) == (3, 3, 0)
    assert (result.chains_created, result.wallets_created, result.tokens_created) == (2, 2, 3)
    assert list(Chain.objects.values_list("slug", "name")) == [("ethereum", "Ethereum"), ("solana", "Solana")]
    assert set(Token.objects.values_list("symbol", "decimals")) == {("ETH", 18), ("USDC", 18), ("SOL", 18)}
    sol = Transaction.objects.get(tx_hash="sig1")
    assert (sol.wallet.address, sol.wallet.chain.slug, sol.status) == ("SoLaNa1", "solana", "pending")
    assert sol.timestamp == utc(2026, 1, 1, 22)  # stored in UTC
    assert Transaction.objects.get(token__symbol="USDC").price_usd is None


def test_it_uses_existing_wallets_and_tokens(wallet, make_token):
    make_token("USDC", decimals=6)
    result = run(f"{wallet.address},ethereum,USDC,buy,confirmed,10.123456,1,2026-01-01T00:00:00Z,")
    assert (result.chains_created, result.wallets_created, result.tokens_created) == (0, 0, 0)
    assert wallet.transactions.get().amount == D("10.123456")


def test_it_updates_balances_in_the_same_import():
    run(
        BUY,
        "0xabc,ethereum,ETH,buy,confirmed,1,130,2026-01-02T00:00:00Z,0xh2",
        "0xabc,ethereum,ETH,sell,confirmed,1.5,150,2026-01-03T00:00:00Z,0xh3",
        "0xabc,ethereum,ETH,sell,failed,100,150,2026-01-04T00:00:00Z,0xh4",
    )
    b = Balance.objects.get()
    assert (b.amount, b.total_in, b.total_out) == (D("1.5"), D(3), D("1.5"))
    assert b.avg_buy_price_usd == D(110)
    assert b.avg_sell_price_usd == D(150)
    assert b.realized_pnl_usd == D(60)


def test_reimporting_the_same_file_adds_nothing():
    data = transactions_csv(500, wallets=20).encode()
    first = import_transactions(io.BytesIO(data))
    state = database_state()
    second = import_transactions(io.BytesIO(data))
    assert first.inserted == 500
    assert (second.rows, second.inserted, second.skipped, second.wallets_updated) == (500, 0, 500, 0)
    assert database_state() == state


def test_a_repeated_row_with_a_tx_hash_is_stored_once():
    result = run(BUY, BUY)
    assert (result.inserted, result.skipped) == (1, 1)
    assert Balance.objects.get().amount == D(2)


def test_identical_rows_without_tx_hash_are_separate_trades_and_reimport_still_adds_nothing():
    row = "0xabc,ethereum,ETH,buy,confirmed,1,100,2026-01-01T00:00:00Z,"
    assert run(row, row).inserted == 2
    assert run(row, row).inserted == 0
    assert run(row, row, row).inserted == 1  # one more copy than stored
    assert Balance.objects.get().amount == D(3)


def test_the_same_values_written_differently_are_the_same_row():
    run("0xabc,ethereum,ETH,buy,confirmed,1.50,100,2026-01-01T02:00:00+02:00,")
    assert run("0xabc,ethereum,ETH,buy,confirmed,1.5,100.0,2026-01-01T00:00:00Z,").inserted == 0


def test_a_repeated_tx_hash_with_different_values_is_refused_with_its_line():
    error = refused(BUY, "0xabc,ethereum,ETH,buy,confirmed,3,100,2026-01-01T00:00:00Z,0xh1")
    assert error.line == 3
    assert "same wallet, token, tx_hash and kind as line 2" in error.reason


def test_a_stored_tx_hash_with_different_values_is_refused():
    run(BUY)
    error = refused("0xabc,ethereum,ETH,buy,pending,2,100,2026-01-01T00:00:00Z,0xh1")
    assert error.line == 2
    assert "already stored as transaction" in error.reason


@pytest.mark.parametrize(
    "row, reason",
    [
        ("0xabc,ethereum,ETH,buy,confirmed,2,100,2026-01-01T00:00:00Z", "expected 9 fields"),
        ("0xabc,ethereum,ETH,buy,confirmed,abc,100,2026-01-01T00:00:00Z,", "amount 'abc' is not a number"),
        ("0xabc,ethereum,ETH,buy,confirmed,NaN,100,2026-01-01T00:00:00Z,", "not a finite number"),
        ("0xabc,ethereum,ETH,buy,confirmed,Infinity,100,2026-01-01T00:00:00Z,", "not a finite number"),
        ("0xabc,ethereum,ETH,buy,confirmed,1e400,100,2026-01-01T00:00:00Z,", "401 integer digits; at most 60"),
        ("0xabc,ethereum,ETH,buy,confirmed," + "9" * 61 + ",1,2026-01-01T00:00:00Z,", "at most 60"),
        ("0xabc,ethereum,ETH,buy,confirmed,0,100,2026-01-01T00:00:00Z,", "must be greater than 0"),
        ("0xabc,ethereum,ETH,buy,confirmed,-1,100,2026-01-01T00:00:00Z,", "must be greater than 0"),
        ("0xabc,ethereum,ETH,buy,confirmed,0.0000000000000000001,1,2026-01-01T00:00:00Z,", "19 decimal places"),
        ("0xabc,ethereum,ETH,buy,confirmed,1,-5,2026-01-01T00:00:00Z,", "price_usd -5 must not be negative"),
        ("0xabc,ethereum,ETH,buy,confirmed,1,1" + "0" * 20 + ",2026-01-01T00:00:00Z,", "at most 20"),
        ("0xabc,ethereum,ETH,buy,confirmed,1,nan,2026-01-01T00:00:00Z,", "not a finite number"),
        ("0xabc,ethereum,ETH,purchase,confirmed,1,100,2026-01-01T00:00:00Z,", "unknown kind 'purchase'"),
        ("0xabc,ethereum,ETH,buy,done,1,100,2026-01-01T00:00:00Z,", "unknown status 'done'"),
        ("0xabc,ethereum,ETH,buy,confirmed,1,100,2026-13-01T00:00:00Z,", "not an ISO 8601 date-time"),
        ("0xabc,ethereum,ETH,buy,confirmed,1,100,yesterday,", "not an ISO 8601 date-time"),
        ("0xabc,ethereum,ETH,buy,confirmed,1,100,2026-01-01T00:00:00,", "has no UTC offset"),
        (",ethereum,ETH,buy,confirmed,1,100,2026-01-01T00:00:00Z,", "wallet is empty"),
        ("0xabc,Ether eum,ETH,buy,confirmed,1,100,2026-01-01T00:00:00Z,", "chain 'ether eum' may contain only"),
        ("0xabc,ethereum,,buy,confirmed,1,100,2026-01-01T00:00:00Z,", "token is empty"),
        ("0xabc,ethereum,ETH,buy,confirmed,1,100,2026-01-01T00:00:00Z," + "f" * 129, "longer than 128"),
        ('0xabc,ethereum,ETH,buy,confirmed,"1,100,2026-01-01T00:00:00Z,', "a quoted field is never closed"),
        ('0xabc,ethereum,ETH,buy,confirmed,"1"x,100,2026-01-01T00:00:00Z,', "malformed CSV"),
    ],
)
def test_a_bad_row_is_refused_with_its_line_and_nothing_is_written(row, reason):
    error = refused(BUY, row)
    assert error.line == 3
    assert reason in error.reason


def test_an_amount_with_more_places_than_the_token_allows_is_refused(make_token, wallet):
    make_token("USDC", decimals=6)
    error = refused(f"{wallet.address},ethereum,USDC,buy,confirmed,1.1234567,1,2026-01-01T00:00:00Z,")
    assert (error.line, error.reason) == (2, "amount 1.1234567 has 7 decimal places; USDC on ethereum allows 6")


def test_a_sale_that_would_make_the_running_amount_negative_is_refused_with_its_line():
    error = refused(
        BUY,
        "0xabc,ethereum,ETH,sell,confirmed,1,100,2026-01-02T00:00:00Z,0xh2",
        "0xabc,ethereum,ETH,sell,confirmed,1.5,100,2026-01-03T00:00:00Z,0xh3",
    )
    assert error.line == 4
    assert "would make a running amount negative" in error.reason
    assert "(-0.5)" in error.reason


def test_running_order_is_by_time_not_by_line():
    error = refused(
        "0xabc,ethereum,ETH,sell,confirmed,1,100,2026-01-01T00:00:00Z,0xh2",
        "0xabc,ethereum,ETH,buy,confirmed,5,100,2026-01-02T00:00:00Z,0xh3",
    )
    assert error.line == 2


def test_an_imported_sale_that_makes_a_stored_later_sale_negative_is_blamed(wallet, token, make_tx):
    make_tx("buy", "1", at=utc(2026, 1, 1))
    make_tx("sell", "1", at=utc(2026, 1, 3))
    error = refused(f"{wallet.address},ethereum,ETH,sell,confirmed,0.5,,2026-01-02T00:00:00Z,")
    assert error.line == 2
    assert f"wallet {wallet.pk}" in error.reason


def test_a_bad_row_at_the_end_of_a_long_file_writes_nothing():
    text = transactions_csv(3000, wallets=50) + "0xabc,ethereum,ETH,buy,confirmed,1,1,2026-01-01T00:00:00,\n"
    error = refused(raw=text.encode())
    assert error.line == 3002
    assert "has no UTC offset" in error.reason


def test_an_empty_file_is_refused():
    error = refused(raw=b"")
    assert error.line is None
    assert "the file is empty; expected a header line: wallet,chain,token" in error.reason


def test_a_header_without_rows_is_refused():
    error = refused(raw=(HEADER + "\n\n").encode())
    assert "header but no rows" in error.reason


@pytest.mark.parametrize(
    "header, reason",
    [
        ("wallet,chain,token,kind,status,amount,price_usd,timestamp", "missing column(s) tx_hash"),
        (HEADER + ",notes", "unknown column(s) 'notes'"),
        (HEADER + ",kind", "column 'kind' appears twice"),
        (HEADER.replace(",", ";"), "separated by ';'; separate columns with commas"),
        (HEADER.replace(",", "\t"), "separated by tab"),
    ],
)
def test_a_bad_header_is_refused_on_line_1(header, reason):
    error = refused(BUY, header=header)
    assert error.line == 1
    assert reason in error.reason


def test_a_utf8_bom_crlf_endings_any_column_order_and_blank_lines_are_accepted():
    header = "tx_hash,timestamp,price_usd,amount,status,kind,token,chain,wallet"
    data = "\ufeff" + header + "\r\n\r\n" + "0xh1,2026-01-01T00:00:00Z,100,2,confirmed,buy,ETH,ethereum,0xabc\r\n"
    assert run(raw=data.encode("utf-8")).inserted == 1
    assert Balance.objects.get().amount == D(2)


def test_line_numbers_count_blank_lines():
    error = refused(BUY, "", "", "0xabc,ethereum,ETH,buy,confirmed,0,1,2026-01-01T00:00:00Z,")
    assert error.line == 5


def test_bytes_that_are_not_utf8_are_refused_with_their_line():
    data = (
        HEADER + "\n" + BUY + "\n"
    ).encode() + "0xabc,ethereum,ÉTH,buy,confirmed,1,1,2026-01-01T00:00:00Z,\n".encode("latin-1")
    error = refused(raw=data)
    assert error.line == 3
    assert "byte 0xc9 at column 16 is not UTF-8" in error.reason


def test_a_multibyte_token_symbol_is_kept_exactly():
    run("0xabc,ethereum,ÉTH,buy,confirmed,1,1,2026-01-01T00:00:00Z,")
    assert Token.objects.get().symbol == "ÉTH"


def test_the_command_imports_a_file_and_prints_a_summary(tmp_path):
    path = tmp_path / "transactions.csv"
    path.write_text(HEADER + "\n" + BUY + "\n")
    out = io.StringIO()
    call_command("import_transactions", str(path), stdout=out)
    assert out.getvalue().startswith(f"Imported 1 transactions from {path} (1 rows, 0 already stored or repeated)")
    assert Wallet.objects.count() == 1


def test_the_command_fails_with_the_line_and_reason(tmp_path):
    path = tmp_path / "transactions.csv"
    path.write_text(HEADER + "\n" + BUY + "\n" + BUY.replace("buy", "swap") + "\n")
    with pytest.raises(CommandError, match=r"^line 3: unknown kind 'swap'; expected one of buy, sell"):
        call_command("import_transactions", str(path))
    assert not Transaction.objects.exists()


def test_the_command_fails_clearly_on_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match=r"cannot read .*missing\.csv: No such file or directory"):
        call_command("import_transactions", str(tmp_path / "missing.csv"))
