"""The job schedules (docs/schedules.md) as django-q2 Schedule rows, and the rules
that keep one broken schedule from disturbing the others.

Installation: `install_schedules()` runs after every `migrate` (post_migrate, see apps.py) and
creates only the schedules that are missing — missing meaning no schedule has that name *and* none
runs that function, so a schedule renamed in the admin is not duplicated. An existing schedule is
never touched, so an operator's edit (cron, pause, args) survives every deploy.

Why post_migrate and not a data migration: a data migration runs once per database, so a schedule
added in a later release would need a migration of its own, a migration sees only the historical
model (django-q2's save() that computes next_run is not there), and a test database flushed by a
transactional test loses the rows for good. post_migrate runs after every migrate and after every
flush, and "create if missing" makes it idempotent. The one consequence: a schedule *deleted* in
the admin comes back at the next migrate. To stop a job, pause it (admin action) or switch its
period off with BALANCE_*_SNAPSHOTS=false; both survive deploys.

The broken-schedule problem (django_q/scheduler.py, 1.11): the scheduler walks the due schedules
inside one transaction, calls async_task() for each *before* the commit, and evaluates `args` with
ast.literal_eval outside any try. One schedule whose args do not parse (or whose cron no longer
does) raises, the whole batch rolls back — the next_run of the schedules already handled included —
while their tasks are already in Redis. Thirty seconds later they are due again and fire again,
every tick. Two defences:
  1. every save of a Schedule is validated (`validate_schedule`, wired to pre_save in apps.py, and
     the admin form shows the same errors on the field), so such a row cannot be written through
     the ORM;
  2. a row written around the ORM (queryset.update(), SQL, a restored dump) is caught by
     `quarantine_broken_schedules()`, run by the cluster before each scheduler tick (apps.py wraps
     django-q2's scheduler): it pauses the broken schedule and logs why, and the tick goes on
     without it.
"""

import ast
import inspect
import logging
from dataclasses import dataclass

from croniter import croniter
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from snapshots import job_registry, task_policy
from snapshots.task_policy import TaskRefused

logger = logging.getLogger("snapshots.jobs")

INTENDED_DATE_KWARG = "scheduled_at"


@dataclass(frozen=True)
class JobSchedule:
    name: str
    func: str
    cron: str


def default_schedules():
    """One schedule per scheduled job of the registry (snapshots/job_registry.py)."""
    return tuple(JobSchedule(job.schedule, job.function, job.cron) for job in job_registry.scheduled_jobs())


@dataclass
class InstallResult:
    created: list
    kept: list

    def as_dict(self):
        return {"created": self.created, "kept": self.kept}


def install_schedules(schedules=None):
    """Create each schedule that is missing; never change or duplicate an existing one."""
    schedules = default_schedules() if schedules is None else schedules
    created, kept = [], []
    with transaction.atomic():
        # Serialises two concurrent `migrate` runs (two web containers starting together): row
        # locks cannot, the rows do not exist yet.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('bagtracker.install_schedules'))")
        for spec in schedules:
            if Schedule.objects.filter(name=spec.name).exists() or Schedule.objects.filter(func=spec.func).exists():
                kept.append(spec.name)
                continue
            Schedule.objects.create(
                name=spec.name,
                func=spec.func,
                schedule_type=Schedule.CRON,
                cron=spec.cron,
                repeats=-1,
                intended_date_kwarg=INTENDED_DATE_KWARG,
            )
            created.append(spec.name)
    if created:
        logger.info("installed schedules: %s", ", ".join(created))
    return InstallResult(created, kept)


# --- Parsing exactly as django_q.scheduler does ----------------------------------------------------


# What ast.literal_eval raises on text it cannot evaluate: besides SyntaxError and ValueError, a
# TypeError for an unhashable dict key or set member ("{[1]: 2}") and MemoryError/RecursionError
# for deep nesting.
LITERAL_ERRORS = (SyntaxError, ValueError, TypeError, MemoryError, RecursionError)


def _shorten(text, limit=60):
    return repr(text if len(text) <= limit else text[:limit] + "…")


def parse_args(text):
    """The positional arguments the scheduler will pass, or ValueError."""
    if not text:
        return ()
    try:
        args = ast.literal_eval(text)
    except LITERAL_ERRORS as error:
        raise ValueError(f"not a Python literal ({error.__class__.__name__}): {_shorten(text)}") from None
    return args if type(args) is tuple else (args,)


