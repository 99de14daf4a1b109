"""The schedule admin: run now, pause/resume, validated edits that recompute next_run."""

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule, Task

from tests.jobs_support import flush_test_redis, queued_payloads

CHANGELIST = reverse("admin:django_q_schedule_changelist")


def change_url(schedule):
    return reverse("admin:django_q_schedule_change", args=[schedule.pk])


def form_data(schedule, **changes):
    data = {
        "name": schedule.name,
        "func": schedule.func,
        "hook": schedule.hook or "",
        "args": schedule.args or "",
        "kwargs": schedule.kwargs or "",
        "schedule_type": schedule.schedule_type,
        "minutes": schedule.minutes or "",
        "repeats": schedule.repeats,
        "cron": schedule.cron or "",
        "cluster": schedule.cluster or "",
        "intended_date_kwarg": schedule.intended_date_kwarg or "",
        "next_run_0": schedule.next_run.strftime("%Y-%m-%d") if schedule.next_run else "",
        "next_run_1": schedule.next_run.strftime("%H:%M:%S") if schedule.next_run else "",
    }
    data.update(changes)
    return data


@pytest.fixture
def hourly(db):
    return Schedule.objects.get(name="hourly_balance_snapshots")


def queued_tasks():
    return queued_payloads()


def test_run_now_queues_the_job_with_its_intended_time_and_leaves_the_schedule_alone(admin_client, hourly):
    next_run = hourly.next_run
    before = timezone.now()
    response = admin_client.post(
        CHANGELIST, {"action": "run_now", "_selected_action": [hourly.pk], "confirmed": "yes"}, follow=True
    )

    assert response.status_code == 200
    [task] = queued_tasks()
    assert task["func"] == "snapshots.tasks.create_hourly_snapshots"
    assert task["group"] == "hourly_balance_snapshots"
    assert datetime.fromisoformat(task["kwargs"]["scheduled_at"]) >= before
    assert task["id"] in response.content.decode()
    assert Schedule.objects.get(pk=hourly.pk).next_run == next_run


def test_a_paused_schedule_has_no_next_run_and_resumes_at_its_next_cron_time(admin_client, hourly):
    admin_client.post(CHANGELIST, {"action": "pause", "_selected_action": [hourly.pk], "confirmed": "yes"})
    assert Schedule.objects.get(pk=hourly.pk).next_run is None
    assert Schedule.objects.get(pk=hourly.pk).repeats == -1

    admin_client.post(CHANGELIST, {"action": "resume", "_selected_action": [hourly.pk], "confirmed": "yes"})
    resumed = Schedule.objects.get(pk=hourly.pk).next_run
    assert resumed > timezone.now() and resumed.minute == 5 and resumed.second == 0


@pytest.mark.parametrize(
    "action, question",
    [
        ("run_now", "Queue the jobs of these schedules now?"),
        ("pause", "Pause these schedules?"),
        ("resume", "Resume these schedules?"),
    ],
)
def test_each_schedule_action_asks_for_confirmation_first_and_changes_nothing(admin_client, hourly, action, question):
    Schedule.objects.filter(pk=hourly.pk).update(next_run=None) if action == "resume" else None
    before = Schedule.objects.get(pk=hourly.pk).next_run

    page = admin_client.post(CHANGELIST, {"action": action, "_selected_action": [hourly.pk]}).content.decode()

    assert question in page and "hourly_balance_snapshots" in page
    assert 'name="confirmed" value="yes"' in page and f'name="_selected_action" value="{hourly.pk}"' in page
    assert queued_tasks() == [] and Schedule.objects.get(pk=hourly.pk).next_run == before


def test_the_changelist_shows_cron_and_paused(admin_client, hourly):
    Schedule.objects.filter(pk=hourly.pk).update(next_run=None)
    page = admin_client.get(CHANGELIST).content.decode()
    assert "5 * * * *" in page and "Run now" in page and "Pause the selected" in page


def test_editing_the_cron_recomputes_next_run(admin_client, hourly):
    response = admin_client.post(change_url(hourly), form_data(hourly, cron="30 */2 * * *"))
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule = Schedule.objects.get(pk=hourly.pk)
    assert schedule.cron == "30 */2 * * *"
    assert schedule.next_run.minute == 30 and schedule.next_run.hour % 2 == 0
    assert timezone.now() < schedule.next_run <= timezone.now() + timedelta(hours=2)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("cron", "61 * * * *", "not a valid cron expression"),
        ("args", "1,,2", "not a Python literal"),
        ("kwargs", "create_snapshots=maybe", "name=value"),
        ("func", "snapshots.tasks.no_such_job", "is not allowed"),
        ("func", "os.system", "is not allowed: only the project&#x27;s jobs"),
        ("func", "builtins.eval", "BAGTRACKER_EXTRA_TASKS"),
        ("func", "snapshots.tasks.ledger.recalculate_wallet", "is not allowed"),
        ("hook", "os.system", "hook &#x27;os.system&#x27; is not allowed"),
        ("kwargs", "q_options={'hook': 'os.system'}", "hook &#x27;os.system&#x27; is not allowed"),
        ("kwargs", "sync=True", "sync is not an option a schedule may set"),
        ("kwargs", "chain=[('os.system', ('id',))]", "chain is not an option a schedule may set"),
        ("kwargs", "pad='" + "x" * 1000 + "'", "unexpected keyword argument &#x27;pad&#x27;"),
        ("args", "1", "multiple values for argument &#x27;scheduled_at&#x27;"),
        ("intended_date_kwarg", "when", "has no parameter &#x27;when&#x27;"),
        ("minutes", "0", "minutes must be at least 1"),
        ("repeats", "-5", "repeats must be -1"),
    ],
)
def test_a_bad_edit_is_a_form_error_and_changes_nothing(admin_client, hourly, field, value, message):
    response = admin_client.post(change_url(hourly), form_data(hourly, **{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert getattr(Schedule.objects.get(pk=hourly.pk), field) == getattr(hourly, field)


def test_run_now_shows_in_the_list_as_queued_then_as_its_last_run_in_utc(admin_client, hourly):
    from django_q.tasks import async_task

    admin_client.post(CHANGELIST, {"action": "run_now", "_selected_action": [hourly.pk], "confirmed": "yes"})
    [queued] = queued_tasks()
    row = _changelist_row(admin_client, hourly)
    assert "queued" in row
    # The cluster runs it: here, the same package through django-q2's worker in this process.
    flush_test_redis()  # taken off the queue, as the cluster would
    async_task(queued["func"], *queued["args"], task_name=queued["name"], sync=True, **queued["kwargs"])
    Schedule.objects.filter(pk=hourly.pk).update(task=Task.objects.get().id)  # the id of the re-run

    page = admin_client.get(CHANGELIST).content.decode()
    assert "Next run (UTC)" in page and "Last run (UTC)" in page
    row = _changelist_row(admin_client, hourly)
    stopped = Task.objects.get().stopped
    assert stopped.strftime("%Y-%m-%d %H:%M") in row and 'alt="True"' in row


def test_a_run_that_returned_error_is_not_shown_as_a_success(admin_client, hourly, settings):
    from django_q.tasks import async_task

    task_id = async_task("snapshots.tasks.recalculate_wallet_balances", 987654321, sync=True)  # {"status": "error"}
    Schedule.objects.filter(pk=hourly.pk).update(task=task_id)
    assert 'alt="False"' in _changelist_row(admin_client, hourly)


def _changelist_row(admin_client, schedule):
    page = admin_client.get(CHANGELIST).content.decode()
    start = page.index(f'value="{schedule.pk}"')
    return page[start : page.index("</tr>", start)]
