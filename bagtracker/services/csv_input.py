"""Reading an import CSV: strict, streaming, and every complaint names the line it is about.

The file is read as bytes and decoded one physical line at a time, so a byte that is not UTF-8 is
reported with its line; a UTF-8 byte-order mark is accepted. Records are yielded as dicts keyed by
the expected column names, with the 1-based line number where the record starts (the header is
line 1). Blank lines are skipped. Column order is free; a missing, unknown or repeated column is
refused, and so is a record with more or fewer fields than the header.

The field parsers turn text into exact values (Decimal, aware UTC datetime) or raise BadValue.
"""

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from bagtracker.numbers import digits_and_places

BOM = b"\xef\xbb\xbf"
OTHER_DELIMITERS = (";", "\t", "|")
PROGRESS_EVERY_LINES = 5000


class ImportRejected(Exception):
    """The file cannot be imported. ``line`` is the offending line (None: the file as a whole)."""

    def __init__(self, reason, line=None):
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


class BadValue(ValueError):
    """A field's text is not acceptable; the reader adds the line number."""


@dataclass
class Record:
    line: int
    fields: dict


def _decoded_lines(stream, progress=None):
    """Yield (line number, text) from a binary stream; a UTF-8 BOM at the start is dropped."""
    read = 0
    for number, raw in enumerate(stream, start=1):
        read += len(raw)
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = raw[error.start]
            raise ImportRejected(
                f"byte 0x{byte:02x} at column {error.start + 1} is not UTF-8; save the file as UTF-8", number
            ) from None
        if "\x00" in text:
            raise ImportRejected("contains a NUL byte; this is not a text CSV file", number)
        if progress and number % PROGRESS_EVERY_LINES == 0:
            progress(read)
        yield number, text
    if progress:
        progress(read)


def read_records(stream, columns, progress=None):
    """Yield a Record per data row of ``stream`` (binary), checked against ``columns``.

    ``progress(bytes_read)`` is called as the file is consumed.
    """
    lines = _decoded_lines(stream, progress)
    reader = csv.reader((text for _, text in lines), strict=True)
    header = None
    previous_end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            reason = "a quoted field is never closed" if "unexpected end of data" in str(error) else str(error)
            raise ImportRejected(f"malformed CSV: {reason}", previous_end + 1) from None
        start, previous_end = previous_end + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if header is None:
            header = _check_header(row, columns, start)
            continue
        if len(row) != len(header):
            raise ImportRejected(f"expected {len(header)} fields ({','.join(header)}), found {len(row)}", start)
        yield Record(start, {name: value.strip() for name, value in zip(header, row, strict=True)})
    if header is None:
        raise ImportRejected(f"the file is empty; expected a header line: {','.join(columns)}")


def _check_header(row, columns, line):
    names = [name.strip().lower() for name in row]
    expected = ",".join(columns)
    if len(names) == 1:
        for delimiter in OTHER_DELIMITERS:
            if delimiter in names[0]:
                shown = "tab" if delimiter == "\t" else repr(delimiter)
                raise ImportRejected(
                    f"the header is separated by {shown}; separate columns with commas: {expected}", line
                )
    seen = set()
    for name in names:
        if name in seen:
            raise ImportRejected(f"column {name!r} appears twice", line)
        seen.add(name)
    missing = [c for c in columns if c not in seen]
    if missing:
        raise ImportRejected(f"missing column(s) {', '.join(missing)}; expected the header {expected}", line)
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise ImportRejected(f"unknown column(s) {', '.join(map(repr, unknown))}; expected the header {expected}", line)
    return names


# --- field parsers ------------------------------------------------------------------------------

_SLUG = re.compile(r"^[-a-z0-9_]+$")


def text(value, name, max_length, required=True):
    """A trimmed string ('' becomes None when not required)."""
    if not value:
        if required:
            raise BadValue(f"{name} is empty")
        return None
    if len(value) > max_length:
        raise BadValue(f"{name} is longer than {max_length} characters")
    return value


def slug(value, name, max_length=50):
    value = text(value, name, max_length).lower()
    if not _SLUG.match(value):
        raise BadValue(f"{name} {value!r} may contain only letters, digits, '-' and '_'")
    return value


def choice(value, name, allowed):
    if value.lower() not in allowed:
        raise BadValue(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
    return value.lower()


def decimal(value, name, max_integer_digits, max_places, required=True, positive=False):
    """An exact Decimal within NUMERIC(max_integer_digits + 18, 18) and ``max_places`` places."""
    if not value:
        if required:
            raise BadValue(f"{name} is empty")
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadValue(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise BadValue(f"{name} {value!r} is not a finite number")
    if positive and number <= 0:
        raise BadValue(f"{name} {value} must be greater than 0")
    if number < 0:
        raise BadValue(f"{name} {value} must not be negative")
    integer_digits, places = digits_and_places(number)
    if integer_digits > max_integer_digits:
        raise BadValue(f"{name} {value} has {integer_digits} integer digits; at most {max_integer_digits} fit")
    if places > max_places:
        raise BadValue(f"{name} {value} has {places} decimal places; at most {max_places} allowed")
    return number


def timestamp(value, name):
    """An ISO 8601 instant with a UTC offset ('Z' or ±HH:MM), returned in UTC."""
    if not value:
        raise BadValue(f"{name} is empty")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(f"{name} {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadValue(f"{name} {value!r} has no UTC offset; write it like 2026-01-31T12:00:00Z or +02:00")
    return moment.astimezone(UTC)
