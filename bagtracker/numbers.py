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
