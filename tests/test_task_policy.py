"""Only the project's jobs (and the functions a deployment adds in BAGTRACKER_EXTRA_TASKS) can be
scheduled, hooked or run by the cluster (issue 11, item 1): refused on save through any path, by
the scheduler's guard for a row written by SQL, and by the worker itself for a task that got past
both. Nothing refused is ever executed: each attempt would create a file, and none appears."""

import json
import logging
from datetime import timedelta

import django_q.cluster
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.models import Failure, Schedule, Task
from django_q.scheduler import scheduler as unguarded_scheduler
from django_q.tasks import _sync, async_task

from snapshots import task_policy
from snapshots.task_policy import TaskRefused, allowed_task_functions
from tests.forked_manage import run_manage
from tests.jobs_support import process_env, queued_payloads, wait_until

JOBS = {
    "snapshots.tasks.create_hourly_snapshots",
    "snapshots.tasks.create_daily_snapshots",
    "snapshots.tasks.create_weekly_snapshots",
    "snapshots.tasks.create_monthly_snapshots",
    "snapshots.tasks.cleanup_old_snapshots",
    "snapshots.tasks.recalculate_wallet_balances",
    "snapshots.tasks.recalculate_all_wallets",
    "snapshots.tasks.backfill_wallet_snapshots",
    "snapshots.tasks.refresh_stale_snapshots",
    "snapshots.tasks.take_snapshot_shard",
}


@pytest.fixture
def witness(tmp_path):
    """A path that exists only if a refused command ran."""
    return tmp_path / "pwned"


def test_the_allow_list_is_the_projects_jobs_plus_the_setting(settings):
    settings.BAGTRACKER_EXTRA_TASKS = []
    assert allowed_task_functions() == JOBS
    settings.BAGTRACKER_EXTRA_TASKS = ["math.floor"]
    assert allowed_task_functions() == JOBS | {"math.floor"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field",
    [
        ({"func": "os.system", "args": "'touch /tmp/x'"}, "func"),
        ({"func": "builtins.eval", "args": "'1'"}, "func"),
        ({"func": "snapshots.tasks.ledger.recalculate_wallet", "args": "1"}, "func"),  # reached through a job module
        ({"func": "snapshots.tasks.cleanup_old_snapshots", "hook": "os.system"}, "hook"),
        ({"func": "snapshots.tasks.cleanup_old_snapshots", "kwargs": "hook='builtins.exec'"}, "kwargs"),
        ({"func": "snapshots.tasks.cleanup_old_snapshots", "kwargs": "q_options={'sync': True}"}, "kwargs"),
        ({"func": "snapshots.tasks.cleanup_old_snapshots", "kwargs": "pad='" + "x" * 100_000 + "'"}, "kwargs"),
        ({"func": "snapshots.tasks.recalculate_wallet_balances"}, "args"),  # wallet_id missing
        ({"func": "snapshots.tasks.cleanup_old_snapshots", "schedule_type": Schedule.MINUTES, "minutes": 0}, "minutes"),
        ({"func": "snapshots.tasks.cleanup_old_snapshots", "repeats": -5}, "repeats"),
    ],
)
def test_a_schedule_outside_the_rules_cannot_be_saved_from_code(fields, field):
    schedule = Schedule(name="x", schedule_type=fields.pop("schedule_type", Schedule.DAILY), **fields)
    with pytest.raises(ValidationError) as refused:
        schedule.save()
    assert field in refused.value.message_dict
    assert not Schedule.objects.filter(name="x").exists()


@pytest.mark.django_db
def test_a_fixture_naming_os_system_is_not_loaded(tmp_path):
    fixture = tmp_path / "schedules.json"
    row = {"name": "evil", "func": "os.system", "args": "'id'", "schedule_type": "D", "repeats": -1}
    fixture.write_text(json.dumps([{"model": "django_q.schedule", "pk": 999, "fields": row}]))
    with pytest.raises(ValidationError):
        call_command("loaddata", str(fixture), verbosity=0)
    assert not Schedule.objects.filter(pk=999).exists()


