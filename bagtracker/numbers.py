"""Exact decimal text: what every command and export prints (never exponent form, never float)."""

import re
from decimal import Decimal, InvalidOperation


def plain(value):
    """Render a Decimal exactly, without exponent and without trailing zeros ('' for None)."""
    if value is None:
        return ""
    value = Decimal(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def digits_and_places(value):
    """(integer digits, decimal places) of a finite Decimal, ignoring trailing zeros after the point.

    Computed from the tuple, not normalize(), which would round to the context precision.
    """
    _, digits, exponent = value.as_tuple()
    while exponent < 0 and digits and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    if not any(digits):
        return 0, 0
    return max(0, len(digits) + exponent), max(0, -exponent)


# A number as the project reads it (CSV fields, settings): ASCII digits, an optional sign, point and
# exponent. Decimal() and int() also take '1_000', Arabic-Indic '١٢', full-width '１２' and
# surrounding spaces; none of those is a number a user typed on purpose.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NOT_FINITE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)
# Longer text is cut short in a message (a NUMERIC(78,18) value fits whole).
SHOWN_CHARACTERS = 100
MAX_INTEGER_DIGITS = 100


class NotANumber(ValueError):
    """The text is not a number in ASCII digits; the message says why, for people."""


def shown(text, limit=SHOWN_CHARACTERS):
    """``text`` for an error message: repr()'d, and cut short when long (a 100,000-digit amount is
    named, not echoed)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:20]!r}… ({len(text):,} characters)"


def parse_decimal(text):
    """The exact Decimal written in ``text`` (ASCII digits only); any zero is returned as 0.

    Raises NotANumber: for NaN/Infinity "is not a finite number", otherwise "is not a number".
    """
    if _NOT_FINITE.fullmatch(text):
        raise NotANumber(f"{shown(text)} is not a finite number")
    if not _NUMBER.fullmatch(text):
        raise NotANumber(f"{shown(text)} is not a number (ASCII digits, e.g. 1234.5 or 1.5E-6)")
    try:
        number = Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal represents
        raise NotANumber(f"{shown(text)} is out of range") from None
    # -0 and 0E-100000 are 0: stored and shown as 0, not as a signed or 100,000-place zero.
    return Decimal(0) if number.is_zero() else number


def parse_integer(text):
    """The int written in ``text`` in ASCII digits ('1_000', '١', '７' are refused: NotANumber)."""
    if not _INTEGER.fullmatch(text):
        raise NotANumber(f"{shown(text)} is not an integer (ASCII digits)")
    if len(text) > MAX_INTEGER_DIGITS:  # int() itself refuses beyond 4,300 digits, with a traceback
        raise NotANumber(f"{shown(text)} has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)
