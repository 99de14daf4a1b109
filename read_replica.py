"""Reads from a streaming replica (DATABASE_REPLICA_URL), writes and jobs on the primary.

A top-level module like command_line.py: the console (snapshots), every command (command_line) and
the settings (the router, the middleware) use it; it imports neither app.

Nothing reads the replica unless it asks to: the console's pages (``@replica_view``) and the export
commands (``reads_replica = True``) enter ``replica_reads()``, which picks one database for
everything read inside it — the replica when it is configured, healthy and close enough, else the
primary. Outside (jobs, writes, the rest of the admin, migrations) every query goes to the primary.

The lag guard asks the primary for its flushed WAL position, then the replica how far it has
replayed. Replayed up to that position = no lag, however long ago the last write was (an idle
primary writes nothing to replay, so ``now() - pg_last_xact_replay_timestamp()`` alone would grow
without any real lag). Behind it, the lag is ``now()`` minus the commit time of the last replayed
transaction: everything committed before that instant is on the replica. The verdict is kept for
CHECK_INTERVAL_SECONDS per process. A replica that is down, promoted or further behind than
DATABASE_REPLICA_MAX_LAG_SECONDS is skipped: its readers read the primary.

Reading your own writes:
- a browser request that wrote (any POST, PUT, PATCH or DELETE: an admin save, an action) gets a
  cookie that makes its console pages read the primary for PIN_SECONDS, longer than the guard lets
  the replica trail, so the next pages show the write;
- an export waits (at most CATCH_UP_WAIT_SECONDS) until the replica has replayed everything the
  primary had committed when the export started, else reads the primary: a script that imports and
  then exports always exports what it imported.
"""

import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest

logger = logging.getLogger(__name__)

REPLICA = "replica"
# The project's data. Sessions, users and the cache stay on the primary: a login or a session
# written a moment ago must be found by the next request.
ROUTED_APPS = {"bagtracker", "snapshots", "django_q"}
CHECK_INTERVAL_SECONDS = 1.0
SETTLE_SECONDS = 0.1
CATCH_UP_WAIT_SECONDS = 1.0
PIN_COOKIE = "bagtracker_read_primary"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

_reading = ContextVar("bagtracker_read_alias", default=DEFAULT_DB_ALIAS)
_verdict = {"checked_at": float("-inf"), "usable": False}


def configured():
    return REPLICA in settings.DATABASES


def pin_seconds():
    """How long a request that wrote keeps its console on the primary: past the guard's bound."""
    return settings.DATABASE_REPLICA_MAX_LAG_SECONDS + int(CHECK_INTERVAL_SECONDS) + 1


def read_alias():
    """The database that reads inside the current replica_reads() block go to (else the primary)."""
    return _reading.get()


@contextmanager
def replica_reads(pinned=False, caught_up=False):
    """Route the reads of the project's data inside the block to the replica when it is usable.

    pinned: read the primary (the caller has just written). caught_up: use the replica only once it
    has replayed everything committed on the primary now (waits up to CATCH_UP_WAIT_SECONDS)."""
    usable = configured() and not pinned and replica_usable()
    alias = REPLICA if usable and (not caught_up or _wait_for_replay(CATCH_UP_WAIT_SECONDS)) else DEFAULT_DB_ALIAS
    token = _reading.set(alias)
    try:
        yield alias
    finally:
        _reading.reset(token)


def replica_view(view):
    """A console view whose reads go to the replica, unless the browser has just written."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        request = next(arg for arg in args if isinstance(arg, HttpRequest))  # a ModelAdmin's view takes self first
        with replica_reads(pinned=PIN_COOKIE in request.COOKIES):
            response = view(*args, **kwargs)
            if hasattr(response, "render") and not response.is_rendered:
                response.render()  # the template's queries belong to the same database
        return response

    return wrapped


def read_your_writes_middleware(get_response):
    """After a request that may have written, its browser's console reads the primary a while."""

    def middleware(request):
        response = get_response(request)
        if request.method in UNSAFE_METHODS and configured():
            response.set_cookie(
                PIN_COOKIE,
                "1",
                max_age=pin_seconds(),
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response

    return middleware


# --- The lag guard --------------------------------------------------------------------------------

_PRIMARY_POSITION_SQL = "SELECT pg_current_wal_flush_lsn()::text"
_REPLICA_STATE_SQL = """
SELECT pg_is_in_recovery(),
       COALESCE(pg_last_wal_replay_lsn() >= %s::pg_lsn, false),
       EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
"""


def replica_lag():
    """Seconds the replica trails the primary (about 0 when it has replayed all the primary had
    flushed); None when it cannot be used at all (unreachable, not a standby, nothing replayed)."""
    started = time.monotonic()
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(_PRIMARY_POSITION_SQL)
            (position,) = cursor.fetchone()
        with connections[REPLICA].cursor() as cursor:
            for look in range(2):
                cursor.execute(_REPLICA_STATE_SQL, [position])
                in_recovery, caught_up, since_last_replay = cursor.fetchone()
                if caught_up or not in_recovery:
                    break
                # WAL just flushed (a checkpoint, an autovacuum) is replayed within milliseconds;
                # a second look tells that apart from a replica really behind.
                if not look:
                    time.sleep(SETTLE_SECONDS)
    except DatabaseError as error:
        connections[REPLICA].close()  # a broken connection is not reused by the next check
        logger.warning("replica unusable, reading the primary: %s", " ".join(str(error).split()))
        return None
    if not in_recovery:
        logger.warning("replica unusable, reading the primary: it is not a standby (promoted?)")
        return None
    if caught_up:
        return time.monotonic() - started  # everything committed before we asked is there
    return since_last_replay  # None: it has replayed no transaction since it started


def replica_usable():
    """The guard's verdict, re-checked at most every CHECK_INTERVAL_SECONDS in this process."""
    now = time.monotonic()
    if now - _verdict["checked_at"] >= CHECK_INTERVAL_SECONDS:
        lag = replica_lag()
        usable = lag is not None and lag <= settings.DATABASE_REPLICA_MAX_LAG_SECONDS
        if lag is not None and not usable:
            limit = settings.DATABASE_REPLICA_MAX_LAG_SECONDS
            logger.warning("replica %.1f s behind (limit %s s): reading the primary", lag, limit)
        _verdict.update(checked_at=time.monotonic(), usable=usable)
    return _verdict["usable"]


def forget_verdict():
    """Check the replica again at the next read (tests, or after reconfiguring it)."""
    _verdict.update(checked_at=float("-inf"), usable=False)


def _wait_for_replay(timeout):
    """True once the replica has replayed the primary's WAL as flushed now; False after timeout."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(_PRIMARY_POSITION_SQL)
            (position,) = cursor.fetchone()
        deadline = time.monotonic() + timeout
        with connections[REPLICA].cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [position])
                if cursor.fetchone()[0]:
                    return True
                if time.monotonic() >= deadline:
                    logger.warning("replica did not replay %s within %s s: reading the primary", position, timeout)
                    return False
                time.sleep(0.02)
    except DatabaseError as error:
        connections[REPLICA].close()
        logger.warning("replica unusable, reading the primary: %s", " ".join(str(error).split()))
        return False


class ReplicaRouter:
    """DATABASE_ROUTERS entry: reads inside replica_reads() to the chosen database, everything else
    (every write, every read outside, every migration) to the primary."""

    def db_for_read(self, model, **hints):
        return _reading.get() if model._meta.app_label in ROUTED_APPS else DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica holds the primary's rows: same ids, same relations

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
