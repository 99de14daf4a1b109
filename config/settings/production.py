"""Production: secrets and hosts come from the environment, with no defaults for secrets."""

from django.core.exceptions import ImproperlyConfigured

from config.env import env, strict_bool, strict_int

from .base import *  # noqa: F403 -- Django settings layering: production = base + overrides

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
