"""Exporting balances and snapshots as CSV or JSON, streamed: rows are read in chunks and rendered
one at a time, so memory does not grow with the export.

Decimals are exact text (bagtracker.numbers.plain), strings in JSON too; an unknown value (an
average, a price) is an empty CSV field and a JSON null. Instants are ISO 8601 UTC with a Z.

In CSV, a text column a spreadsheet would evaluate (a leading ``=``, ``+``, ``-``, ``@``, tab or
carriage return) gets a ``'`` in front (``spreadsheet_text``); number columns and JSON are never
altered (a negative PnL stays -5).
"""

import csv
import io
import json

from bagtracker.errors import WalletNotFound
from bagtracker.models import Wallet
from bagtracker.numbers import plain
from snapshots.models import Balance, BalanceSnapshot

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
# Identifier columns: what a spreadsheet could read as a formula (wallet addresses, slugs, symbols).
TEXT_COLUMNS = frozenset({"wallet", "chain", "token"})
# What makes Excel, LibreOffice and Google Sheets read a cell as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000
FORMATS = ("csv", "json")


def balance_rows(wallet_id=None):
    """Yield one dict per balance (decimals as exact strings, None when unknown), by wallet then token."""
    balances = Balance.objects.all()
    if wallet_id is not None:
        if not Wallet.objects.filter(pk=wallet_id).exists():
            raise WalletNotFound(wallet_id)
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


def spreadsheet_text(value):
    """A text cell as a spreadsheet shows it, never runs it: a leading formula character gets a '."""
    if value and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _cell(name, value, text_columns):
    if value is None:
        return ""
    return spreadsheet_text(value) if name in text_columns else value


def render_csv(rows, columns=BALANCE_COLUMNS, text_columns=TEXT_COLUMNS):
    """Yield CSV text: the header line, then one line per row; ``text_columns`` spreadsheet-safe."""
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
        yield line([_cell(name, row[name], text_columns) for name in columns])


def render_json(rows):
    """Yield a JSON array, one object per line."""
    first = True
    for row in rows:
        yield ("[\n" if first else ",\n") + json.dumps(row)
        first = False
    yield "[]\n" if first else "\n]\n"


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def export_balances(wallet_id=None, fmt="csv"):
    """Yield the balances export as text chunks. Raises WalletNotFound before yielding anything."""
    _check_format(fmt)
    rows = balance_rows(wallet_id)
    first = next(rows, None)  # runs the wallet check now, not half-way through the output
    rows = rows if first is None else _chain(first, rows)
    return render_csv(rows) if fmt == "csv" else render_json(rows)


def _chain(first, rest):
    yield first
    yield from rest


SNAPSHOT_COLUMNS = ("period", "as_of", "wallet", "chain", "token", "amount", "price_usd", "value_usd", "source")
_SNAPSHOT_FIELDS = (
    "period",
    "as_of",
    "wallet__address",
    "wallet__chain__slug",
    "token__symbol",
    "amount",
    "price_usd",
    "value_usd",
    "source",
)


def snapshot_rows(period, since=None, until=None):
    """Yield one dict per snapshot row of ``period`` with as_of in [since, until], oldest boundary first."""
    rows = BalanceSnapshot.objects.filter(period=period)
    if since:
        rows = rows.filter(as_of__gte=since)
    if until:
        rows = rows.filter(as_of__lte=until)
    values = rows.order_by("as_of", "wallet_id", "token_id").values_list(*_SNAPSHOT_FIELDS)
    for period_, as_of, wallet, chain, token, amount, price, value, source in values.iterator(chunk_size=CHUNK_ROWS):
        yield {
            "period": period_,
            "as_of": as_of.isoformat().replace("+00:00", "Z"),
            "wallet": wallet,
            "chain": chain,
            "token": token,
            "amount": plain(amount),
            "price_usd": None if price is None else plain(price),
            "value_usd": None if value is None else plain(value),
            "source": source,
        }


def export_snapshots(period, since=None, until=None, fmt="csv"):
    """Yield the snapshots export of ``period`` as text chunks."""
    _check_format(fmt)
    rows = snapshot_rows(period, since, until)
    return render_csv(rows, SNAPSHOT_COLUMNS) if fmt == "csv" else render_json(rows)
