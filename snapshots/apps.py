from django.apps import AppConfig
from django.core import checks
from django.core.checks import register
from django.db.models.signals import post_migrate, pre_save


class SnapshotsConfig(AppConfig):
    name = "snapshots"
    verbose_name = "Balances and snapshots"

    def ready(self):
        import django_q.cluster
        from django_q.models import Schedule
        from django_q.signals import post_execute_in_worker, pre_execute

        from bagtracker.balances import register_balance_updater
        from bagtracker.signals import history_written
        from snapshots import schedules, shutdown, task_policy
        from snapshots.services import job_metrics
        from snapshots.services.healing import refresh_at_commit
        from snapshots.services.ledger import apply_to_pairs, apply_to_wallets

        # The domain's writes of transactions call this, inside their own database transaction
        # (bagtracker/balances.py): balances stay current without the domain importing the ledger.
        register_balance_updater(apply_to_wallets, apply_to_pairs)

        post_migrate.connect(_install_schedules, sender=self, dispatch_uid="snapshots.install_schedules")
        pre_save.connect(_validate_schedule, sender=Schedule, dispatch_uid="snapshots.validate_schedule")
        # A write of transactions or prices may make retained snapshots stale (the database marks
        # them): refresh them once the write commits (snapshots/services/healing.py).
        history_written.connect(refresh_at_commit, dispatch_uid="snapshots.refresh_at_commit")
        # Every run of a job is counted by the worker that ran it (/metrics' run counter, histogram).
        pre_execute.connect(job_metrics.task_started, dispatch_uid="snapshots.job_started")
        post_execute_in_worker.connect(job_metrics.task_finished, dispatch_uid="snapshots.job_finished")
        # See snapshots/schedules.py: pause a broken schedule before each scheduler tick, so it
        # cannot roll back the tick and make the other due schedules fire again.
        if not getattr(django_q.cluster.scheduler, "guarded", False):
            django_q.cluster.scheduler = schedules.guarded(django_q.cluster.scheduler)
        # See snapshots/shutdown.py: a qcluster stops within a bound, even if its whole group is signalled.
        shutdown.install()
        # See snapshots/task_policy.py: the worker runs only the allow-listed functions and hooks.
        task_policy.install()
        register(task_policy.check_extra_tasks)
        from snapshots.checks import future_snapshot_runs

        register(future_snapshot_runs, checks.Tags.database)


def _install_schedules(sender, using="default", **kwargs):
    from django.core.management import call_command
    from django_q.models import Schedule

    from snapshots.schedules import install_schedules

    # The shared cache table (settings.CACHES); a no-op when it exists.
    call_command("createcachetable", database=using, verbosity=0)
    if Schedule._meta.db_table not in _tables(using):
        return  # migrating to a state before django_q's tables exist
    install_schedules()


def _validate_schedule(sender, instance, raw=False, **kwargs):
    from snapshots.schedules import validate_schedule

    validate_schedule(instance)


def _tables(using):
    from django.db import connections

    return connections[using].introspection.table_names()
