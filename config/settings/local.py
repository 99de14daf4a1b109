"""Local development: the zero-setup default (no variable needs to be set).

What the environment leaves unset is started here, embedded, in the data directory (.data/ or
BAGTRACKER_DATA_DIR), and shared by every process that loads these settings: PostgreSQL without
DATABASE_URL, a Redis-compatible broker (Valkey) without REDIS_URL / REDIS_HOST. Both keep running
until `python3 dev.py stop`. `manage.py embedded_db` reports on them without starting them.
"""

from config import embedded_postgres, embedded_redis
from config.env import strict_bool, strict_str
from config.q_cluster import q_cluster_settings

from .base import *  # noqa: F403 -- Django settings layering: local = base + overrides
from .base import (  # the values built on below
    BROKER,
    DATA_DIR,
    DATABASE_CONFIG,
    Q_CLUSTER_WORKERS,
    REDIS_DB,
    REDIS_HOST,
    REDIS_PASSWORD,
    REDIS_PORT,
    REDIS_URL,
    databases,
)

DEBUG = strict_bool("DJANGO_DEBUG", True)
# A fixed key is fine for a local machine; production.py has no default.
SECRET_KEY = strict_str("DJANGO_SECRET_KEY", "local-development-only-not-a-secret")

# manage.py sets this for `embedded_db`, whose status and stop must not start what they report on.
START_EMBEDDED = strict_bool("BAGTRACKER_START_EMBEDDED", True)

EMBEDDED_DATABASE = DATABASE_CONFIG is None
if not EMBEDDED_DATABASE:
    DATABASES = databases(DATABASE_CONFIG, embedded=False)
elif START_EMBEDDED:
    DATABASES = databases(embedded_postgres.ensure_running(DATA_DIR), embedded=True)
else:
    DATABASES = databases(embedded_postgres.settings_if_running(DATA_DIR), embedded=True)

EMBEDDED_BROKER = BROKER == "redis" and not (REDIS_URL or REDIS_HOST)
if EMBEDDED_BROKER:
    REDIS_URL = embedded_redis.ensure_running(DATA_DIR) if START_EMBEDDED else embedded_redis.url(DATA_DIR)

# The job cluster's full configuration (timeouts, retries, recycling) is in config/q_cluster.py.
Q_CLUSTER = q_cluster_settings(
    redis_url=REDIS_URL,
    redis_host=REDIS_HOST,
    redis_port=REDIS_PORT,
    redis_db=REDIS_DB,
    redis_password=REDIS_PASSWORD,
    workers=Q_CLUSTER_WORKERS,
    orm=BROKER == "orm",
)
