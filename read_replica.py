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
transaction: everything committed before that instant is on the replica. When that is over the
limit, the guard watches up to SETTLE_SECONDS for the replica to reach the position (an idle
primary's checkpoint is replayed a moment later). The verdict is kept for CHECK_INTERVAL_SECONDS
per process (RECHECK_UNUSABLE_SECONDS once it said "primary"). A replica that is down, promoted or
further behind than DATABASE_REPLICA_MAX_LAG_SECONDS is skipped: its readers read the primary.

Reading your own writes:
- a browser request that wrote (any POST, PUT, PATCH or DELETE: an admin save, an action) gets a
  cookie that makes its console pages read the primary for pin_seconds(), longer than the guard
  lets the replica trail, so the next pages show the write;
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
# A replica that was unusable is asked again after this long (each look may watch it for
# SETTLE_SECONDS: not on every page).
RECHECK_UNUSABLE_SECONDS = 5.0
SETTLE_SECONDS = 1.0
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


def replica_lag(limit):
    """Seconds the replica trails the primary, precise enough to compare with ``limit``: 0 when it
    has replayed everything the primary had flushed; None when it cannot be used at all
    (unreachable, not a standby, nothing replayed since it started)."""
    started = time.monotonic()
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(_PRIMARY_POSITION_SQL)
            (position,) = cursor.fetchone()
        with connections[REPLICA].cursor() as cursor:
            first_look = True
            while True:
                cursor.execute(_REPLICA_STATE_SQL, [position])
                in_recovery, caught_up, since_last_replay = cursor.fetchone()
                if not in_recovery:
                    logger.warning("replica unusable, reading the primary: it is not a standby (promoted?)")
                    return None
                if caught_up:
                    # Everything committed before we asked is there: current at the first look,
                    # else at most as stale as the time we watched.
                    return 0.0 if first_look else time.monotonic() - started
                if since_last_replay is not None and since_last_replay <= limit:
                    return since_last_replay
                # Behind, and its last replayed commit is old: a truly lagging replica, or an idle
                # primary that has just flushed WAL without a commit (a checkpoint, a standby
                # snapshot) which the replica replays a moment later. Watch for a moment.
                if time.monotonic() - started >= SETTLE_SECONDS:
                    return since_last_replay
                first_look = False
                time.sleep(0.02)
    except DatabaseError as error:
        connections[REPLICA].close()  # a broken connection is not reused by the next check
        logger.warning("replica unusable, reading the primary: %s", " ".join(str(error).split()))
        return None


def replica_usable():
    """The guard's verdict, re-checked in this process at most every CHECK_INTERVAL_SECONDS while
    the replica is usable, every RECHECK_UNUSABLE_SECONDS while it is not."""
    now = time.monotonic()
    interval = CHECK_INTERVAL_SECONDS if _verdict["usable"] else RECHECK_UNUSABLE_SECONDS
    if now - _verdict["checked_at"] >= interval:
        limit = settings.DATABASE_REPLICA_MAX_LAG_SECONDS
        lag = replica_lag(limit)
        usable = lag is not None and lag <= limit
        if lag is not None and not usable:
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
