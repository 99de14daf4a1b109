"""manage.py export_balances: exact decimals in CSV and JSON, one wallet or all, unknown wallet refused."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from bagtracker.errors import WalletNotFound
from bagtracker.services.imports import import_transactions
from snapshots.services.exports import export_balances
from tests.conftest import utc
from tests.csv_factory import HEADER

pytestmark = pytest.mark.django_db

HEADER_LINE = (
    "wallet,chain,token,amount,total_in,total_out,avg_buy_price_usd,avg_sell_price_usd,realized_pnl_usd,"
    "cost_basis_usd,avg_cost_usd,cost_basis_complete,realized_pnl_complete,cost_basis_method\n"
)


def export(wallet_id=None, fmt="csv"):
    return "".join(export_balances(wallet_id, fmt))


def test_a_decimal_survives_import_then_export_exactly():
    rows = [
        "0xabc,ethereum,ETH,buy,confirmed,123.456789012345678901,0.000000000000000001,2026-01-01T00:00:00Z,",
        "0xabc,ethereum,ETH,sell,confirmed,0.000000000000000001,3,2026-01-02T00:00:00Z,",
    ]
    import_transactions(io.BytesIO(("\n".join([HEADER, *rows]) + "\n").encode()))
    # Cost basis: round(123.456789012345678901 × 10^-18) = 123 × 10^-18; the sell of 10^-18 takes
    # round(123e-18 × 1e-18 / 123.45…) = 0 and realizes round(3 × 10^-18); avg cost = round(123e-18 / 123.45…).
    assert export() == HEADER_LINE + (
        "0xabc,ethereum,ETH,123.4567890123456789,123.456789012345678901,0.000000000000000001,"
        "0.000000000000000001,3,0.000000000000000003,0.000000000000000123,0.000000000000000001,true,true,average\n"
    )
    assert json.loads(export(fmt="json")) == [
        {
            "wallet": "0xabc",
            "chain": "ethereum",
            "token": "ETH",
            "amount": "123.4567890123456789",
            "total_in": "123.456789012345678901",
            "total_out": "0.000000000000000001",
            "avg_buy_price_usd": "0.000000000000000001",
            "avg_sell_price_usd": "3",
            "realized_pnl_usd": "0.000000000000000003",
            "cost_basis_usd": "0.000000000000000123",
            "avg_cost_usd": "0.000000000000000001",
            "cost_basis_complete": True,
            "realized_pnl_complete": True,
            "cost_basis_method": "average",
        }
    ]


def test_unknown_averages_are_empty_in_csv_and_null_in_json(make_tx):
    make_tx("transfer_in", "5", at=utc(2026, 1, 1))
    # An unknown cost counts as 0 and is flagged (cost_basis_complete false).
    assert export().splitlines()[1].endswith(",ethereum,ETH,5,5,0,,,0,0,0,false,true,average")
    (row,) = json.loads(export(fmt="json"))
    assert (row["avg_buy_price_usd"], row["avg_sell_price_usd"], row["realized_pnl_usd"]) == (None, None, "0")
    assert (row["cost_basis_complete"], row["realized_pnl_complete"]) == (False, True)


def test_it_exports_one_wallet_or_all(make_wallet, make_tx, wallet):
    other = make_wallet(address="0xother")
    make_tx("buy", "1", price="10", at=utc(2026, 1, 1))
    make_tx("buy", "2", price="10", at=utc(2026, 1, 1), on_wallet=other)
    assert [line.split(",")[0] for line in export().splitlines()[1:]] == [wallet.address, "0xother"]
    assert [line.split(",")[0] for line in export(other.pk).splitlines()[1:]] == ["0xother"]


def test_an_empty_export_is_a_header_or_an_empty_array(wallet):
    assert export(wallet.pk) == HEADER_LINE
    assert json.loads(export(wallet.pk, "json")) == []


def test_an_unknown_wallet_is_refused_before_any_output():
    with pytest.raises(WalletNotFound):
        export(999)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"^wallet 999 does not exist$"):
        call_command("export_balances", "--wallet", "999", stdout=out)
    assert out.getvalue() == ""


def test_the_command_streams_json_to_stdout(make_tx, wallet):
    make_tx("buy", "1.5", price="2000", at=utc(2026, 1, 1))
    out = io.StringIO()
    call_command("export_balances", "--format", "json", "--wallet", str(wallet.pk), stdout=out)
    assert json.loads(out.getvalue())[0]["amount"] == "1.5"
