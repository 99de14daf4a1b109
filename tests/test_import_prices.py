"""manage.py import_prices: known chains and tokens only, all or nothing, a stored price is never rewritten."""

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from bagtracker.models import Price
from bagtracker.services.imports import ImportRejected, import_prices
from tests.conftest import utc
from tests.csv_factory import database_state

pytestmark = pytest.mark.django_db

HEADER = "chain,token,as_of,price_usd"


def run(*lines, raw=None):
    data = raw if raw is not None else "\n".join([HEADER, *lines]).encode() + b"\n"
    return import_prices(io.BytesIO(data))


def refused(*lines, **kwargs):
    before = database_state()
    with pytest.raises(ImportRejected) as caught:
        run(*lines, **kwargs)
    assert database_state() == before
    return caught.value


def test_it_imports_prices_with_source_import(token):
    result = run(
        "ethereum,ETH,2026-01-01T00:00:00Z,3000.123456789012345678", "ethereum,ETH,2026-01-01T02:00:00+01:00,3010"
    )
    assert (result.rows, result.inserted) == (2, 2)
    assert list(Price.objects.order_by("as_of").values_list("as_of", "price_usd", "source")) == [
        (utc(2026, 1, 1), Decimal("3000.123456789012345678"), "import"),
        (utc(2026, 1, 1, 1), Decimal("3010"), "import"),
    ]


def test_reimporting_the_same_file_adds_nothing(token):
    lines = [f"ethereum,ETH,2026-01-{day:02d}T00:00:00Z,{3000 + day}" for day in range(1, 29)]
    assert run(*lines).inserted == 28
    state = database_state()
    second = run(*lines)
    assert (second.inserted, second.skipped) == (0, 28)
    assert database_state() == state


def test_a_repeated_identical_price_in_one_file_is_stored_once(token):
    result = run("ethereum,ETH,2026-01-01T00:00:00Z,3000", "ethereum,ETH,2026-01-01T00:00:00+00:00,3000.00")
    assert (result.inserted, result.skipped) == (1, 1)


def test_a_different_price_for_the_same_instant_in_one_file_is_refused(token):
    error = refused("ethereum,ETH,2026-01-01T00:00:00Z,3000", "ethereum,ETH,2026-01-01T01:00:00+01:00,3001")
    assert (error.line, error.reason) == (3, "same token and as_of as line 2 but a different price")


def test_a_different_price_for_a_stored_instant_is_refused_not_rewritten(token, make_price):
    make_price("2999.5", utc(2026, 1, 1), source="manual")
    error = refused("ethereum,ETH,2026-01-02T00:00:00Z,3100", "ethereum,ETH,2026-01-01T00:00:00Z,3000")
    assert error.line == 3
    assert error.reason == "a different price is already stored for this token and as_of (2999.5, source manual)"


@pytest.mark.parametrize(
    "row, reason",
    [
        ("bitcoin,BTC,2026-01-01T00:00:00Z,1", "unknown chain 'bitcoin'"),
        ("ethereum,DOGE,2026-01-01T00:00:00Z,1", "unknown token 'DOGE' on ethereum"),
        ("ethereum,ETH,2026-01-01T00:00:00,1", "has no UTC offset"),
        ("ethereum,ETH,01/02/2026,1", "not an ISO 8601 date-time"),
        ("ethereum,ETH,2026-01-01T00:00:00Z,", "price_usd is empty"),
        ("ethereum,ETH,2026-01-01T00:00:00Z,-1", "must not be negative"),
        ("ethereum,ETH,2026-01-01T00:00:00Z,Infinity", "not a finite number"),
        ("ethereum,ETH,2026-01-01T00:00:00Z,1e400", "at most 20"),
        ("ethereum,ETH,2026-01-01T00:00:00Z,0.0000000000000000001", "19 decimal places"),
        ("ethereum,ETH,2026-01-01T00:00:00Z", "expected 4 fields"),
    ],
)
def test_a_bad_row_is_refused_with_its_line_and_nothing_is_written(token, row, reason):
    error = refused("ethereum,ETH,2025-12-31T00:00:00Z,2900", row)
    assert error.line == 3
    assert reason in error.reason


def test_a_bad_header_and_an_empty_file_are_refused(token):
    assert "missing column(s) as_of" in refused(raw=b"chain,token,price_usd\nethereum,ETH,1\n").reason
    assert "the file is empty" in refused(raw=b"\xef\xbb\xbf").reason


def test_the_command_imports_and_refuses_with_the_line(token, tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "\nethereum,ETH,2026-01-01T00:00:00Z,3000\n")
    out = io.StringIO()
    call_command("import_prices", str(path), stdout=out)
    assert out.getvalue().startswith(f"Imported 1 prices from {path} (1 rows, 0 already stored or repeated)")

    path.write_text(HEADER + "\nethereum,ETH,2026-01-02T00:00:00Z,3000\nethereum,WETH,2026-01-02T00:00:00Z,3000\n")
    with pytest.raises(CommandError, match=r"^line 3: unknown token 'WETH' on ethereum$"):
        call_command("import_prices", str(path))
    assert Price.objects.count() == 1
