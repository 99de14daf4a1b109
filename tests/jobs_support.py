"""Support for the job tests: the private Redis of the test run, a real `manage.py qcluster`
subprocess, and bounded waits. The fixtures built on them (`redis_url`, `qcluster`) are in
tests/conftest.py."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis as redis_client
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def redis_test_url():
    """The Redis database of this test process on the run's private server (config/settings/test.py):
    never a Redis the tests did not start."""
    return settings.Q_CLUSTER["redis"]


def flush_test_redis():
    redis_client.from_url(redis_test_url()).flushdb()


def queued_payloads():
    """The tasks waiting on the test process's broker (its private Redis), oldest first."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    return [SignedPackage.loads(payload) for payload in broker.connection.lrange(broker.list_key, 0, -1)]


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


def process_env(broker_url=None, orm=False, **extra):
    """The environment of a subprocess on the test database: the ORM broker when ``orm``, else Redis at
    ``broker_url`` (default: this test process's database on the run's private server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "BAGTRACKER_BROKER"))}
    env.update(
        DATABASE_URL=database_url_for_subprocess(),
        DJANGO_SETTINGS_MODULE="config.settings.local",
        PYTHONUNBUFFERED="1",
        Q_CLUSTER_WORKERS="1",
    )
    if orm:
        env["BAGTRACKER_BROKER"] = "orm"
    else:
        env["REDIS_URL"] = broker_url or redis_test_url()
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

    def worker_processing(self, func_name, timeout=10):
        """The worker process running a task of ``func_name``, found by the cluster's own log ("<name>
        processing <task> '<func>'" and "<name> ready for work at <pid>"): whatever the transport
        of its database connection, TCP or a Unix socket."""

        def find():
            log = self.log()
            names = re.findall(r"(\S+) processing \S+ '" + re.escape(func_name) + "'", log)
            ready = names and re.search(re.escape(names[-1]) + r" ready for work at (\d+)", log)
            return psutil.Process(int(ready.group(1))) if ready else None

        return wait_until(find, timeout, interval=0.05, what=f"the worker running {func_name}")

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
