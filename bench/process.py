"""Run one job as its own process and measure it: wall seconds and that process's peak RSS.

The peak RSS is ru_maxrss of exactly this child, from wait4() on its pid (not RUSAGE_CHILDREN,
which accumulates the maximum over every child reaped so far).
"""

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ProcessRun:
    argv: list
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self):
        return self.returncode == 0

    def failure(self):
        lines = (self.stderr or self.stdout).strip().splitlines()
        return f"exit {self.returncode}: {lines[-1] if lines else 'no output'}"


def job_environment(database_url):
    """The environment of a job process: the benchmark database, no broker (none is needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env["DATABASE_URL"] = database_url
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(argv, env, cwd=ROOT):
    """Run ``python argv…`` from the project root (or ``cwd``); returns a ProcessRun once it has exited."""
    command = [sys.executable, *argv]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return ProcessRun(
            argv=argv,
            seconds=seconds,
            peak_rss_mb=usage.ru_maxrss / 1024,
            returncode=child.returncode,
            stdout=out.read(),
            stderr=err.read(),
        )


def manage(args, env):
    return run(["manage.py", *args], env)
