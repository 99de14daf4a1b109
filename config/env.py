"""Strict readers for environment variables.

django-environ reads ``BALANCE_HOURLY_SNAPSHOTS=flase`` as False and ``RETENTION=-3`` as -3 without
complaint. An operator's typo must stop start-up instead, with the variable's name in the message.
"""

from decimal import Decimal, InvalidOperation

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name):
    value = env.str(name, default=None)
    if value is None:
        return None
    value = value.strip()
    return value or None


def strict_bool(name, default):
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def strict_int(name, default, minimum=0, maximum=None):
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ImproperlyConfigured(f"{name}={value!r} must be {bounds}")
    return number


def strict_decimal(name, default):
    value = _raw(name)
    if value is None:
        return Decimal(default)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ImproperlyConfigured(f"{name}={value!r} must be a finite number >= 0")
    return number


def strict_str(name, default=None):
    value = _raw(name)
    return default if value is None else value


def strict_networks(name):
    """A comma-separated list of IP addresses or networks (10.0.0.0/8), validated."""
    import ipaddress

    value = _raw(name)
    if value is None:
        return []
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {entry!r} is not an IP address or network") from None
    return entries
