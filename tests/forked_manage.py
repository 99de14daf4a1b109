"""`python manage.py …` as a real process, started by forking a Python that has already imported the
libraries (Django, psycopg) instead of a new interpreter importing them again: the process runs
manage.py's own `__main__` with the arguments, environment and working directory given, and its
exit status, stdout and stderr are its own. It costs ~0.35 s of CPU instead of ~0.9 s: the suite
runs some sixty such commands to check what a user sees of bad input and bad settings.

Only libraries that read no setting are imported ahead: settings, apps and the project's modules
load in the forked process, from the environment given. What the environment would change in the
interpreter itself (PYTHONPATH, PYTHON* flags) is not applied: for those, start `sys.executable`.

    run_manage(["check"], env=…) -> subprocess.CompletedProcess

The forking process (one per test process, started at first use) reads one request a line on its
stdin and answers with the child's pid, then its exit status.
"""

import atexit
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Imported before forking: none of them reads a setting or the environment at import.
PRELOAD = (
    "django.core.management",
    "django.db.models",
    "django.db.backends.postgresql.base",
    "django.contrib.postgres.fields",
    "django.core.serializers.json",
    "django.forms",
    "django.http",
    "django.template",
    "django.urls",
    "django.views.generic",
    "psycopg",
)

_server = None


def run_manage(args, env, cwd=ROOT, timeout=60):
    """Run `python manage.py *args` (manage.py of ``cwd``) with exactly ``env``; like
    subprocess.run(…, capture_output=True, text=True, timeout=timeout)."""
    server = _forking_process()
    with tempfile.TemporaryDirectory(prefix="manage-") as directory:
        out, err = Path(directory) / "stdout", Path(directory) / "stderr"
        request = {"args": [str(a) for a in args], "env": dict(env), "cwd": str(cwd), "out": str(out), "err": str(err)}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        pid = json.loads(_read_line(server, 30))["pid"]
        try:
            status = json.loads(_read_line(server, timeout))["status"]
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            _read_line(server, 30)
            raise subprocess.TimeoutExpired(["manage.py", *request["args"]], timeout) from None
        return subprocess.CompletedProcess(
            ["manage.py", *request["args"]], status, out.read_text(errors="replace"), err.read_text(errors="replace")
        )


def _read_line(server, timeout):
    ready, _, _ = select.select([server.stdout], [], [], timeout)
    if not ready:
        raise subprocess.TimeoutExpired("manage.py", timeout)
    line = server.stdout.readline()
    if not line:
        raise RuntimeError(f"the forking process exited ({server.wait()})")
    return line


def _forking_process():
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=ROOT,
        )
        atexit.register(_server.kill)
    return _server


def _serve():
    for name in PRELOAD:
        __import__(name)
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        replies.flush()
        pid = os.fork()
        if pid == 0:
            _become(request)
            runpy.run_path(str(Path(request["cwd"]) / "manage.py"), run_name="__main__")
            sys.exit(0)  # as the interpreter does at the end of the script: atexit handlers, flushed output
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


def _become(request):
    """The forked child turns into `python manage.py …` started in ``cwd`` with ``env``."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = ["manage.py", *request["args"]]
    sys.path[0] = request["cwd"]  # a script's directory comes first on its path


if __name__ == "__main__":
    sys.path[0] = str(ROOT)
    _serve()
