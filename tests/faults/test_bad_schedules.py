"""A bad schedule (issue 6, item 5). The admin refuses one with a message on the field
(tests/test_schedule_admin.py::test_a_bad_edit_is_a_form_error_and_changes_nothing: bad cron, args,
kwargs, func). Here: schedules forced into the database by SQL, around every validation, each
of a kind django-q2's scheduler cannot process. The cluster's scheduler (guarded) pauses them and
fires every other due schedule exactly once; tick after tick, nothing re-fires."""

import logging
from datetime import timedelta

import django_q.cluster
import pytest
from django.db import connection
from django.utils import timezone
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.models import Schedule

from tests.jobs_support import redis_test_url

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# (name, column, value written by SQL): each one makes django_q.scheduler raise inside its batch.
BROKEN = [
    ("args not a literal", "args", "1,,2"),
    ("args unhashable", "args", "{[1]: 2}"),
    ("args nested too deep", "args", "(" * 300 + ")" * 300),
    ("kwargs unhashable", "kwargs", "{[1]: 2}"),
    ("cron invalid", "cron", "61 * * * *"),
    ("cron empty", "cron", None),
    ("schedule type unknown", "schedule_type", "Z"),
]


@pytest.fixture
def broker(monkeypatch):
    import redis

    url = redis_test_url()
    redis.from_url(url).delete("bagtracker-faults-schedules")
    monkeypatch.setattr(Conf, "REDIS", url)
    broker = RedisBroker(list_key="bagtracker-faults-schedules")
    yield broker
    broker.delete_queue()


def due_schedule(name, due, args="1.5"):
    schedule = Schedule.objects.create(
        name=name, func="math.floor", args=args, schedule_type=Schedule.CRON, cron="0 * * * *"
    )
    Schedule.objects.filter(pk=schedule.pk).update(next_run=due)  # save() of a CRON row computes its own
    return schedule


def force(name, column, value, due):
    schedule = due_schedule(name, due)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE django_q_schedule SET {column} = %s WHERE id = %s", [value, schedule.pk])
    return schedule


def test_schedules_broken_by_sql_are_paused_and_the_others_fire_once(broker, caplog, settings):
    settings.BAGTRACKER_EXTRA_TASKS = ["math.floor"]  # a function of one argument, as a deployment adds
    Schedule.objects.all().delete()
    due = timezone.now() - timedelta(minutes=5)
    good_before = due_schedule("good before", due)
    broken = [
        force(name, column, value, due + timedelta(seconds=i + 1)) for i, (name, column, value) in enumerate(BROKEN)
    ]
    good_after = due_schedule("good after", due + timedelta(minutes=1), args="2.5")

    with caplog.at_level(logging.ERROR, logger="snapshots.jobs"):
        for _ in range(3):  # three ticks of the cluster's scheduler
            django_q.cluster.scheduler(broker=broker)

    assert broker.queue_size() == 2  # each good schedule once
    for good in (good_before, good_after):
        assert Schedule.objects.get(pk=good.pk).next_run > timezone.now()
    for schedule in broken:
        assert Schedule.objects.get(pk=schedule.pk).next_run is None, schedule.name
        assert f"paused schedule {schedule.name}: the scheduler cannot process it" in caplog.text


def test_the_admin_refuses_an_unhashable_argument_with_a_message(admin_client):
    from tests.test_schedule_admin import change_url, form_data

    hourly = Schedule.objects.get(name="hourly_balance_snapshots")
    for field in ("args", "kwargs"):
        response = admin_client.post(change_url(hourly), form_data(hourly, **{field: "{[1]: 2}"}))
        assert response.status_code == 200
        assert "not a Python literal" in response.content.decode() or "name=value" in response.content.decode()
        assert getattr(Schedule.objects.get(pk=hourly.pk), field) == getattr(hourly, field)