def parse_kwargs(text):
    """The keyword arguments the scheduler will pass, or ValueError.

    The scheduler accepts a dict literal or `a=1, b='x'`; anything else it silently replaces by {}
    (the job would run without its arguments), so we reject it here instead.
    """
    if not text:
        return {}
    try:
        kwargs = ast.literal_eval(text)
        if isinstance(kwargs, dict):
            return kwargs
    except LITERAL_ERRORS:
        pass
    try:
        keywords = ast.parse(f"f({text})").body[0].value.keywords
        if ast.parse(f"f({text})").body[0].value.args:
            raise ValueError("positional values belong in args")
        return {k.arg: ast.literal_eval(k.value) for k in keywords}
    except (*LITERAL_ERRORS, AttributeError) as error:
        raise ValueError(f"use name=value pairs, e.g. create_snapshots=True ({error})") from None


# Options django-q2's async_task takes out of a schedule's kwargs (or its q_options dict) instead of
# passing them to the function. A schedule may set these; "sync" (run the job inside the scheduler),
# "chain" (run more functions after it), "cached" and the iteration internals it may not.
SCHEDULE_OPTIONS = frozenset({"hook", "group", "save", "ack_failure", "cluster", "timeout", "task_name"})
TASK_OPTIONS = frozenset(
    {"hook", "group", "save", "sync", "cached", "ack_failure", "iter_count", "iter_cached", "chain", "broker"}
    | {"cluster", "timeout", "task_name", "q_options"}
)


def schedule_errors(schedule):
    """{field: message} for everything that would make the scheduler fail on this schedule, or
    make the cluster refuse its task (snapshots/task_policy.py)."""
    errors = {}
    try:
        target = task_policy.allowed_function(schedule.func)
    except TaskRefused as error:
        errors["func"], target = str(error), None
    try:
        args = parse_args(schedule.args)
    except ValueError as error:
        errors["args"], args = str(error), None
    try:
        kwargs = parse_kwargs(schedule.kwargs)
    except ValueError as error:
        errors["kwargs"], kwargs = str(error), None
    if kwargs is not None:
        kwargs, option_errors = _split_options(kwargs)
        errors.update(option_errors)
    if schedule.hook:
        try:
            task_policy.allowed_function(schedule.hook, "hook")
        except TaskRefused as error:
            errors["hook"] = str(error)
    if target is not None and args is not None and kwargs is not None and "kwargs" not in errors:
        errors.update(_argument_errors(schedule, target, args, kwargs))
    if schedule.minutes is not None and schedule.minutes < 1:
        errors["minutes"] = f"minutes must be at least 1, not {schedule.minutes}"
    if schedule.repeats is not None and schedule.repeats < -1:
        errors["repeats"] = f"repeats must be -1 (forever), 0 (never again) or a positive count, not {schedule.repeats}"
    if schedule.schedule_type not in dict(Schedule.TYPE):
        # django-q2 computes no next run for it (UnboundLocalError in calculate_next_run).
        errors["schedule_type"] = f"unknown schedule type {schedule.schedule_type!r}"
    elif schedule.schedule_type == Schedule.CRON:
        if not schedule.cron:
            errors["cron"] = "a CRON schedule needs a cron expression, e.g. 5 * * * *"
        elif not croniter.is_valid(schedule.cron):
            errors["cron"] = f"not a valid cron expression: {schedule.cron!r} (e.g. 5 * * * *)"
    return errors


def _split_options(kwargs):
    """(the function's own keyword arguments, {field: message} for options a schedule may not set)."""
    options = {key: kwargs[key] for key in kwargs if key in TASK_OPTIONS}
    own = {key: value for key, value in kwargs.items() if key not in TASK_OPTIONS}
    nested = options.pop("q_options", {})
    if not isinstance(nested, dict):
        return own, {"kwargs": "q_options must be a dict of task options"}
    options.update(nested)
    errors = []
    for key, value in options.items():
        if key not in SCHEDULE_OPTIONS:
            errors.append(f"{key} is not an option a schedule may set (allowed: {', '.join(sorted(SCHEDULE_OPTIONS))})")
        elif key == "hook":
            try:
                task_policy.allowed_function(value, "hook")
            except TaskRefused as error:
                errors.append(str(error))
    return own, ({"kwargs": "; ".join(errors)} if errors else {})


