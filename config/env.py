"""Strict readers for environment variables.

django-environ reads ``BALANCE_HOURLY_SNAPSHOTS=flase`` as False and ``RETENTION=-3`` as -3 without
complaint. An operator's typo must stop start-up instead, with the variable's name in the message.
Numbers are ASCII digits only (Python's int() also reads '٧', '７' and '1_000'), and each has a
sane range: a value that passes start-up but breaks every later run is refused now.
"""

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

# The largest PostgreSQL bigint: no integer setting (an id, a count) is meaningful beyond it.
BIGINT_MAX = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

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


def _shown(value, limit=40):
    return repr(value) if len(value) <= limit else f"{value[:20]!r}… ({len(value):,} characters)"


def strict_int(name, default, minimum=0, maximum=BIGINT_MAX):
    value = _raw(name)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value):
        if re.fullmatch(r"[+-]?[0-9]+", value):
            raise ImproperlyConfigured(f"{name}={_shown(value)} must be between {minimum} and {maximum}")
        raise ImproperlyConfigured(f"{name}={_shown(value)} is not an integer (ASCII digits)")
    number = int(value)
    if number < minimum or number > maximum:
        raise ImproperlyConfigured(f"{name}={value!r} must be between {minimum} and {maximum}")
    return number


def strict_decimal(name, default, minimum=0, maximum=None):
    value = _raw(name)
    if value is None:
        return Decimal(default)
    if not _DECIMAL.fullmatch(value):
        if value.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise ImproperlyConfigured(f"{name}={value!r} must be a finite number >= {minimum}")
        raise ImproperlyConfigured(f"{name}={_shown(value)} is not a decimal number (ASCII digits, e.g. 0.000001)")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={_shown(value)} is not a decimal number") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ImproperlyConfigured(f"{name}={_shown(value)} must be {bounds}")
    return Decimal(0) if number.is_zero() else number


def strict_str(name, default=None):
    value = _raw(name)
    return default if value is None else value


def strict_networks(name):
    """A comma-separated list of IP addresses or networks (10.0.0.0/8), validated."""

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


def strict_choice(name, default, choices):
    """One of ``choices``, compared case-insensitively, returned as spelled in ``choices``."""
    value = _raw(name)
    if value is None:
        return default
    for choice in choices:
        if value.upper() == choice.upper():
            return choice
    raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")


def strict_redis_url(name):
    """redis://[:password@]host[:port][/db], rediss://… or unix:///path; checked now, not at the
    first job (redis-py would accept a URL without a host and fail later, or ignore a bad db)."""
    value = _raw(name)
    if value is None:
        return None
    try:
        parsed = urlparse(value)
        if not value.startswith(("redis://", "rediss://", "unix://")):  # as redis-py checks it
            raise ValueError("Redis URL must specify one of the following schemes (redis://, rediss://, unix://)")
        if parsed.query:
            # Options (?socket_timeout=…) are checked by redis-py's own parser. Only then: importing
            # redis costs every process 0.15 s of CPU, and most (a command, the admin) never use it.
            from redis.connection import parse_url

            parse_url(value)
        if parsed.scheme in ("redis", "rediss"):
            if not parsed.hostname:
                raise ValueError("it has no host (e.g. redis://127.0.0.1:6379/0)")
            if parsed.port is not None and not 1 <= parsed.port <= 65535:
                raise ValueError("its port must be between 1 and 65535")
            db = parsed.path.lstrip("/")
            if db and not db.isdigit():
                raise ValueError(f"its database {db!r} is not a number")
        elif not parsed.path:
            raise ValueError("a unix:// URL needs a socket path")
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}={_hide_password(value)!r} is not a Redis URL: {error}") from None
    return value


def strict_host(name):
    """A host name or address, without a scheme, path, port or spaces."""
    value = _raw(name)
    if value is None:
        return None
    if "://" in value or "/" in value or any(c.isspace() for c in value):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a host name (no scheme or path; the port goes in its own variable)"
        )
    return value


def strict_token(name, min_length=16):
    """A secret token: long enough to resist guessing, without spaces (a header value)."""
    value = _raw(name)
    if value is None:
        return None
    if len(value) < min_length or any(c.isspace() for c in value):
        raise ImproperlyConfigured(
            f"{name} must be at least {min_length} characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return value


_DOTTED_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def strict_dotted_paths(name):
    """A comma-separated list of dotted paths to functions (package.module.function), each checked
    for its form here and for being importable by a system check (snapshots.task_policy)."""
    value = _raw(name)
    if value is None:
        return []
    entries = [entry.strip() for entry in value.split(",")]
    for entry in entries:
        if not _DOTTED_PATH.fullmatch(entry):
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not a dotted path to a function (e.g. myproject.jobs.send_report)"
            )
    return entries


def _hide_password(url):
    return re.sub(r"//([^@/]*:)?[^@/]*@", "//***@", url)


def strict_database_url(name):
    """A PostgreSQL URL as Django's DATABASES entry (SQLite is never an option: its DECIMAL is a float)."""
    value = _raw(name)
    if value is None:
        return None
    if urlparse(value).scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(f"{name} must point at PostgreSQL (postgres://...)")
    try:
        config = env.db_url_config(value)
    except (ValueError, KeyError) as error:  # a bad port, an unknown scheme
        raise ImproperlyConfigured(f"{name}={_hide_password(value)!r} is not a database URL: {error}") from None
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"{name} must point at PostgreSQL (postgres://...)")
    # A Unix socket as libpq writes it, postgres://user@/name?host=/run/dir&port=5432: django-environ
    # leaves host and port among the OPTIONS; HOST and PORT are where Django and our tools read them.
    options = config.get("OPTIONS", {})
    if "host" in options:
        config["HOST"] = str(options.pop("host"))
    if "port" in options:
        config["PORT"] = str(options.pop("port"))
    return config
