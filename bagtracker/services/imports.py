"""Importing transactions and prices from CSV: all or nothing, set-based, idempotent.

Each import runs in one database transaction. Rows are parsed and validated in Python as the file
streams by (csv module, one line at a time) and COPYed into a temporary table; the rest is a few
statements over the whole file (bagtracker.services.import_sql). The first bad row aborts the
import with its line number and reason (ImportRejected) and nothing is written.

Transactions (columns wallet,chain,token,kind,status,amount,price_usd,timestamp,tx_hash):
- missing chains, wallets (by address on the chain) and tokens (18 decimals) are created;
- a row with a tx_hash is identified by (wallet, token, tx_hash, kind): stored once; a repeat with
  identical values (in the file or already stored) is skipped, a repeat with different values is
  refused with its line;
- a row without tx_hash is identified by all its values: the file's copies of an identical row
  beyond the copies already stored are inserted, so two identical trades in one file both land and
  importing the same file again adds nothing;
- the balances of the wallets that received rows are rebuilt in the same transaction
  (bagtracker.balances.update_pair_balances: only the (wallet, token) histories the file touched);
  a running amount going negative is refused with the
  line to blame.

Prices (columns chain,token,as_of,price_usd): chain and token must exist; (token, as_of) is stored
once; the same price again is skipped, a different price for a stored or repeated (token, as_of) is
refused with its line (prices are history, not something an import silently rewrites).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bagtracker.balances import update_pair_balances
from bagtracker.errors import RunningAmountNegative
from bagtracker.models import (
    AMOUNT_DIGITS,
    DECIMAL_PLACES,
    DISPOSAL_KINDS,
    PRICE_DIGITS,
    Chain,
    Price,
    Token,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from bagtracker.numbers import plain
from bagtracker.services import csv_input as parse
from bagtracker.services import import_sql as sql
from bagtracker.services.csv_input import BadValue, ImportRejected
from bagtracker.signals import history_written

TRANSACTION_COLUMNS = ("wallet", "chain", "token", "kind", "status", "amount", "price_usd", "timestamp", "tx_hash")
PRICE_COLUMNS = ("chain", "token", "as_of", "price_usd")
PRICE_SOURCE = "import"

AMOUNT_INTEGER_DIGITS = AMOUNT_DIGITS - DECIMAL_PLACES  # NUMERIC(78,18): 60
PRICE_INTEGER_DIGITS = PRICE_DIGITS - DECIMAL_PLACES  # NUMERIC(38,18): 20
NEW_TOKEN_DECIMALS = 18
KINDS = tuple(TransactionKind.values)
STATUSES = tuple(TransactionStatus.values)

__all__ = ["ImportRejected", "import_prices", "import_transactions"]


@dataclass
class TransactionImportResult:
    rows: int = 0
    inserted: int = 0
    chains_created: int = 0
    wallets_created: int = 0
    tokens_created: int = 0
    wallets_updated: int = 0
    balances_written: int = 0
    duration_seconds: float = 0.0

    @property
    def skipped(self):
        """Rows already stored, or repeated within the file."""
        return self.rows - self.inserted


@dataclass
class PriceImportResult:
    rows: int = 0
    inserted: int = 0
    duration_seconds: float = 0.0

    @property
    def skipped(self):
        return self.rows - self.inserted


def _token_decimals():
    return {
        (chain, symbol): decimals
        for chain, symbol, decimals in Token.objects.values_list("chain__slug", "symbol", "decimals")
    }


def _parse_transaction(fields, decimals_of, now):
    chain = parse.slug(fields["chain"], "chain")
    wallet = parse.address(fields["wallet"], "wallet", 128)
    token = parse.identifier(fields["token"], "token", 32)
    kind = parse.choice(fields["kind"], "kind", KINDS)
    status = parse.choice(fields["status"], "status", STATUSES)
    amount = parse.decimal(fields["amount"], "amount", AMOUNT_INTEGER_DIGITS, DECIMAL_PLACES, positive=True)
    allowed = decimals_of.get((chain, token), NEW_TOKEN_DECIMALS)
    _, places = parse.digits_and_places(amount)
    if places > allowed:
        raise BadValue(f"amount {fields['amount']} has {places} decimal places; {token} on {chain} allows {allowed}")
    price = parse.decimal(fields["price_usd"], "price_usd", PRICE_INTEGER_DIGITS, DECIMAL_PLACES, required=False)
    moment = parse.timestamp(fields["timestamp"], "timestamp", now)
    tx_hash = parse.identifier(fields["tx_hash"], "tx_hash", 128, required=False)
    return chain, wallet, token, kind, status, amount, price, moment, tx_hash


def _copy_rows(cursor, copy_sql, stream, columns, parse_record, progress):
    """COPY the parsed records of ``stream`` into the staging table; returns how many.

    A refusal is raised only once the COPY is closed: raised inside it, psycopg would print a
    warning of its own ("error ignored terminating Copy") on top of the one line the user gets.
    """
    rows, refusal = 0, None
    with cursor.copy(copy_sql) as copy:
        try:
            for record in parse.read_records(stream, columns, progress):
                try:
                    row = parse_record(record)
                except BadValue as error:
                    raise ImportRejected(str(error), record.line) from None
                copy.write_row((record.line, *row))
                rows += 1
        except ImportRejected as error:
            refusal = error
    if refusal:
        raise refusal
    return rows


def _stage(cursor, statements):
    for statement in statements:
        cursor.execute(statement)


def import_transactions(stream: BinaryIO, progress: Callable[[int], None] | None = None) -> TransactionImportResult:
    """Import a transactions CSV from a binary stream; returns TransactionImportResult.

    Raises ImportRejected (nothing written) on the first bad row, conflict or negative balance.
    ``progress(bytes_read)`` is called while the file is read.
    """
    started = time.monotonic()
    result = TransactionImportResult()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql.IMPORT_LOCK_SQL)
            decimals_of = _token_decimals()
            _stage(cursor, sql.TX_STAGE_SQL)
            now = timezone.now()

            def parsed(record):
                return _parse_transaction(record.fields, decimals_of, now)

            result.rows = _copy_rows(cursor, sql.TX_COPY_SQL, stream, TRANSACTION_COLUMNS, parsed, progress)
            if not result.rows:
                raise ImportRejected("the file has a header but no rows")

            cursor.execute(sql.CREATE_CHAINS_SQL)
            result.chains_created = cursor.rowcount
            cursor.execute(sql.CREATE_WALLETS_SQL)
            result.wallets_created = cursor.rowcount
            cursor.execute(sql.CREATE_TOKENS_SQL)
            result.tokens_created = cursor.rowcount
            cursor.execute(sql.RESOLVE_TX_SQL)
            _refuse_transaction_conflicts(cursor)

            cursor.execute(sql.TX_NEW_SQL)
            cursor.execute(sql.INSERT_TX_SQL)
            result.inserted = cursor.rowcount
            cursor.execute(sql.TOUCHED_PAIRS_SQL)
            touched = cursor.fetchall()
            try:
                # Only the (wallet, token) histories the file touched are walked again.
                result.balances_written, _ = update_pair_balances(touched)
            except RunningAmountNegative as error:
                raise ImportRejected(
                    f"would make a running amount negative: {error}", _line_to_blame(cursor, error)
                ) from error
            result.wallets_updated = len({wallet_id for wallet_id, _ in touched})
            history_written.send(sender=Transaction)
    except IntegrityError as error:  # a concurrent writer beat the checks above; nothing was written
        raise ImportRejected(f"the database refused the import: {str(error).splitlines()[0]}") from None
    result.duration_seconds = time.monotonic() - started
    return result


def _refuse_transaction_conflicts(cursor):
    cursor.execute(sql.TX_FILE_CONFLICT_SQL)
    found = cursor.fetchone()
    if found:
        line, first_line = found
        raise ImportRejected(
            f"same wallet, token, tx_hash and kind as line {first_line} but different status, amount, "
            "price or timestamp",
            line,
        )
    cursor.execute(sql.TX_STORED_CONFLICT_SQL)
    found = cursor.fetchone()
    if found:
        line, stored_id, tx_hash, kind = found
        raise ImportRejected(
            f"{kind} {tx_hash} is already stored as transaction {stored_id} with a different status, amount, "
            "price or timestamp; edit it in the admin instead",
            line,
        )


def _line_to_blame(cursor, error):
    cursor.execute(sql.LINE_OF_NEW_TX_SQL, [error.transaction_id])
    found = cursor.fetchone()
    if not found:
        cursor.execute(
            sql.LINE_TO_BLAME_SQL,
            {
                "wallet": error.wallet_id,
                "token": error.token_id,
                "at": error.timestamp,
                "disposals": list(DISPOSAL_KINDS),
            },
        )
        found = cursor.fetchone()
    return found[0] if found else None


def _token_ids():
    return {
        (chain, symbol): token_id
        for chain, symbol, token_id in Token.objects.values_list("chain__slug", "symbol", "id")
    }


def _parse_price(fields, token_ids, chains, now):
    chain = parse.slug(fields["chain"], "chain")
    if chain not in chains:
        raise BadValue(f"unknown chain {chain!r}")
    token = parse.identifier(fields["token"], "token", 32)
    token_id = token_ids.get((chain, token))
    if token_id is None:
        raise BadValue(f"unknown token {token!r} on {chain}")
    as_of = parse.timestamp(fields["as_of"], "as_of", now)
    price = parse.decimal(fields["price_usd"], "price_usd", PRICE_INTEGER_DIGITS, DECIMAL_PLACES)
    return token_id, as_of, price


def import_prices(stream: BinaryIO, progress: Callable[[int], None] | None = None) -> PriceImportResult:
    """Import a price-history CSV from a binary stream; returns PriceImportResult.

    Raises ImportRejected (nothing written) on the first bad row or conflicting price.
    """
    started = time.monotonic()
    result = PriceImportResult()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.IMPORT_LOCK_SQL)
        token_ids = _token_ids()
        chains = {chain for chain, _ in token_ids} | set(Chain.objects.values_list("slug", flat=True))
        _stage(cursor, sql.PRICE_STAGE_SQL)
        now = timezone.now()

        def parsed(record):
            return _parse_price(record.fields, token_ids, chains, now)

        result.rows = _copy_rows(cursor, sql.PRICE_COPY_SQL, stream, PRICE_COLUMNS, parsed, progress)
        if not result.rows:
            raise ImportRejected("the file has a header but no rows")

        cursor.execute(sql.PRICE_FILE_CONFLICT_SQL)
        found = cursor.fetchone()
        if found:
            raise ImportRejected(f"same token and as_of as line {found[1]} but a different price", found[0])
        cursor.execute(sql.PRICE_STORED_CONFLICT_SQL)
        found = cursor.fetchone()
        if found:
            line, stored, source = found
            raise ImportRejected(
                f"a different price is already stored for this token and as_of ({plain(stored)}, source {source})",
                line,
            )
        cursor.execute(sql.INSERT_PRICES_SQL, {"source": PRICE_SOURCE})
        result.inserted = cursor.rowcount
        history_written.send(sender=Price)
    result.duration_seconds = time.monotonic() - started
    return result