def _argument_errors(schedule, target, args, kwargs):
    """The arguments the scheduler will pass (args, kwargs and the intended-date keyword), bound
    to the function's signature."""
    intended = schedule.intended_date_kwarg
    if intended:
        try:
            parameters = inspect.signature(target).parameters
        except (TypeError, ValueError):  # not introspectable: check_arguments lets it pass too
            parameters = {intended: None}
        if intended not in parameters and not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            return {"intended_date_kwarg": f"{schedule.func} has no parameter {intended!r}"}
        kwargs = {**kwargs, intended: "2026-01-01T00:00:00+00:00"}  # the scheduler passes an ISO instant
    try:
        task_policy.check_arguments(target, args, kwargs)
    except TaskRefused as error:
        return {"kwargs" if schedule.kwargs else "args": str(error)}
    return {}


def validate_schedule(schedule):
    errors = schedule_errors(schedule)
    if errors:
        raise ValidationError(errors)


# --- Pause, resume, run now ----------------------------------------------------------------------
# A paused schedule has no next_run: the scheduler only picks rows with next_run < now, so it is
# skipped, and `repeats` (the operator's count) is left as it was.


def is_paused(schedule):
    return schedule.next_run is None


def pause_schedules(queryset):
    return queryset.exclude(next_run=None).update(next_run=None)


def resume_schedules(queryset, now=None):
    now = now or timezone.now()
    resumed = 0
    for schedule in queryset.filter(next_run=None):
        # A ONCE schedule has no "next" after now: it runs at the next tick.
        schedule.next_run = now if schedule.schedule_type == Schedule.ONCE else schedule.calculate_next_run(now)
        schedule.save(update_fields=["next_run"])
        resumed += 1
    return resumed


def run_schedule_now(schedule, now=None):
    """Queue the schedule's job at once, as the scheduler would (same args, intended time = now).

    Returns the task id. The schedule's own next_run is unchanged.
    """
    from django_q.tasks import async_task

    errors = schedule_errors(schedule)  # the row may have been written around the ORM
    if errors:
        raise TaskRefused("; ".join(f"{field}: {message}" for field, message in errors.items()))
    now = now or timezone.now()
    args = parse_args(schedule.args)
    kwargs = parse_kwargs(schedule.kwargs)
    q_options = kwargs.pop("q_options", {})
    if schedule.intended_date_kwarg:
        kwargs[schedule.intended_date_kwarg] = now.isoformat()
    q_options.setdefault("group", schedule.name or schedule.id)
    if schedule.hook:
        q_options["hook"] = schedule.hook
    task_id = async_task(schedule.func, *args, q_options=q_options, **kwargs)
    # As the scheduler does: the schedule's last task is this one, so the schedule list's last run
    # and success columns show it once it has run.
    Schedule.objects.filter(pk=schedule.pk).update(task=task_id)
    schedule.task = task_id
    logger.info("job=%s queued by run-now from schedule %s task=%s", schedule.func, schedule.name, task_id)
    return task_id


# --- The scheduler guard -------------------------------------------------------------------------


def quarantine_broken_schedules():
    """Pause every active schedule the scheduler could not process or the cluster would refuse;
    return their names."""
    paused = []
    for schedule in Schedule.objects.exclude(repeats=0).exclude(next_run=None):
        try:
            errors = schedule_errors(schedule)
        except Exception as error:  # one unforeseen row must not leave the others unchecked
            errors = {"schedule": f"{type(error).__name__}: {error}"}
        if errors:
            Schedule.objects.filter(pk=schedule.pk).update(next_run=None)
            label = schedule.name or schedule.pk
            details = "; ".join(f"{field}: {message}" for field, message in errors.items())
            why = "refused, it names a function outside the allow-list" if {"func", "hook"} & set(errors) else None
            logger.error("paused schedule %s: %s (%s)", label, why or "the scheduler cannot process it", details)
            paused.append(label)
    return paused


def guarded(scheduler):
    """Wrap django_q.scheduler.scheduler so that broken schedules are paused before each tick."""

    def scheduler_with_guard(broker=None):
        try:
            quarantine_broken_schedules()
        except Exception:  # the guard must never stop the scheduler itself
            logger.exception("schedule guard failed; running the scheduler anyway")
        return scheduler(broker=broker)

    scheduler_with_guard.guarded = True
    return scheduler_with_guard
