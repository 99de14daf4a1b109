"""A malformed setting stops start-up with one line naming the variable (docs/snapshots.md;
STYLE.md 7): the real `manage.py check` in a subprocess, as a container would start it."""

import os
import subprocess
import sys

import pytest

from tests.forked_manage import run_manage
from tests.jobs_support import ROOT

pytestmark = pytest.mark.faults

MALFORMED = [
    ("BALANCE_DUST_THRESHOLD", "abc"),
    ("BALANCE_DUST_THRESHOLD", "-0.1"),
    ("BALANCE_DUST_THRESHOLD", "NaN"),
    ("BALANCE_SNAPSHOT_ENABLED", "maybe"),
    ("BALANCE_HOURLY_SNAPSHOTS", "flase"),
    ("BALANCE_DAILY_SNAPSHOTS", "2"),
    ("BALANCE_WEEKLY_SNAPSHOTS", "yes please"),
    ("BALANCE_MONTHLY_SNAPSHOTS", "nope"),
    ("BALANCE_SNAPSHOT_CATCH_UP", "sometimes"),
    ("BALANCE_CATCH_UP_MAX_BOUNDARIES", "many"),
    ("BALANCE_CATCH_UP_MAX_BOUNDARIES", "0"),
    ("BALANCE_HOURLY_RETENTION_DAYS", "abc"),
    ("BALANCE_HOURLY_RETENTION_DAYS", "-1"),
    ("BALANCE_HISTORY_RETENTION_DAYS", "1.5"),
    ("BALANCE_WEEKLY_RETENTION_DAYS", "-7"),
    ("BALANCE_MONTHLY_RETENTION_DAYS", "ninety"),
    # ASCII digits only: int() and Decimal() would read these as 7, 1000, 12 and 0.5
    ("BALANCE_HOURLY_RETENTION_DAYS", "\u0667"),
    ("BALANCE_HOURLY_RETENTION_DAYS", "1_000"),
    ("BALANCE_HISTORY_RETENTION_DAYS", "\uff11\uff12"),
    ("BALANCE_DUST_THRESHOLD", "\u0660.\u0665"),
    # sane ranges: these passed start-up and broke every later run
    ("BALANCE_HOURLY_RETENTION_DAYS", "800000"),
    ("BALANCE_HOURLY_RETENTION_DAYS", "99999999999"),
    ("BALANCE_WEEKLY_RETENTION_DAYS", "36501"),
    ("BALANCE_DUST_THRESHOLD", "1E+200000"),
    ("BALANCE_DUST_THRESHOLD", "1000000001"),
    ("BALANCE_DUST_THRESHOLD", "1E99999999999999999999"),
    ("REDIS_DB", "9223372036854775808"),
    ("DATABASE_CONN_MAX_AGE", "99999999999999999999999"),
    ("REDIS_URL", "localhost:6379"),
    ("REDIS_URL", "http://127.0.0.1:6379/0"),
    ("REDIS_URL", "redis://:secret-password@:6379/0"),
    ("REDIS_URL", "redis://127.0.0.1:port/0"),
    ("REDIS_URL", "redis://127.0.0.1:6379/zero"),
    ("REDIS_URL", "redis://127.0.0.1:6379/0?socket_timeout=soon"),  # options: checked by redis-py
    ("REDIS_HOST", "redis://127.0.0.1"),
    ("REDIS_HOST", "my redis"),
    ("REDIS_PORT", "abc"),
    ("REDIS_PORT", "70000"),
    ("REDIS_DB", "-1"),
    ("REDIS_DB", "one"),
    ("DATABASE_URL", "sqlite:///db.sqlite3"),
    ("DATABASE_URL", "mysql://root@127.0.0.1/bagtracker"),
    ("DATABASE_URL", "postgres://postgres:secret-password@127.0.0.1:port/db"),
    ("DATABASE_CONN_MAX_AGE", "forever"),
    ("SENTRY_DSN", "not a dsn"),
    ("METRICS_TOKEN", "short"),
    ("METRICS_TOKEN", "a token with spaces in it"),
    ("METRICS_ALLOWED_IPS", "10.0.0.0/8,localhost"),
    ("Q_CLUSTER_WORKERS", "0"),
    ("LOG_LEVEL", "LOUD"),
    ("DJANGO_DEBUG", "verbose"),
]


def check(**variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BALANCE_", "REDIS_", "METRICS_", "SENTRY_"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", **variables)
    return run_manage(["check"], env=env)


@pytest.mark.parametrize("name, value", MALFORMED, ids=[f"{n}={v}" for n, v in MALFORMED])
def test_a_malformed_variable_stops_start_up_with_one_line_naming_it(name, value):
    result = check(**{name: value})
    assert result.returncode != 0, result.stdout
    assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "secret-password" not in result.stderr  # a URL's password is never echoed


def test_well_formed_variables_start():
    result = check(
        BALANCE_DUST_THRESHOLD="0",
        BALANCE_HOURLY_SNAPSHOTS="off",
        BALANCE_HOURLY_RETENTION_DAYS="0",
        BALANCE_HISTORY_RETENTION_DAYS="36500",
        REDIS_URL="redis://:pw@127.0.0.1:6379/8",
        METRICS_TOKEN="0123456789abcdef0123",
        METRICS_ALLOWED_IPS="10.0.0.0/8, ::1",
        LOG_LEVEL="warning",
    )
    assert result.returncode == 0, result.stderr


def test_traceback_is_still_there_for_whoever_asks():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--traceback"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "REDIS_DB": "x"},
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "REDIS_DB" in result.stderr
