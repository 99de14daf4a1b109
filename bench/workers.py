"""One boundary over N workers: a real `manage.py qcluster` with Q_CLUSTER_WORKERS=N takes the hourly
boundary, in shards of BALANCE_SNAPSHOT_SHARD_WALLETS wallets (0: one statement, not sharded).

The cluster is started and ready before anything is queued; `create_snapshots --async` queues the
job, whose worker plans the shards and queues them; the seconds run from the SnapshotRun's start
(planned, or the single statement begun) to the moment its completion is visible to a reader
(polled every 20 ms), so neither process start-up nor queue latency counts, and every commit does
(a run's own finished_at is set before its last commit).
The broker is the Redis of --redis-url (a database of its own: the benchmark's tasks are the only
ones on it).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from bench import process

RUN_SQL = """
SELECT extract(epoch FROM clock_timestamp() - started_at), rows,
       coalesce(array_length(shard_cuts, 1), 0) + 1
FROM snapshots_snapshotrun WHERE period = 'hourly' AND as_of = %s AND status = 'completed'
"""
# A task of the cluster that failed since the boundary was queued: the boundary will not complete.
FAILED_SQL = """
SELECT func, name FROM django_q_task WHERE success = false AND started >= %s ORDER BY started LIMIT 1
"""
TIMEOUT_SECONDS = 3600


@dataclass
class ClusterRun:
    workers: int
    shards: int
    seconds: float  # the run's own: started (planned) to completed and visible
    wall_seconds: float  # queued to seen completed
    rows: int
    load: float


def _wait_ready(cluster, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.poll() is not None:
            raise RuntimeError(f"qcluster exited with {cluster.returncode}: {log_path.read_text()[-2000:]}")
        if "running." in log_path.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"qcluster not ready after {timeout} s")


def take_boundary(conn, env, redis_url, workers, shard_wallets, at, as_of):
    """Take (period hourly, as_of) with a cluster of ``workers`` workers; its rows must be absent."""
    env = {
        **env,
        "REDIS_URL": redis_url,
        "Q_CLUSTER_WORKERS": str(workers),
        "BALANCE_SNAPSHOT_SHARD_WALLETS": str(shard_wallets),
    }
    with tempfile.TemporaryDirectory() as scratch:
        log_path = process.Path(scratch) / "qcluster.log"
        with open(log_path, "w") as log:
            cluster = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=process.ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                _wait_ready(cluster, log_path)
                started = time.perf_counter()
                since = conn.execute("SELECT now()").fetchone()[0]
                queued = process.manage(
                    ["create_snapshots", "--period", "hourly", "--at", at.isoformat(), "--async"], env
                )
                if not queued.ok:
                    raise RuntimeError(f"could not queue the job: {queued.failure()}")
                deadline = time.monotonic() + TIMEOUT_SECONDS
                while (found := conn.execute(RUN_SQL, [as_of]).fetchone()) is None:
                    if cluster.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the boundary was not completed: {log_path.read_text()[-2000:]}")
                    if (failed := conn.execute(FAILED_SQL, [since]).fetchone()) is not None:
                        raise RuntimeError(f"task {failed[0]} ({failed[1]}) failed: {log_path.read_text()[-2000:]}")
                    time.sleep(0.02)
                wall = time.perf_counter() - started
            finally:
                _stop(cluster)
    seconds, rows, shards = found
    return ClusterRun(workers, shards, float(seconds), wall, rows, os.getloadavg()[0])


def _stop(cluster):
    if cluster.poll() is not None:
        return
    cluster.send_signal(signal.SIGTERM)
    try:
        cluster.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait(timeout=10)
