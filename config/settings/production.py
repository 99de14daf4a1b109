"""Production: secrets and hosts come from the environment, with no defaults for secrets. The
database and the broker are servers of their own: nothing embedded is ever started here."""

from django.core.exceptions import ImproperlyConfigured

from config.env import env, strict_bool, strict_int
from config.q_cluster import q_cluster_settings

from .base import *  # noqa: F403 -- Django settings layering: production = base + overrides
from .base import (  # the values built on below
    DATABASE_CONFIG,
    Q_CLUSTER_WORKERS,
    REDIS_DB,
    REDIS_HOST,
    REDIS_PASSWORD,
    REDIS_PORT,
    REDIS_URL,
    databases,
)

_missing = [
    name
    for name, value in (
        ("DATABASE_URL", DATABASE_CONFIG),
        ("REDIS_URL or REDIS_HOST", REDIS_URL or REDIS_HOST),
    )
    if not value
]
if _missing:
    raise ImproperlyConfigured(
        f"production settings need {' and '.join(_missing)} (they start no embedded database or broker)"
    )
DATABASES = databases(DATABASE_CONFIG, embedded=False)
EMBEDDED_DATABASE = EMBEDDED_BROKER = False
# The job cluster's full configuration (timeouts, retries, recycling) is in config/q_cluster.py.
Q_CLUSTER = q_cluster_settings(
    redis_url=REDIS_URL,
    redis_host=REDIS_HOST,
    redis_port=REDIS_PORT,
    redis_db=REDIS_DB,
    redis_password=REDIS_PASSWORD,
    workers=Q_CLUSTER_WORKERS,
)

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: start-up fails without it
if SECRET_KEY.startswith("change-me"):  # .env.example's placeholder, copied but never replaced
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is still the placeholder of .env.example; set a long random value "
        "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = strict_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = strict_int("DJANGO_SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = strict_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = strict_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True

# /health and /metrics are probed over plain HTTP inside the network (container health checks,
# Prometheus), never redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]

# gunicorn serves the admin's static files itself (collected into STATIC_ROOT in the image).
_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware")  # noqa: F405 -- from base
MIDDLEWARE = [*MIDDLEWARE[: _security + 1], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[_security + 1 :]]  # noqa: F405 -- from base