def sql_schedule(func, args, due, hook=None):
    """A schedule written straight into the table, around every check of the ORM; the only one due
    (the installed schedules' next runs are the next top of the hour and so on: a test run that
    crosses one would otherwise see the hourly snapshot queued too)."""
    schedule = Schedule.objects.get(name="cleanup_old_snapshots")
    Schedule.objects.exclude(pk=schedule.pk).update(next_run=timezone.now() + timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_q_schedule SET func = %s, args = %s, hook = %s, next_run = %s WHERE id = %s",
            [func, args, hook, due, schedule.pk],
        )
    return schedule


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "func, args, hook",
    [
        ("os.system", "'touch {witness}'", None),
        ("builtins.eval", "\"__import__('pathlib').Path('{witness}').touch()\"", None),
        ("snapshots.tasks.cleanup_old_snapshots", "", "os.system"),
    ],
)
def test_the_cluster_scheduler_pauses_a_row_written_by_sql_and_queues_nothing(func, args, hook, witness, caplog):
    due = timezone.now() - timedelta(minutes=1)
    schedule = sql_schedule(func, args.format(witness=witness), due, hook)
    with caplog.at_level(logging.ERROR, logger="snapshots.jobs"):
        django_q.cluster.scheduler(broker=get_broker())
    assert Schedule.objects.get(pk=schedule.pk).next_run is None  # paused
    assert "paused schedule cleanup_old_snapshots: refused, it names a function outside the allow-list" in caplog.text
    assert not queued_payloads()
    assert not witness.exists()


def run_queued_tasks(broker=None):
    """Hand every queued task to django-q2's worker and monitor in this process (as sync runs do)."""
    broker = broker or get_broker()
    while (queued := broker.dequeue()) is not None:
        for ack_id, payload in queued:
            _sync(payload)
            broker.acknowledge(ack_id)


@pytest.fixture
def redis_broker(redis_url, monkeypatch):
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    return RedisBroker(list_key="task-policy-test")


@pytest.mark.django_db(transaction=True)
def test_the_worker_refuses_a_task_that_got_past_the_scheduler_and_records_why(redis_broker, witness, caplog):
    # The schedule is written by SQL between the guard and the tick: the bare scheduler puts its
    # task in Redis before the schedule's own save is refused and rolled back.
    sql_schedule("os.system", f"'touch {witness}'", timezone.now() - timedelta(minutes=1))
    unguarded_scheduler(broker=redis_broker)
    assert redis_broker.queue_size() == 1

    with caplog.at_level(logging.ERROR, logger="snapshots.jobs"):
        run_queued_tasks(redis_broker)

    assert not witness.exists()
    failure = Failure.objects.get()
    assert failure.func == "os.system" and failure.result.startswith("refused: function 'os.system' is not allowed")
    assert "refused task" in caplog.text and "'os.system'" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "func, args, options, reason",
    [
        ("os.system", ("touch {witness}",), {}, "function 'os.system' is not allowed"),
        ("builtins.exec", ("open('{witness}', 'w')",), {}, "function 'builtins.exec' is not allowed"),
        ("snapshots.tasks.cleanup_old_snapshots", (), {"hook": "os.system"}, "hook 'os.system' is not allowed"),
        ("snapshots.tasks.cleanup_old_snapshots", (), {"pad": "x" * 100_000}, "unexpected keyword argument 'pad'"),
        ("snapshots.tasks.recalculate_wallet_balances", (), {}, "missing a required argument: 'wallet_id'"),
    ],
)
def test_a_task_queued_from_code_is_refused_by_the_worker(func, args, options, reason, witness):
    async_task(func, *[arg.format(witness=witness) for arg in args], **options)
    run_queued_tasks()
    assert not witness.exists()
    failure = Failure.objects.get()
    assert failure.result.startswith("refused: ") and reason in failure.result
    assert failure.hook is None


