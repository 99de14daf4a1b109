"""Number formats of the console pages: exact decimals, and USD to the cent (exact in a tooltip)."""

from decimal import ROUND_HALF_UP, Decimal

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
