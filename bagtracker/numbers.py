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


def decimal_places(value):
    """How many decimal places ``value`` needs (1.500 -> 1, 100 -> 0), exactly.

    Not ``-value.normalize().as_tuple().exponent``: normalize() rounds to the context's 28 digits,
    so 1234567890123456789012345678.5 would need 0 places.
    """
    _, digits, exponent = Decimal(value).as_tuple()
    text = "".join(map(str, digits))
    trailing_zeros = len(text) - len(text.rstrip("0"))
    return max(0, -(exponent + trailing_zeros))
