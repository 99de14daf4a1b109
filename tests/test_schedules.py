"""The five schedules of docs/schedules.md: installed after migrate, never overwritten or duplicated, and
one broken schedule cannot make the others fire twice."""

from datetime import timedelta

import django_q.cluster
import pytest
from croniter import croniter
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler as unguarded_scheduler

from snapshots import schedules
from snapshots.schedules import install_schedules

DESIGN = {
    "hourly_balance_snapshots": ("snapshots.tasks.create_hourly_snapshots", "5 * * * *"),
    "daily_balance_snapshots": ("snapshots.tasks.create_daily_snapshots", "15 0 * * *"),
    "weekly_balance_snapshots": ("snapshots.tasks.create_weekly_snapshots", "0 1 * * 0"),
    "monthly_balance_snapshots": ("snapshots.tasks.create_monthly_snapshots", "0 2 1 * *"),
    "cleanup_old_snapshots": ("snapshots.tasks.cleanup_old_snapshots", "0 3 * * *"),
}


def installed():
    return {s.name: (s.func, s.cron) for s in Schedule.objects.all()}


@pytest.mark.django_db
def test_migrate_leaves_the_five_cron_schedules_of_the_design():
    assert installed() == DESIGN
    for schedule in Schedule.objects.all():
        assert schedule.schedule_type == Schedule.CRON
        assert schedule.repeats == -1
        assert schedule.intended_date_kwarg == "scheduled_at"
        # Planned when the test database was migrated, which may be past by now (a run that spans :05).
        assert croniter.match(schedule.cron, schedule.next_run)
    # Installed afresh, each schedule's next run is the cron's next instant after now.
    Schedule.objects.all().delete()
    now = timezone.now()
    install_schedules()
    for schedule in Schedule.objects.all():
        assert now < schedule.next_run <= now + timedelta(days=31)
        assert croniter.match(schedule.cron, schedule.next_run)


@pytest.mark.django_db
def test_migrating_again_keeps_an_admin_edit_and_duplicates_nothing():
    hourly = Schedule.objects.get(name="hourly_balance_snapshots")
    hourly.cron = "10 * * * *"
    hourly.save()
    Schedule.objects.filter(name="daily_balance_snapshots").update(next_run=None)  # paused

    call_command("migrate", verbosity=0)
    result = install_schedules()

    assert result.created == []
    assert Schedule.objects.count() == 5
    assert Schedule.objects.get(name="hourly_balance_snapshots").cron == "10 * * * *"
    assert Schedule.objects.get(name="daily_balance_snapshots").next_run is None


@pytest.mark.django_db
def test_a_schedule_renamed_in_the_admin_is_not_installed_a_second_time():
    Schedule.objects.filter(name="weekly_balance_snapshots").update(name="weekly (Sunday night)")
    assert install_schedules().created == []
    assert Schedule.objects.filter(func="snapshots.tasks.create_weekly_snapshots").count() == 1


@pytest.mark.django_db
def test_a_deleted_schedule_comes_back_at_the_next_migrate():
    Schedule.objects.filter(name="cleanup_old_snapshots").delete()
    assert install_schedules().created == ["cleanup_old_snapshots"]
    assert installed() == DESIGN


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value",
    [
        ("args", "1, 2,, 3"),
        ("args", "open('x')"),
        ("kwargs", "create_snapshots=maybe"),
        ("kwargs", "5"),
        ("cron", "61 * * * *"),
        ("cron", "every hour"),
    ],
)
def test_a_schedule_the_scheduler_could_not_read_cannot_be_saved(field, value):
    schedule = Schedule.objects.get(name="hourly_balance_snapshots")
    setattr(schedule, field, value)
    with pytest.raises(ValidationError) as error:
        schedule.save()
    assert field in error.value.message_dict


@pytest.mark.django_db
def test_arguments_in_both_forms_the_scheduler_accepts_are_saved():
    schedule = Schedule(
        name="recalculate 7", func="snapshots.tasks.recalculate_wallet_balances", schedule_type=Schedule.DAILY
    )
    schedule.args = "7"
    schedule.kwargs = "create_snapshots=True"
    schedule.save()
    assert schedules.parse_args(schedule.args) == (7,)
    assert schedules.parse_kwargs(schedule.kwargs) == {"create_snapshots": True}
    schedule.kwargs = "{'create_snapshots': True}"
    schedule.save()
    assert schedules.parse_kwargs(schedule.kwargs) == {"create_snapshots": True}


@pytest.fixture
def floor_allowed(settings):
    """math.floor(x): a function of one argument, allowed the way a deployment adds its own."""
    settings.BAGTRACKER_EXTRA_TASKS = ["math.floor"]


def _due_pair():
    """A good schedule due first, then one whose args were broken behind the ORM's back."""
    past = timezone.now() - timedelta(minutes=5)
    good = Schedule.objects.create(
        name="good", func="math.floor", args="1.5", schedule_type=Schedule.MINUTES, minutes=60, next_run=past
    )
    bad = Schedule.objects.create(
        name="bad",
        func="math.floor",
        args="2.5",
        schedule_type=Schedule.MINUTES,
        minutes=60,
        next_run=past + timedelta(seconds=1),
    )
    Schedule.objects.filter(pk=bad.pk).update(args="2.5,,")
    return good, bad


@pytest.fixture
def redis_broker(redis_url, monkeypatch):
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    return RedisBroker(list_key="schedule-guard-test")


# The scheduler closes "old" connections first, which ends a test wrapped in a transaction.
@pytest.mark.django_db(transaction=True)
def test_without_the_guard_a_broken_schedule_makes_the_others_fire_every_tick(redis_broker, floor_allowed):
    """What django-q2 1.11 does on its own: the reason for the guard."""
    Schedule.objects.all().delete()
    good, _ = _due_pair()
    unguarded_scheduler(broker=redis_broker)
    unguarded_scheduler(broker=redis_broker)
    assert redis_broker.queue_size() == 2  # the good schedule fired twice
    assert Schedule.objects.get(pk=good.pk).next_run < timezone.now()  # and is still due


@pytest.mark.django_db(transaction=True)
def test_the_cluster_scheduler_pauses_a_broken_schedule_and_fires_the_others_once(redis_broker, floor_allowed):
    Schedule.objects.all().delete()
    good, bad = _due_pair()
    assert getattr(django_q.cluster.scheduler, "guarded", False)

    django_q.cluster.scheduler(broker=redis_broker)
    django_q.cluster.scheduler(broker=redis_broker)

    assert redis_broker.queue_size() == 1
    assert Schedule.objects.get(pk=good.pk).next_run > timezone.now()
    assert Schedule.objects.get(pk=bad.pk).next_run is None  # paused, visible in the admin


@pytest.mark.django_db(transaction=True)
def test_two_deploys_migrating_at_once_install_each_schedule_once():
    import threading

    from django.db import connection

    Schedule.objects.all().delete()
    barrier = threading.Barrier(2)
    results = []

    def deploy():
        try:
            barrier.wait(timeout=10)
            results.append(install_schedules().created)
        finally:
            connection.close()

    threads = [threading.Thread(target=deploy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(len(created) for created in results) == [0, 5]
    assert installed() == DESIGN
