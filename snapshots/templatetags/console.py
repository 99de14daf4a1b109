"""Number formats of the console pages, for people: prices and averages to sensible significant
digits, amounts and USD with thousands separators; the exact value is always the tooltip (title)
and in the exports, which print every decimal."""

from decimal import ROUND_HALF_UP, Decimal, localcontext

from django import template
from django.utils.html import format_html

from bagtracker.numbers import plain as plain_text

register = template.Library()

CENT = Decimal("0.01")


@register.filter
def plain(value):
    """1.500000000000000000 → 1.5; None → —."""
    return "—" if value is None else plain_text(value)


@register.filter
def usd(value):
    """$1,234.57, with the exact value as the tooltip; None → —."""
    if value is None:
        return "—"
    value = Decimal(value)
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "−" if rounded < 0 else ""
    return format_html('<span title="{}">{}${}</span>', plain_text(value), sign, f"{abs(rounded):,.2f}")


@register.filter
def pnl_class(value):
    if value is None or value == 0:
        return ""
    return "console-gain" if value > 0 else "console-loss"


# Prices and averages: six significant digits, never fewer than two decimals (3,150.10; 120.00;
# 1.23457; 0.0000123457) and never more than the 18 stored.
SIGNIFICANT_DIGITS = 6
MIN_DECIMALS = 2
MAX_DECIMALS = 18


def human_number(value):
    """A Decimal rounded for reading (see above), with thousands separators; '—' for None."""
    if value is None:
        return "—"
    value = Decimal(value)
    if value == 0:
        return "0.00"
    magnitude = value.copy_abs().adjusted()  # 3150.1 → 3; 0.00123 → −3
    decimals = min(MAX_DECIMALS, max(MIN_DECIMALS, SIGNIFICANT_DIGITS - 1 - magnitude))
    with localcontext() as context:
        context.prec = 100  # enough for any NUMERIC(78,18): quantize must never round twice
        rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = f"{rounded.copy_abs():,.{decimals}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(MIN_DECIMALS, "0")
    sign = "−" if rounded < 0 else ""
    return f"{sign}{whole}.{fraction}"


@register.filter
def number(value):
    """A price or an average for people, the exact value as the tooltip; None → —."""
    if value is None:
        return "—"
    return format_html('<span title="{}">{}</span>', plain_text(value), human_number(value))


@register.filter
def quantity(value):
    """An amount: exact, with thousands separators (1,234.5); None → —."""
    if value is None:
        return "—"
    whole, _, fraction = plain_text(value).partition(".")
    sign, digits = ("−", whole[1:]) if whole.startswith("-") else ("", whole)
    return f"{sign}{int(digits):,}" + (f".{fraction}" if fraction else "")
