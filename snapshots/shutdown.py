"""How a qcluster stops: promptly when idle, within a bound when busy, whoever is signalled.

django-q2 1.11 (django_q/cluster.py) stops a cluster when its main process gets SIGTERM or SIGINT:
the main process sets the sentinel's stop event and joins it; the sentinel stops the pusher, hands
each worker a STOP pill behind the tasks already fetched, and waits for the workers — as long as
their jobs take. Two things go wrong with that, and this module, installed by snapshots/apps.py in
every process that loads Django, fixes both:

- **SIGTERM to the whole process group** (`timeout qcluster`, a supervisor killing the group, the
  old `dev.py up`) also reaches the sentinel, whose default action kills it. Killed while waiting
  on its stop event, it never acknowledges the main process's `Event.set()`, which then blocks
  forever inside the signal handler. Here the sentinel ignores SIGTERM (its main process stops it
  in order); its workers, pusher and monitor keep the default action, so django-q2 can still
  terminate a worker whose job timed out.
- **A busy worker delays the stop without bound**, past compose's `stop_grace_period`, after which
  the container is SIGKILLed without a word. Here a stop waits for running jobs at most
  ``settings.Q_CLUSTER_STOP_GRACE_SECONDS`` and logs, for each job, whether it finished or was
  abandoned (its worker killed). An abandoned job leaves nothing half-written — every job writes
  in its own database transactions, a snapshot boundary is marked completed only with all its
  rows — and the next scheduled run of its period catches the boundary up (tests/faults).
"""

import logging
import os
import signal
import threading
import time

logger = logging.getLogger("snapshots.shutdown")


def install():
    """Patch django-q2's Sentinel (idempotent). Its class is what the cluster forks, so the patch
    reaches the sentinel process the main process starts."""
    from django_q.cluster import Sentinel

    if getattr(Sentinel, "bagtracker_shutdown", False):
        return
    original_init, original_stop = Sentinel.__init__, Sentinel.stop

    def __init__(self, *args, start=True, **kwargs):
        original_init(self, *args, start=False, **kwargs)  # sets SIGTERM to its default action
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Whatever it forks (workers, pusher, monitor) gets the default action back.
        os.register_at_fork(after_in_child=_default_sigterm)
        if start:
            self.start()

    def stop(self):
        watchdog = threading.Thread(target=_bound_running_jobs, args=(self,), daemon=True, name="stop-watchdog")
        watchdog.start()
        original_stop(self)

    Sentinel.__init__, Sentinel.stop = __init__, stop
    Sentinel.bagtracker_shutdown = True


def _default_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _busy(process):
    return process.is_alive() and process.timer.value > 0  # django-q2's worker timer: > 0 while a job runs


def _bound_running_jobs(sentinel, poll=0.1):
    from django.conf import settings

    grace = settings.Q_CLUSTER_STOP_GRACE_SECONDS
    running = [p for p in list(sentinel.pool) if _busy(p)]
    if not running:
        return
    names = ", ".join(f"{p.name} (pid {p.pid})" for p in running)
    logger.warning("stopping: waiting up to %s s for the running job of %s", grace, names)
    started = time.monotonic()
    while running:
        for process in list(running):
            if not _busy(process):
                running.remove(process)
                logger.warning("stopping: %s finished its job after %.1f s", process.name, time.monotonic() - started)
        if running and time.monotonic() - started >= grace:
            for process in running:
                with process.timer.get_lock():  # never while the worker hands in a result (it holds the lock)
                    if process.is_alive() and process.timer.value > 0:
                        process.kill()
                        logger.error(
                            "stopping: abandoned the job of %s (pid %s) after %s s; it wrote nothing half-done "
                            "and the next scheduled run catches up a snapshot boundary it missed",
                            process.name,
                            process.pid,
                            grace,
                        )
            return
        time.sleep(poll)
