"""Which functions the job cluster may run, checked wherever a task can come from.

django-q2 runs whatever dotted path a Schedule row or a queued task names — `os.system` and
`builtins.eval` included — and calls any `hook` with the result. Here the cluster runs only the
allow-list, `allowed_task_functions()`: the project's jobs plus the functions a deployment names in
BAGTRACKER_EXTRA_TASKS. It is checked

1. when a schedule is edited in the admin (a form error on the field) and on every save of a
   Schedule through the ORM — admin, shell, fixtures, code (pre_save; `schedule_errors` in
   snapshots/schedules.py);
2. before each scheduler tick: a row written around the ORM (SQL, a restored dump) is paused and
   logged (`quarantine_broken_schedules`), so the scheduler never queues it;
3. by the worker, before it resolves a task's function: a refused task is neither imported nor run;
   it is logged at ERROR and kept under *Failed tasks* as "refused: …" (`checked_worker` wraps
   django-q2's worker for the cluster and for `sync` runs alike);
4. before a result hook is called (`call_allowed_hook` replaces django-q2's receiver).

Arguments are bound to the function's signature (inspect.signature) at 1–3, so a task that would
only fail with a TypeError at run time — or carries a stray 2 MB argument — is refused up front.
"""

import inspect
import logging

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from snapshots import job_registry

logger = logging.getLogger("snapshots.jobs")

EXTRA_TASKS_SETTING = "BAGTRACKER_EXTRA_TASKS"


def allowed_task_functions():
    """The dotted path of every function the cluster may run (a frozenset): the one place that
    says so. The project's are the tasks of the job registry (snapshots/job_registry.py); the
    deployment's are settings.BAGTRACKER_EXTRA_TASKS."""
    return job_registry.task_functions() | frozenset(getattr(settings, EXTRA_TASKS_SETTING, ()))


class TaskRefused(ValueError):
    """A function, hook or argument list the cluster will not run."""


def dotted_path(func):
    """The dotted path a task names: the string itself, or module.qualname of a plain function."""
    if isinstance(func, str):
        return func
    if inspect.isfunction(func):
        return f"{func.__module__}.{func.__qualname__}"
    return None


def _shorten(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def allowed_function(func, role="function"):
    """The function ``func`` names, if the allow-list holds it (compared as a dotted path, before
    anything is imported); TaskRefused otherwise."""
    path = dotted_path(func)
    allowed = allowed_task_functions()
    if path not in allowed:
        raise TaskRefused(
            f"{role} {_shorten(path or func)} is not allowed: only the project's jobs and the functions "
            f"listed in {EXTRA_TASKS_SETTING} may run ({', '.join(sorted(allowed))})"
        )
    try:
        target = import_string(path)
    except ImportError as error:
        raise TaskRefused(f"{role} {path!r} cannot be imported: {error}") from None
    if not callable(target):
        raise TaskRefused(f"{role} {path!r} is not a function")
    return target


def check_arguments(target, args, kwargs):
    """TaskRefused unless target(*args, **kwargs) fits the function's signature."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a C function without an introspectable signature
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TaskRefused(f"the arguments do not fit {target.__name__}{signature}: {error}") from None


def check_task(task):
    """TaskRefused unless the task package (django-q2's dict) may run: its function, its
    arguments, its hook and the functions of its chain."""
    target = allowed_function(task.get("func"))
    check_arguments(target, tuple(task.get("args") or ()), dict(task.get("kwargs") or {}))
    if task.get("hook"):
        allowed_function(task["hook"], "hook")
    for link in task.get("chain") or ():
        allowed_function(link[0] if isinstance(link, tuple) else link, "chained function")


# --- The worker ----------------------------------------------------------------------------------


class CheckedTaskQueue:
    """The worker's task queue without the tasks the allow-list refuses: each goes straight to the
    result queue as a failure (so the monitor records it and acknowledges it), never imported,
    never run. django-q2's worker only ever calls ``get()`` on its task queue."""

    def __init__(self, tasks, results):
        self._tasks = tasks
        self._results = results

    def get(self, *args, **kwargs):
        while True:
            task = self._tasks.get(*args, **kwargs)
            if not isinstance(task, dict):  # "STOP"
                return task
            try:
                check_task(task)
                return task
            except Exception as error:  # TaskRefused, or a package too malformed to check
                reason = str(error) if isinstance(error, TaskRefused) else f"{type(error).__name__}: {error}"
            self._refuse(task, reason)

    def _refuse(self, task, reason):
        logger.error("refused task %s (%s): %s", task.get("name"), _shorten(dotted_path(task.get("func"))), reason)
        if task.get("sync"):
            raise TaskRefused(reason)
        # No hook, no chain: nothing the task names is called. ack_failure: never delivered again.
        task.update(
            result=f"refused: {reason}", success=False, stopped=timezone.now(), hook=None, chain=None, ack_failure=True
        )
        self._results.put(task)


_django_q_worker = None


def checked_worker(task_queue, result_queue, timer, *args, **kwargs):
    """django-q2's worker, reading its tasks through CheckedTaskQueue."""
    if _django_q_worker is None:  # a spawned (not forked) process: importing sets Django up, ready() installs
        import django_q.worker  # noqa: F401
    return _django_q_worker(CheckedTaskQueue(task_queue, result_queue), result_queue, timer, *args, **kwargs)


checked_worker.checked = True


def call_allowed_hook(sender, instance, **kwargs):
    """django-q2's result-hook receiver, for allowed hooks only."""
    from django_q.signals import call_hook

    if instance.hook:
        try:
            allowed_function(instance.hook, "hook")
        except TaskRefused as error:
            logger.error("refused hook of task %s: %s", instance.name, error)
            return
    call_hook(sender, instance, **kwargs)


def install():
    """Put the checks into django-q2 (from SnapshotsConfig.ready); idempotent."""
    global _django_q_worker
    import django_q.cluster
    import django_q.worker
    from django.db.models.signals import post_save
    from django_q.models import Task
    from django_q.signals import call_hook

    if not getattr(django_q.worker.worker, "checked", False):
        _django_q_worker = django_q.worker.worker
        django_q.worker.worker = checked_worker  # django_q.tasks._sync imports it from here
    django_q.cluster.worker = checked_worker  # the cluster spawns its workers with this name
    post_save.disconnect(call_hook, sender=Task)
    post_save.connect(call_allowed_hook, sender=Task, dispatch_uid="snapshots.call_allowed_hook")


def check_extra_tasks(app_configs=None, **kwargs):
    """System check: every BAGTRACKER_EXTRA_TASKS entry names an importable function."""
    from django.core.checks import Error

    errors = []
    for path in getattr(settings, EXTRA_TASKS_SETTING, ()):
        try:
            target = import_string(path)
        except ImportError as error:
            errors.append(Error(f"{EXTRA_TASKS_SETTING}: {path!r} cannot be imported ({error})", id="snapshots.E001"))
            continue
        if not callable(target):
            errors.append(Error(f"{EXTRA_TASKS_SETTING}: {path!r} is not a function", id="snapshots.E001"))
    return errors
