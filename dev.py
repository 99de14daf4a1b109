#!/usr/bin/env python3
"""Zero-setup entry point: needs nothing but Python 3.11 (standard library only).

    python3 dev.py up       create .venv, install, migrate, load a demo portfolio into an empty
                            database, start the job cluster (qcluster) and the admin (runserver)
    python3 dev.py test     run the test suite on four processes (extra arguments go to pytest);
                            --fast: the fast tier (no real-process tests)
    python3 dev.py stop     stop the embedded PostgreSQL and Valkey (started when DATABASE_URL /
                            REDIS_URL are unset); Ctrl-C on `up` leaves them running

Without DATABASE_URL the database is an embedded PostgreSQL in .data/ (or BAGTRACKER_DATA_DIR), and
without REDIS_URL / REDIS_HOST the broker an embedded Valkey (Redis-compatible) beside it. The tests
(`dev.py test`) start servers of their own and never touch these.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ROOT / "requirements-dev.txt"  # includes requirements.txt
STAMP = VENV / ".requirements.sha256"
HOST, PORT = "127.0.0.1", os.environ.get("BAGTRACKER_PORT", "8000")


def say(message):
    print(f"==> {message}", flush=True)


def ensure_venv():
    if sys.version_info < (3, 11):  # noqa: UP036 -- dev.py runs on any python3, before the venv exists
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    if not PYTHON.exists():
        say("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + (ROOT / "requirements.txt").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        say("installing requirements-dev.txt (and requirements.txt) into .venv")
        pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        STAMP.write_text(digest)


def manage(*args, **kwargs):
    return subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, check=True, **kwargs)


def wait_for_http(url, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def wait_for_task(task_id, seconds):
    """True once django-q2 recorded the task as successful (its result is in the admin)."""
    probe = (
        "import sys; from django_q.models import Task; "
        f"t = Task.objects.filter(id={task_id!r}).first(); "
        "sys.exit(0 if t and t.success else (2 if t else 1))"
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = subprocess.run([str(PYTHON), "manage.py", "shell", "-v", "0", "-c", probe], cwd=ROOT).returncode
        if code == 0:
            return True
        if code == 2:
            return False
        time.sleep(1)
    return False


def up(smoke=False):
    ensure_venv()
    say("migrating the database")
    manage("migrate", "--no-input", "-v", "0")
    seeded = manage("seed_demo", "--if-empty", capture_output=True, text=True).stdout.strip()
    print(seeded, flush=True)
    if seeded.startswith("Seeded"):
        say("backfilling the demo portfolio's snapshot history")
        # 89 days: inside the default 90-day retention, so the backfill has nothing to clamp.
        since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 89 * 86400))
        recent = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
        for period, start in (("daily", since), ("weekly", since), ("monthly", since), ("hourly", recent)):
            manage("backfill_snapshots", "--period", period, "--since", start)
    login = manage("demo_admin", capture_output=True, text=True).stdout.strip()
    say("starting the job cluster (qcluster) and the admin (runserver)")
    processes = [
        subprocess.Popen([str(PYTHON), "manage.py", "qcluster"], cwd=ROOT, start_new_session=True),
        subprocess.Popen(
            [str(PYTHON), "manage.py", "runserver", "--noreload", f"{HOST}:{PORT}"], cwd=ROOT, start_new_session=True
        ),
    ]
    url = f"http://{HOST}:{PORT}/admin/"
    try:
        # `kill` or a closed terminal stops the cluster and the admin just as Ctrl-C does.
        for number in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, _interrupted)
        if not wait_for_http(url + "login/", 60):
            sys.exit(f"the admin did not answer at {url} within 60 s")
        say("queueing the main job: an hourly snapshot, run by the cluster")
        queued = manage("create_snapshots", "--period", "hourly", "--async", capture_output=True, text=True)
        task_id = queued.stdout.strip().splitlines()[-1].split()[-1]
        print(
            f"\n  Admin:  {url}\n  Login:  {login}\n"
            "  Stop:   Ctrl-C (then `python3 dev.py stop` stops the embedded PostgreSQL and Valkey)\n",
            flush=True,
        )
        if smoke:
            for process in processes:
                if process.poll() is not None:
                    sys.exit(f"{process.args[2]} exited with {process.returncode}")
            if not wait_for_task(task_id, 90):
                sys.exit(f"the cluster did not finish task {task_id} within 90 s")
            say("smoke check passed: the admin answers and the cluster ran the hourly snapshot")
            return 0
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_processes(processes)
        say("stopped the job cluster and the admin (the embedded servers keep running: python3 dev.py stop)")


def _interrupted(number, frame):
    raise KeyboardInterrupt


def stop_processes(processes, seconds=3.5):
    """SIGTERM to each process itself, never to its group: django-q2 stops a cluster in order from its
    main process. Whatever still runs after ``seconds`` (a job that outlasts them, a stuck process)
    is killed with its whole group, so Ctrl-C returns within 5 s and leaves nothing behind."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{process.args[2]} did not stop within {seconds} s: killed, with its group")
            os.killpg(process.pid, signal.SIGKILL)  # alive, so the group is still its own
            process.wait()


# The fast tier: everything but the tests that start real processes (clusters, servers, a browser)
# and the long property runs; the full suite runs them all.
FAST = ["-m", "not e2e and not faults and not bench and not slow"]


# Worker processes: four for the full suite on two cores, because many of its tests wait (for a
# subprocess, a cluster, a server, the one real scheduler tick) while another worker computes; two
# for the fast tier, whose tests compute. Whole files per worker (a module's fixtures start once),
# handed out in the order tests/conftest.py sets: longest first.
WORKERS, FAST_WORKERS = "4", "2"
XDIST = ["--dist", "loadfile", "--no-loadscope-reorder"]


def test(args):
    """pytest on four processes (two for `--fast`, the fast tier; pytest-xdist, `-n 0` for one). The tests
    start their own PostgreSQL (unless DATABASE_URL is set) and Redis: config/settings/test.py."""
    ensure_venv()
    fast = "--fast" in args
    if fast:
        args = [*FAST, *(a for a in args if a != "--fast")]
    if "no:xdist" not in args and not any(a.startswith(("-n", "--numprocesses", "--dist")) for a in args):
        args = ["-n", FAST_WORKERS if fast else WORKERS, *XDIST, *args]
    return subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT).returncode


def stop():
    ensure_venv()
    manage("embedded_db", "stop")
    return 0


def main(argv):
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "up":
        return up(smoke="--smoke" in rest)
    if command == "test":
        return test(rest)
    if command == "stop":
        return stop()
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
