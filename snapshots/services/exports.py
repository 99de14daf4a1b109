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
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from bagtracker.errors import WalletNotFound
from bagtracker.models import Wallet
from bagtracker.numbers import plain
from snapshots.models import Balance, BalanceSnapshot, SnapshotRun, WalletSnapshot

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
    "cost_basis_usd",
    "avg_cost_usd",
    "cost_basis_complete",
    "realized_pnl_complete",
    "cost_basis_method",
)
_DECIMAL_COLUMNS = BALANCE_COLUMNS[3:11]
_OTHER_COLUMNS = BALANCE_COLUMNS[11:]
# Identifier columns: what a spreadsheet could read as a formula (wallet addresses, slugs, symbols).
TEXT_COLUMNS = frozenset({"wallet", "chain", "token"})
# What makes Excel, LibreOffice and Google Sheets read a cell as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000
FORMATS = ("csv", "json")


def balance_rows(wallet_id: int | None = None) -> Iterator[dict[str, str | None]]:
    """Yield one dict per balance (decimals as exact strings, None when unknown), by wallet then token."""
    balances = Balance.objects.all()
    if wallet_id is not None:
        if not Wallet.objects.filter(pk=wallet_id).exists():
            raise WalletNotFound(wallet_id)
        balances = balances.filter(wallet_id=wallet_id)
    values = balances.order_by("wallet_id", "token__symbol", "token_id").values_list(
        "wallet__address", "wallet__chain__slug", "token__symbol", *_DECIMAL_COLUMNS, *_OTHER_COLUMNS
    )
    decimals_end = 3 + len(_DECIMAL_COLUMNS)
    for row in values.iterator(chunk_size=CHUNK_ROWS):
        record = dict(zip(BALANCE_COLUMNS[:3], row[:3], strict=True))
        record.update(
            (name, None if value is None else plain(value))
            for name, value in zip(_DECIMAL_COLUMNS, row[3:decimals_end], strict=True)
        )
        record.update(zip(_OTHER_COLUMNS, row[decimals_end:], strict=True))
        yield record


def spreadsheet_text(value: str) -> str:
    """A text cell as a spreadsheet shows it, never runs it: a leading formula character gets a '."""
    if value and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _cell(name, value, text_columns):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return spreadsheet_text(value) if name in text_columns else value


def render_csv(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str] = BALANCE_COLUMNS,
    text_columns: Collection[str] = TEXT_COLUMNS,
) -> Iterator[str]:
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


def render_json(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Yield a JSON array, one object per line."""
    first = True
    for row in rows:
        yield ("[\n" if first else ",\n") + json.dumps(row)
        first = False
    yield "[]\n" if first else "\n]\n"


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def export_balances(wallet_id: int | None = None, fmt: str = "csv") -> Iterator[str]:
    """Yield the balances export as text chunks. Raises WalletNotFound before yielding anything."""
    _check_format(fmt)
    rows = balance_rows(wallet_id)
    first = next(rows, None)  # runs the wallet check now, not half-way through the output
    rows = rows if first is None else _chain(first, rows)
    return render_csv(rows) if fmt == "csv" else render_json(rows)


def _chain(first, rest):
    yield first
    yield from rest


SNAPSHOT_COLUMNS = (
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
)
_SNAPSHOT_FIELDS = (
    "period",
    "as_of",
    "wallet__address",
    "wallet__chain__slug",
    "token__symbol",
    "amount",
    "price_usd",
    "value_usd",
    "cost_basis_usd",
    "realized_pnl_usd",
    "cost_basis_method",
    "source",
)
SUMMARY_COLUMNS = (
    "period",
    "as_of",
    "wallet",
    "chain",
    "value_usd",
    "cost_basis_usd",
    "realized_pnl_usd",
    "unpriced_rows",
)
_SUMMARY_FIELDS = (
    "period",
    "as_of",
    "wallet__address",
    "wallet__chain__slug",
    "value_usd",
    "cost_basis_usd",
    "realized_pnl_usd",
    "unpriced_rows",
)


def _in_range(rows: QuerySet, period: str, since: datetime | None, until: datetime | None) -> QuerySet:
    # Completed boundaries only: rows of a boundary still being written, or of a partial backfill
    # that never completed one, are not exported.
    completed = SnapshotRun.objects.filter(
        period=OuterRef("period"), as_of=OuterRef("as_of"), status=SnapshotRun.Status.COMPLETED
    )
    rows = rows.filter(period=period).filter(Exists(completed))
    if since:
        rows = rows.filter(as_of__gte=since)
    if until:
        rows = rows.filter(as_of__lte=until)
    return rows


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def snapshot_rows(
    period: str, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, str | None]]:
    """Yield one dict per snapshot row of ``period`` with as_of in [since, until], oldest boundary first."""
    rows = _in_range(BalanceSnapshot.objects.all(), period, since, until)
    values = rows.order_by("as_of", "wallet_id", "token_id").values_list(*_SNAPSHOT_FIELDS)
    for row in values.iterator(chunk_size=CHUNK_ROWS):
        period_, as_of, wallet, chain, token, amount, price, value, cost_basis, realized, method, source = row
        yield {
            "period": period_,
            "as_of": _iso(as_of),
            "wallet": wallet,
            "chain": chain,
            "token": token,
            "amount": plain(amount),
            "price_usd": _decimal(price),
            "value_usd": _decimal(value),
            "cost_basis_usd": plain(cost_basis),
            "realized_pnl_usd": plain(realized),
            "cost_basis_method": method,
            "source": source,
        }


def summary_rows(
    period: str, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, str | int | None]]:
    """Yield one dict per wallet summary of ``period`` with as_of in [since, until], oldest boundary first."""
    rows = _in_range(WalletSnapshot.objects.all(), period, since, until)
    values = rows.order_by("as_of", "wallet_id").values_list(*_SUMMARY_FIELDS)
    for period_, as_of, wallet, chain, value, cost_basis, realized, unpriced in values.iterator(chunk_size=CHUNK_ROWS):
        yield {
            "period": period_,
            "as_of": _iso(as_of),
            "wallet": wallet,
            "chain": chain,
            "value_usd": plain(value),
            "cost_basis_usd": plain(cost_basis),
            "realized_pnl_usd": plain(realized),
            "unpriced_rows": unpriced,
        }


def export_snapshots(
    period: str,
    since: datetime | None = None,
    until: datetime | None = None,
    fmt: str = "csv",
    summaries: bool = False,
) -> Iterator[str]:
    """Yield the snapshots export of ``period`` as text chunks (the wallet summaries with ``summaries``)."""
    _check_format(fmt)
    rows = (summary_rows if summaries else snapshot_rows)(period, since, until)
    columns = SUMMARY_COLUMNS if summaries else SNAPSHOT_COLUMNS
    return render_csv(rows, columns) if fmt == "csv" else render_json(rows)