@pytest.mark.django_db(transaction=True)
def test_a_chain_through_a_refused_function_is_refused_before_its_first_link_runs(witness):
    async_task("snapshots.tasks.cleanup_old_snapshots", chain=[("os.system", (f"touch {witness}",))])
    run_queued_tasks()
    assert not witness.exists()
    assert "chained function 'os.system' is not allowed" in Failure.objects.get().result
    assert not queued_payloads()  # the chain was not queued either


@pytest.mark.django_db
def test_a_sync_run_of_a_refused_function_raises_and_runs_nothing(witness):
    with pytest.raises(TaskRefused, match=r"builtins\.eval"):
        async_task("builtins.eval", f"__import__('os').system('touch {witness}')", sync=True)
    assert not witness.exists()


@pytest.mark.django_db(transaction=True)
def test_an_allowed_job_still_runs_and_its_result_is_kept():
    task_id = async_task("snapshots.tasks.cleanup_old_snapshots", dry_run=True)
    run_queued_tasks()
    task = Task.objects.get(id=task_id)
    assert task.success and task.result["status"] == "success"


HOOK_CALLS = []


def recording_hook(task):
    HOOK_CALLS.append(task.name)


@pytest.mark.django_db
def test_a_result_hook_is_called_only_when_allowed(settings):
    HOOK_CALLS.clear()
    started = timezone.now()
    hook = f"{__name__}.recording_hook"
    Task.objects.create(id="a" * 32, name="one", func="x", hook=hook, started=started, stopped=started, success=True)
    assert HOOK_CALLS == []
    settings.BAGTRACKER_EXTRA_TASKS = [hook]
    Task.objects.create(id="b" * 32, name="two", func="x", hook=hook, started=started, stopped=started, success=True)
    assert HOOK_CALLS == ["two"]


def test_django_q2s_worker_and_hook_receiver_are_the_checked_ones():
    import django_q.worker
    from django.db.models.signals import post_save

    assert django_q.cluster.worker is task_policy.checked_worker
    assert django_q.worker.worker is task_policy.checked_worker
    # Unwrapped: once sentry_sdk's Django integration was initialised in this process (a test of
    # config/sentry.py does), it wraps every signal receiver it hands out.
    receivers = [getattr(r, "__wrapped__", r) for r in post_save._live_receivers(Task)[0]]
    assert task_policy.call_allowed_hook in receivers
    from django_q.signals import call_hook

    assert call_hook not in receivers


def check(**env):
    variables = process_env(**env)
    return run_manage(["check"], env=variables)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value, message",
    [
        ("os.system rm", "BAGTRACKER_EXTRA_TASKS: 'os.system rm' is not a dotted path to a function"),
        ("math.floor,,math.ceil", "BAGTRACKER_EXTRA_TASKS: '' is not a dotted path"),
        ("floor", "BAGTRACKER_EXTRA_TASKS: 'floor' is not a dotted path"),
        ("myproject.jobs.nothing", "BAGTRACKER_EXTRA_TASKS: 'myproject.jobs.nothing' cannot be imported"),
    ],
)
def test_a_malformed_extra_task_stops_start_up_naming_the_variable(value, message):
    result = check(BAGTRACKER_EXTRA_TASKS=value)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_real_cluster_refuses_os_system_and_logs_it(qcluster, witness):
    task_id = async_task("os.system", f"touch {witness}")
    cluster = qcluster(process_env())
    failure = wait_until(lambda: Failure.objects.filter(id=task_id).first(), timeout=60, what="the refusal")
    assert failure.result.startswith("refused: function 'os.system' is not allowed")
    assert "refused task" in cluster.log() and not witness.exists()
    assert not queued_payloads()  # acknowledged: never delivered again
