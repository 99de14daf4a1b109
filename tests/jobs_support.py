"""Support for the job tests: the Redis of the test run, a real `manage.py qcluster` subprocess,
and bounded waits. Imported by the job test modules (fixtures are re-exported there)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_client
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_TEST_URL = "redis://127.0.0.1:6379/3"


def redis_test_url():
    """REDIS_TEST_URL, pinged; skip (or fail when BAGTRACKER_REQUIRE_REDIS=1) if unreachable."""
    url = os.environ.get("REDIS_TEST_URL", DEFAULT_REDIS_TEST_URL)
    try:
        redis_client.from_url(url, socket_connect_timeout=2).ping()
    except redis_client.RedisError as error:
        message = f"Redis at {url} is unreachable ({error})"
        if os.environ.get("BAGTRACKER_REQUIRE_REDIS") == "1":
            pytest.fail(message + " and BAGTRACKER_REQUIRE_REDIS=1")
        pytest.skip(message)
    return url


@pytest.fixture
def redis_url():
    """A Redis database of our own, empty before and after the test."""
    url = redis_test_url()
    connection = redis_client.from_url(url)
    connection.flushdb()
    yield url
    connection.flushdb()


def wait_until(predicate, timeout, interval=0.2, what="condition"):
    """Poll predicate() until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def database_url_for_subprocess():
    """The URL of the database pytest-django created (test_<name>), for subprocesses."""
    db = settings.DATABASES["default"]
    host = db.get("HOST") or ""
    if host.startswith("/"):  # embedded server: Unix socket
        return f"postgres://{db['USER']}@/{db['NAME']}?host={host}" + (f"&port={db['PORT']}" if db.get("PORT") else "")
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{host or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def process_env(broker_url=None, **extra):
    """The environment of a subprocess on the test database: Redis at broker_url, else the ORM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(
        DATABASE_URL=database_url_for_subprocess(),
        DJANGO_SETTINGS_MODULE="config.settings.local",
        PYTHONUNBUFFERED="1",
        Q_CLUSTER_WORKERS="1",
    )
    if broker_url:
        env["REDIS_URL"] = broker_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(*args, env, timeout=60):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


class QCluster:
    """`manage.py qcluster` as a subprocess in its own process group; always stopped."""

    def __init__(self, env, log_path, cwd=ROOT):
        self.env = env
        self.log_path = Path(log_path)
        self.cwd = cwd  # a node of its own: any working directory will do
        self.process = None

    def start(self):
        self._log = open(self.log_path, "w")  # noqa: SIM115 -- the process writes to it until stop() closes it
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def assert_running(self):
        if self.process.poll() is not None:
            raise AssertionError(f"qcluster exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return True

    def wait_ready(self, timeout=30):
        wait_until(lambda: self.assert_running() and "running." in self.log(), timeout, what="qcluster start-up")
        return self

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            self._close()
            return
        # SIGTERM to the cluster's main process only: it stops its sentinel, workers and monitor
        # in order. The whole group is killed only if that takes too long.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close()

    def _close(self):
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture
def qcluster(tmp_path):
    """start(env) -> a running QCluster; every cluster started is stopped at teardown."""
    started = []

    def start(env, name="qcluster"):
        cluster = QCluster(env, tmp_path / f"{name}-{len(started)}.log")
        started.append(cluster)
        return cluster.start().wait_ready()

    yield start
    for cluster in started:
        cluster.stop()
