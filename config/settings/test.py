"""The test suite's settings (pyproject.toml points pytest at them): local settings on servers the
tests start themselves, so a test can never touch a database or Redis it did not start.

- PostgreSQL: DATABASE_URL when it is set (pytest-django creates test_<name> beside it); otherwise
  an embedded PostgreSQL of the run's own, in a temporary directory (never the one `dev.py up`
  uses, so a running `up` never sees, let alone runs, a test's tasks).
- Redis: always a private embedded Valkey of the run's own on a Unix socket; REDIS_* variables of
  the environment are ignored. Each pytest-xdist worker uses a database of its own on it.

The first process of a run (pytest itself) starts both and stops them when it exits; the xdist
workers it spawns and the subprocesses tests start inherit them through the environment.
"""

import atexit
import os
import shutil
import tempfile

from config import embedded_postgres, embedded_redis

_SERVERS = "BAGTRACKER_TEST_SERVERS"  # the run's directory, set by the process that started them


def _start_servers():
    directory = tempfile.mkdtemp(prefix="bagtracker-test-")
    started_database = not os.environ.get("DATABASE_URL")
    if started_database:
        db = embedded_postgres.ensure_running(directory)
        os.environ["DATABASE_URL"] = f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}&port={db['PORT']}"
    embedded_redis.ensure_running(directory, persist=False)
    os.environ[_SERVERS] = directory

    def stop():
        embedded_redis.stop(directory)
        if started_database:
            embedded_postgres.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    return directory


_directory = os.environ.get(_SERVERS) or _start_servers()
for _name in [name for name in os.environ if name.startswith("REDIS_")]:
    del os.environ[_name]
# Database 0 for pytest itself, 1 + n for xdist worker gw<n>: workers never share a queue.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
os.environ["REDIS_URL"] = embedded_redis.url(_directory, db=1 + int(_worker[2:]) if _worker else 0)
# Nothing a test runs may fall back to the checkout's .data/ (the servers of `dev.py up`).
os.environ["BAGTRACKER_DATA_DIR"] = _directory
os.environ.pop("BAGTRACKER_BROKER", None)

from .local import *  # noqa: E402, F403

# Hashing a password at full strength takes 0.3 s; a test logs in many times.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
