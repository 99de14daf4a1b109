"""Exact decimal text: what every command and export prints (never exponent form, never float)."""

from decimal import Decimal


def plain(value):
    """Render a Decimal exactly, without exponent and without trailing zeros ('' for None)."""
    if value is None:
        return ""
    value = Decimal(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
