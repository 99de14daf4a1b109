"""Reading an import CSV: strict, streaming, and every complaint names the line it is about.

The file is read as bytes and decoded one physical line at a time, so a byte that is not UTF-8 is
reported with its line; a UTF-8 byte-order mark is accepted. Memory is bounded: a line is read at
most MAX_RECORD_BYTES at a time and a record (a quoted field may span lines) longer than that is
refused while it is read, so a 200 MB line or /dev/zero costs a megabyte, not the file.

Records are yielded as dicts keyed by the expected column names, with the 1-based line number
where the record starts (the header is line 1). Blank lines are skipped. Column order is free; a
missing, unknown or repeated column is refused, and so is a record with more or fewer fields than
the header.

The field parsers turn text into exact values (Decimal, aware UTC datetime) or raise BadValue:
numbers in ASCII digits (bagtracker.numbers), identifiers by the rules of bagtracker.identifiers,
instants inside [2009-01-03, now + 1 day] (bagtracker.instants).
"""

import csv
import re
from dataclasses import dataclass

from bagtracker import instants
from bagtracker.identifiers import BadIdentifier, canonical_address, check_identifier
from bagtracker.numbers import SHOWN_CHARACTERS, NotANumber, digits_and_places, parse_decimal, shown

BOM = b"\xef\xbb\xbf"
OTHER_DELIMITERS = (";", "\t", "|")
PROGRESS_EVERY_LINES = 5000
# The longest record (one CSV row, whatever its physical lines) read before it is refused. A real
# row is well under 1 KiB; this leaves room for a field to be named in the refusal (a 100,000-digit
# amount is refused as an amount, not as an overlong line). Memory use is a small multiple of it.
MAX_RECORD_BYTES = 1024 * 1024


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


class _Record:
    """Where the record being read began: the reader moves it on after each record."""

    def __init__(self):
        self.start_line = 1
        self.bytes = 0


def _lines(stream, record):
    """Yield (line number, raw bytes) from a binary stream, never holding more than
    MAX_RECORD_BYTES + 1 bytes of one line: a longer record is refused as it is read."""
    number = 0
    while True:
        raw = stream.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        number += 1
        if number > record.start_line and record.bytes == 0:
            record.start_line = number
        record.bytes += len(raw)
        if record.bytes > MAX_RECORD_BYTES:
            what = "the line" if number == record.start_line else f"the record (lines {record.start_line}-{number})"
            raise ImportRejected(
                f"{what} is longer than {MAX_RECORD_BYTES:,} bytes; this is not an import CSV file", record.start_line
            )
        yield number, raw


def _decoded_lines(stream, record, progress=None):
    """Yield (line number, text) from a binary stream; a UTF-8 BOM at the start is dropped."""
    read = 0
    for number, raw in _lines(stream, record):
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
    record = _Record()
    lines = _decoded_lines(stream, record, progress)
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
        record.bytes = 0  # the next physical line starts the next record
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if header is None:
            header = _check_header(row, columns, start)
            continue
        if len(row) != len(header):
            raise ImportRejected(f"expected {len(header)} fields ({','.join(header)}), found {len(row)}", start)
        # Spaces after a comma are layout ("a, b"); any other character at either end is checked.
        yield Record(start, {name: value.strip(" ") for name, value in zip(header, row, strict=True)})
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
    """A string ('' becomes None when not required)."""
    if not value:
        if required:
            raise BadValue(f"{name} is empty")
        return None
    if len(value) > max_length:
        raise BadValue(f"{name} {shown(value)} is longer than {max_length} characters")
    return value


def identifier(value, name, max_length, required=True):
    """A symbol or transaction hash: text that passes bagtracker.identifiers' rules."""
    value = text(value, name, max_length, required)
    if value is not None:
        try:
            check_identifier(value, name)
        except BadIdentifier as error:
            raise BadValue(str(error)) from None
    return value


def address(value, name, max_length):
    """A wallet address as stored: an EVM address in EIP-55 form, any other exactly as given."""
    value = text(value, name, max_length)
    try:
        return canonical_address(value, name)
    except BadIdentifier as error:
        raise BadValue(str(error)) from None


def slug(value, name, max_length=50):
    value = identifier(value, name, max_length).lower()
    if not _SLUG.match(value):
        raise BadValue(f"{name} {shown(value)} may contain only letters, digits, '-' and '_'")
    return value


def choice(value, name, allowed):
    if value.lower() not in allowed:
        raise BadValue(f"unknown {name} {shown(value)}; expected one of {', '.join(allowed)}")
    return value.lower()


def decimal(value, name, max_integer_digits, max_places, required=True, positive=False):
    """An exact Decimal within NUMERIC(max_integer_digits + 18, 18) and ``max_places`` places."""
    if not value:
        if required:
            raise BadValue(f"{name} is empty")
        return None
    try:
        number = parse_decimal(value)
    except NotANumber as error:
        raise BadValue(f"{name} {error}") from None
    value = _echo(value)
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


def _echo(value):
    """A number as written, for a message; a long one cut short."""
    return value if len(value) <= SHOWN_CHARACTERS else shown(value)


def timestamp(value, name, now=None):
    """An ISO 8601 instant with a UTC offset ('Z' or ±HH:MM), in UTC, inside [2009-01-03, now + 1 day]."""
    if not value:
        raise BadValue(f"{name} is empty")
    try:
        moment = instants.parse_iso(value)
    except instants.NoOffset:
        raise BadValue(
            f"{name} {shown(value)} has no UTC offset; write it like 2026-01-31T12:00:00Z or +02:00"
        ) from None
    except ValueError:
        raise BadValue(f"{name} {shown(value)} is not an ISO 8601 date-time") from None
    try:
        return instants.check_instant(moment, name, now, text=shown(value))
    except instants.InstantOutOfRange as error:
        raise BadValue(str(error)) from None
