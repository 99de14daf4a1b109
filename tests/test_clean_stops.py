"""Clean stops, with real processes and measured times: an idle `qcluster` stops on SIGTERM within
5 s whether its main process or its whole group is signalled; a busy one lets its job finish, or
abandons it after Q_CLUSTER_STOP_GRACE_SECONDS, and says which; Ctrl-C on `dev.py up` returns
within 5 s and leaves no cluster or web process. (snapshots/shutdown.py, dev.py stop_processes.)"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from django_q.models import Task
from django_q.tasks import async_task

from tests.faults.support import free_port
from tests.jobs_support import ROOT, QCluster, process_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SLEEP = "time.sleep"  # the busy job: allowed for these clusters only (snapshots/task_policy.py)


def stop_and_time(cluster, signal_group):
    """SIGTERM as a supervisor sends it; the seconds until the cluster's main process exited."""
    started = time.monotonic()
    if signal_group:
        os.killpg(cluster.process.pid, signal.SIGTERM)
    else:
        cluster.process.send_signal(signal.SIGTERM)
    code = cluster.process.wait(timeout=90)
    return code, time.monotonic() - started


def family(pid):
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _children_of(process):
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("signal_group", [False, True], ids=["main-process", "process-group"])
def test_an_idle_cluster_stops_on_sigterm_within_5_s(tmp_path, signal_group):
    cluster = QCluster(process_env(), tmp_path / "qcluster.log").start().wait_ready()
    processes = family(cluster.process.pid)
    try:
        code, seconds = stop_and_time(cluster, signal_group)
    finally:
        cluster.stop()
    assert code == 0, cluster.log()[-2000:]
    assert seconds < 5, f"stopped after {seconds:.1f} s"
    assert "has stopped." in cluster.log()
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_busy_cluster_lets_its_job_finish_within_the_grace_period_and_says_so(tmp_path):
    env = process_env(Q_CLUSTER_STOP_GRACE_SECONDS=30, BAGTRACKER_EXTRA_TASKS=SLEEP)
    cluster = QCluster(env, tmp_path / "qcluster.log").start().wait_ready()
    try:
        task_id = async_task(SLEEP, 3)
        cluster.worker_processing(SLEEP)
        code, seconds = stop_and_time(cluster, signal_group=False)
    finally:
        cluster.stop()
    assert code == 0 and seconds < 3 + 5, f"stopped after {seconds:.1f} s"
    assert "stopping: waiting up to 30 s for the running job of" in cluster.log()
    assert "finished its job after" in cluster.log()
    assert Task.objects.get(id=task_id).success  # its result was saved before the cluster stopped


def test_a_busy_cluster_abandons_a_job_that_outlasts_the_grace_period_and_says_so(tmp_path):
    env = process_env(Q_CLUSTER_STOP_GRACE_SECONDS=2, BAGTRACKER_EXTRA_TASKS=SLEEP)
    cluster = QCluster(env, tmp_path / "qcluster.log").start().wait_ready()
    try:
        async_task(SLEEP, 120)
        worker = cluster.worker_processing(SLEEP)
        code, seconds = stop_and_time(cluster, signal_group=False)
    finally:
        cluster.stop()
    assert code == 0 and seconds < 2 + 5, f"stopped after {seconds:.1f} s"
    assert f"(pid {worker.pid}) after 2 s" in cluster.log()
    assert "stopping: abandoned the job of" in cluster.log()
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def _as_a_terminal_job():
    # A terminal's foreground job starts with SIGINT at its default. A test run started in the
    # background (`&` in a script, nohup) passes SIGINT on ignored, and Python keeps it ignored: Ctrl-C
    # would then reach nothing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_dev_py_up_returns_within_5_s_and_leaves_no_cluster_or_web_process(tmp_path, wallet):
    # A wallet exists, so `up` loads no demo portfolio into the test database.
    env = process_env(BAGTRACKER_PORT=free_port())
    with open(tmp_path / "up.log", "w") as log:
        up = subprocess.Popen(
            [sys.executable, "dev.py", "up"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, as a terminal's foreground job
            preexec_fn=_as_a_terminal_job,
        )
    output = (tmp_path / "up.log").read_text
    started = []
    try:
        wait_until(lambda: "Admin:" in output() or up.poll() is not None, timeout=180, what="dev.py up's admin URL")
        assert up.poll() is None, output()
        started = [p for p in family(up.pid) if p.pid != up.pid]
        assert {"qcluster", "runserver"} <= {part for p in started for part in p.cmdline()}, output()

        began = time.monotonic()
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        code = up.wait(timeout=60)
        seconds = time.monotonic() - began
    finally:
        # Whatever happened, nothing `up` started outlives the test: the cluster and the admin run in
        # sessions of their own, out of reach of a signal to up's group. What is still running is
        # noted first (the assertion below), then killed.
        if up.poll() is None:
            started = started or [p for p in family(up.pid) if p.pid != up.pid]
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for process in [q for p in left for q in (p, *_children_of(p))]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    assert seconds < 5, f"returned after {seconds:.1f} s:\n{output()[-2000:]}"
    assert code == 0, output()
    assert left == [], [p.cmdline() for p in left]
    assert "stopped the job cluster and the admin" in output()
