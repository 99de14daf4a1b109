"""Exporting balances as CSV or JSON, streamed: rows are read in chunks and rendered one at a time.

Decimals are exact text (bagtracker.numbers.plain), strings in JSON too; an unknown average is an
empty CSV field and a JSON null.
"""

import csv
import io
import json

from bagtracker.models import Wallet
from bagtracker.numbers import plain
from snapshots.models import Balance

BALANCE_COLUMNS = (
    "wallet",
    "chain",
    "token",
    "amount",
    "total_in",
    "total_out",
    "avg_buy_price_usd",
    "avg_sell_price_usd",
    "realized_pnl_usd",
)
_DECIMAL_COLUMNS = BALANCE_COLUMNS[3:]
CHUNK_ROWS = 2000
FORMATS = ("csv", "json")


class UnknownWallet(Exception):
    pass


def balance_rows(wallet_id=None):
    """Yield one dict per balance (decimals as exact strings, None when unknown), by wallet then token."""
    balances = Balance.objects.all()
    if wallet_id is not None:
        if not Wallet.objects.filter(pk=wallet_id).exists():
            raise UnknownWallet(f"wallet {wallet_id} does not exist")
        balances = balances.filter(wallet_id=wallet_id)
    values = balances.order_by("wallet_id", "token__symbol", "token_id").values_list(
        "wallet__address", "wallet__chain__slug", "token__symbol", *_DECIMAL_COLUMNS
    )
    for row in values.iterator(chunk_size=CHUNK_ROWS):
        record = dict(zip(BALANCE_COLUMNS[:3], row[:3], strict=True))
        record.update(
            (name, None if value is None else plain(value))
            for name, value in zip(_DECIMAL_COLUMNS, row[3:], strict=True)
        )
        yield record


def render_csv(rows, columns=BALANCE_COLUMNS):
    """Yield CSV text: the header line, then one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(values):
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(columns)
    for row in rows:
        yield line(["" if row[name] is None else row[name] for name in columns])


def render_json(rows):
    """Yield a JSON array, one object per line."""
    first = True
    for row in rows:
        yield ("[\n" if first else ",\n") + json.dumps(row)
        first = False
    yield "[]\n" if first else "\n]\n"


def export_balances(wallet_id=None, fmt="csv"):
    """Yield the balances export as text chunks. Raises UnknownWallet before yielding anything."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    rows = balance_rows(wallet_id)
    first = next(rows, None)  # runs the wallet check now, not half-way through the output
    rows = rows if first is None else _chain(first, rows)
    return render_csv(rows) if fmt == "csv" else render_json(rows)


def _chain(first, rest):
    yield first
    yield from rest
