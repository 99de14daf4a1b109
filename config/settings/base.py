"""Settings shared by every environment. Everything an operator sets comes from the environment,
read here and nowhere else (see .env.example for the full list with defaults)."""

from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config import embedded_postgres
from config.env import (
    env,
    strict_bool,
    strict_choice,
    strict_database_url,
    strict_decimal,
    strict_dotted_paths,
    strict_host,
    strict_int,
    strict_networks,
    strict_redis_url,
    strict_str,
    strict_token,
)
from snapshots import cost_basis

BASE_DIR = Path(__file__).resolve().parent.parent.parent

environ_file = BASE_DIR / ".env"
if environ_file.exists():
    env.read_env(str(environ_file))

DEBUG = strict_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.admin_site.BagTrackerAdminConfig",  # django.contrib.admin with the console (config/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "bagtracker",
    "snapshots",
]

MIDDLEWARE = [
    # /health and /metrics answer any Host (container health checks, in-network scrapes); every
    # other request is checked against ALLOWED_HOSTS as usual. Why: config/probes.py.
    "config.probes.ProbeHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # With a replica: a browser that has just written reads the primary (read_replica.py).
    "read_replica.read_your_writes_middleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL only -------------------------------------------------------------------
# DATABASE_URL selects a server. Without it, local settings start an embedded PostgreSQL in the data
# directory (config/settings/local.py); production settings refuse to start. SQLite is never an
# option: its DECIMAL is a float.
DATABASE_CONFIG = strict_database_url("DATABASE_URL")  # None when unset
DATABASE_CONN_MAX_AGE = strict_int("DATABASE_CONN_MAX_AGE", 0)
# The embedded servers' directory (.data/ of the checkout, or BAGTRACKER_DATA_DIR).
DATA_DIR = embedded_postgres.data_dir(BASE_DIR)

# An optional streaming replica of that server: the console's pages and the exports read it while
# it trails the primary by at most DATABASE_REPLICA_MAX_LAG_SECONDS; everything else (writes, jobs,
# migrations) uses the primary. Unset: one database, as before (read_replica.py).
DATABASE_REPLICA_MAX_LAG_SECONDS = strict_int("DATABASE_REPLICA_MAX_LAG_SECONDS", 5)
DATABASE_REPLICA_CONFIG = strict_database_url("DATABASE_REPLICA_URL")  # None when unset


def databases(default, embedded):
    """DATABASES from the primary's settings (local.py and production.py choose them), plus the
    replica of DATABASE_REPLICA_URL when it is set."""
    default = {**default, "CONN_MAX_AGE": DATABASE_CONN_MAX_AGE}
    if DATABASE_REPLICA_CONFIG is None:
        return {"default": default}
    if embedded:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs DATABASE_URL: the embedded database has no replica")
    replica = {**DATABASE_REPLICA_CONFIG, "CONN_MAX_AGE": DATABASE_CONN_MAX_AGE}
    # A replica that does not answer is skipped quickly, not waited on for each page.
    replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
    # Tests read the test database through the replica alias instead of creating another.
    replica["TEST"] = {"MIRROR": "default"}
    return {"default": default, "replica": replica}


DATABASE_ROUTERS = ["read_replica.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A cache shared by every process: django-q2 keeps the cluster heartbeats that `qinfo`, `qmonitor`
# and /metrics read in it when the broker is the ORM (Redis keeps its own). The table is created
# after each migrate (snapshots/apps.py).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "bagtracker_cache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []

# --- Browser hardening (README "Security") -------------------------------------------------------
# Content-Security-Policy: the admin and the console load scripts, styles, images and fonts from
# this site only (Chart.js is vendored, chart data comes as json_script, never as inline script),
# so no inline script or style can run even if some text escaped its escaping.
# tests/test_browser_csp.py opens every console and admin page in Chromium: no violation.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Django's defaults, stated so that a reader (and tests/test_web_hardening.py) sees them: no page
# in a frame, no MIME sniffing, the Referer only to this site, a window of its own (COOP).
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True

# --- Ledger and snapshots (docs/ledger.md, docs/snapshots.md) ------------------------------------
# Sane ranges: a threshold above a billion units or a retention beyond a century (36,500 days) is a
# typo that would pass start-up and break every later run (a cutoff before year 1).
MAX_DUST_THRESHOLD = 10**9
MAX_RETENTION_DAYS = 36_500
BALANCE_DUST_THRESHOLD = strict_decimal("BALANCE_DUST_THRESHOLD", "0.000001", maximum=MAX_DUST_THRESHOLD)
# average (moving average cost) or fifo; docs/ledger.md. A typo stops start-up.
BALANCE_COST_BASIS = strict_choice("BALANCE_COST_BASIS", cost_basis.DEFAULT, cost_basis.METHODS)
BALANCE_SNAPSHOT_ENABLED = strict_bool("BALANCE_SNAPSHOT_ENABLED", True)
BALANCE_HOURLY_SNAPSHOTS = strict_bool("BALANCE_HOURLY_SNAPSHOTS", True)
BALANCE_DAILY_SNAPSHOTS = strict_bool("BALANCE_DAILY_SNAPSHOTS", True)
BALANCE_WEEKLY_SNAPSHOTS = strict_bool("BALANCE_WEEKLY_SNAPSHOTS", True)
BALANCE_MONTHLY_SNAPSHOTS = strict_bool("BALANCE_MONTHLY_SNAPSHOTS", True)
BALANCE_SNAPSHOT_CATCH_UP = strict_bool("BALANCE_SNAPSHOT_CATCH_UP", True)
# Catch-up takes at most this many missed boundaries per run (newest first); the next run goes on.
BALANCE_CATCH_UP_MAX_BOUNDARIES = strict_int("BALANCE_CATCH_UP_MAX_BOUNDARIES", 500, minimum=1)
# Wallets per shard of a boundary taken by the job cluster (docs/snapshots.md, "Shards"): a fleet
# with more active wallets than this is split into wallet-id ranges that any worker takes; 0 never
# splits. One shard is the single statement of a small fleet.
BALANCE_SNAPSHOT_SHARD_WALLETS = strict_int("BALANCE_SNAPSHOT_SHARD_WALLETS", 5000, minimum=0)
BALANCE_HOURLY_RETENTION_DAYS = strict_int("BALANCE_HOURLY_RETENTION_DAYS", 7, maximum=MAX_RETENTION_DAYS)
BALANCE_HISTORY_RETENTION_DAYS = strict_int("BALANCE_HISTORY_RETENTION_DAYS", 90, maximum=MAX_RETENTION_DAYS)
BALANCE_WEEKLY_RETENTION_DAYS = strict_int(
    "BALANCE_WEEKLY_RETENTION_DAYS", BALANCE_HISTORY_RETENTION_DAYS, maximum=MAX_RETENTION_DAYS
)
BALANCE_MONTHLY_RETENTION_DAYS = strict_int(
    "BALANCE_MONTHLY_RETENTION_DAYS", BALANCE_HISTORY_RETENTION_DAYS, maximum=MAX_RETENTION_DAYS
)

# --- Broker and job cluster ---------------------------------------------------------------------
# Redis when REDIS_URL or REDIS_HOST is set. Without either, local settings start an embedded
# Redis-compatible server (config/embedded_redis.py); production settings refuse to start.
# BAGTRACKER_BROKER=orm chooses django-q2's ORM broker (the queue in the database) instead.
REDIS_URL = strict_redis_url("REDIS_URL")
REDIS_HOST = strict_host("REDIS_HOST")
REDIS_PORT = strict_int("REDIS_PORT", 6379, minimum=1, maximum=65535)
REDIS_DB = strict_int("REDIS_DB", 0, minimum=0)
REDIS_PASSWORD = strict_str("REDIS_PASSWORD")
BROKER = strict_choice("BAGTRACKER_BROKER", "redis", ("redis", "orm"))
Q_CLUSTER_WORKERS = strict_int("Q_CLUSTER_WORKERS", 2, minimum=1, maximum=64)
# On SIGTERM a busy qcluster lets its running jobs finish for at most this long, then abandons them
# (snapshots/shutdown.py). Below compose's stop_grace_period (60 s), which then SIGKILLs silently.
Q_CLUSTER_STOP_GRACE_SECONDS = strict_int("Q_CLUSTER_STOP_GRACE_SECONDS", 45, minimum=0, maximum=3600)
# The cluster runs only the project's jobs (snapshots/task_policy.py) plus these functions
# (comma-separated dotted paths); a schedule, a hook or a queued task naming anything else is refused.
BAGTRACKER_EXTRA_TASKS = strict_dotted_paths("BAGTRACKER_EXTRA_TASKS")

# --- Operations: metrics, Sentry ----------------------------------------------------------------
# /metrics is not public: it answers only a request bearing METRICS_TOKEN ("Authorization: Bearer
# <token>") or coming from an address in METRICS_ALLOWED_IPS (comma-separated). Neither set → 404.
METRICS_TOKEN = strict_token("METRICS_TOKEN")
METRICS_ALLOWED_IPS = strict_networks("METRICS_ALLOWED_IPS")
SENTRY_DSN = strict_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = strict_str("SENTRY_ENVIRONMENT", "production")

# --- Logging: to stdout, one line per event -----------------------------------------------------
LOG_LEVEL = strict_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Optional error reporting: only when SENTRY_DSN is set (web, qcluster and commands alike).
from config.sentry import init_sentry  # noqa: E402 -- runs once every setting above is read

init_sentry(SENTRY_DSN, SENTRY_ENVIRONMENT)
