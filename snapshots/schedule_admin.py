"""django-q2's admin, tightened: the schedule admin with "Run now", "Pause"/"Resume" (each needs
django_q.change_schedule) and edits checked the way the scheduler and the worker will read them
(snapshots/schedules.py, snapshots/task_policy.py); the task admins with a resubmit that needs a
permission to change the tasks and queues only allowed functions."""

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import ngettext
from django_q.admin import FailAdmin as QFailAdmin
from django_q.admin import ScheduleAdmin as QScheduleAdmin
from django_q.admin import TaskAdmin as QTaskAdmin
from django_q.models import Failure, Schedule, Success, Task
from django_q.tasks import async_task

from snapshots import schedules, task_policy
from snapshots.console.actions import confirmed_action
from snapshots.task_policy import TaskRefused


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = "__all__"  # noqa: DJ007 -- django-q2's own Schedule model: its admin edits every field

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "next_run" in self.fields:
            # Empty means paused; for a CRON schedule an empty next run on create is computed.
            self.fields["next_run"].required = False
            self.fields["next_run"].help_text = "When this schedule runs next (UTC). Empty = paused."

    def clean_func(self):
        return self.cleaned_data["func"].strip()

    def clean(self):
        # Every rule of snapshots.schedules.schedule_errors — the allow-list of functions and hooks,
        # arguments that fit the function, minutes and repeats in range, cron — as field errors.
        cleaned = super().clean()
        candidate = Schedule(**{field: cleaned.get(field) for field in CHECKED_FIELDS})
        for field, message in schedules.schedule_errors(candidate).items():
            if field in self.errors:
                continue
            self.add_error(field if field in self.fields else None, message)
        return cleaned


CHECKED_FIELDS = (
    "func",
    "hook",
    "args",
    "kwargs",
    "schedule_type",
    "minutes",
    "repeats",
    "cron",
    "intended_date_kwarg",
)


def describe_schedule(schedule):
    return f"{schedule.name or schedule.pk}: {schedule.func} ({schedule.cron or schedule.get_schedule_type_display()})"


@admin.action(description="Run now (queue the selected jobs at once)", permissions=["change"])
@confirmed_action(
    question="Queue the jobs of these schedules now? Their next scheduled runs stay as they are.",
    button="Yes, run them now",
    describe=describe_schedule,
)
def run_now(modeladmin, request, queryset):
    queued = []
    for schedule in queryset:
        try:
            queued.append(f"{schedule.name or schedule.id} ({schedules.run_schedule_now(schedule)})")
        except TaskRefused as error:
            modeladmin.message_user(request, f"Not queued: {schedule.name or schedule.id}: {error}", messages.ERROR)
    if queued:
        modeladmin.message_user(request, f"Queued: {', '.join(queued)}", messages.SUCCESS)


@admin.action(description="Pause the selected schedules", permissions=["change"])
@confirmed_action(
    question="Pause these schedules? They will not run until resumed.",
    button="Yes, pause them",
    describe=describe_schedule,
)
def pause(modeladmin, request, queryset):
    count = schedules.pause_schedules(queryset)
    modeladmin.message_user(request, ngettext("%d schedule paused.", "%d schedules paused.", count) % count)


@admin.action(description="Resume the selected schedules", permissions=["change"])
@confirmed_action(
    question="Resume these schedules? Each runs next at its next cron time.",
    button="Yes, resume them",
    describe=describe_schedule,
)
def resume(modeladmin, request, queryset):
    count = schedules.resume_schedules(queryset)
    modeladmin.message_user(request, ngettext("%d schedule resumed.", "%d schedules resumed.", count) % count)


def utc(instant):
    """Times in the console are UTC (settings.TIME_ZONE) and say so in their column header."""
    return instant.strftime("%Y-%m-%d %H:%M") if instant else None


class ScheduleAdmin(QScheduleAdmin):
    form = ScheduleForm
    actions = [run_now, pause, resume]
    # Every column visible at 1280 px: the job's name instead of its dotted path (the path is the
    # tooltip); the schedule type, repeats and cluster only on the schedule's page (CRON, -1 and
    # empty for every default); a paused schedule says so in its next run; no filter sidebar for a
    # handful of rows (search stays).
    list_display = ("name", "job", "cron_utc", "next_run_utc", "last_run_utc", "last_run_success")
    list_display_links = ("name",)
    list_filter = ()

    def get_queryset(self, request):
        # django-q2's queryset annotates the last task's id, name and success; "Run now" and the
        # scheduler both record the task they queued on the schedule (Schedule.task).
        last_task = Task.objects.filter(id=OuterRef("task"))
        return super().get_queryset(request).annotate(task_stopped=Subquery(last_task.values("stopped")))

    @admin.display(description="cron (UTC)", ordering="cron")
    def cron_utc(self, obj):
        return format_html('<span class="console-nowrap">{}</span>', obj.cron) if obj.cron else "—"

    @admin.display(description="job", ordering="func")
    def job(self, obj):
        return format_html('<code title="{}">{}</code>', obj.func, obj.func.rpartition(".")[2])

    @admin.display(description="next run (UTC)", ordering="next_run")
    def next_run_utc(self, obj):
        return "paused" if schedules.is_paused(obj) else utc(obj.next_run)

    @admin.display(description="last run (UTC)")
    def last_run_utc(self, obj):
        if obj.task_name is None:
            # Queued (by Run now or the scheduler) and not finished yet, or never run.
            return "queued" if obj.task else "—"
        view = "admin:django_q_success_change" if obj.task_success else "admin:django_q_failure_change"
        return format_html('<a href="{}">{}</a>', reverse(view, args=(obj.task_id,)), utc(obj.task_stopped))

    @admin.display(boolean=True, description="success")
    def last_run_success(self, obj):
        """Like jobs_status: a job that returned {"status": "error"} did not succeed either."""
        if obj.task_success is None:
            return None
        if not obj.task_success:
            return False
        result = Task.objects.filter(id=obj.task_id).values_list("result", flat=True).first()
        return not (isinstance(result, dict) and result.get("status") == "error")

    def save_model(self, request, obj, form, change):
        # django-q2 computes next_run from the cron only when a schedule is created; an edited
        # cron would otherwise keep firing at the old time once more. Recompute it, unless the
        # schedule is paused or the operator set next_run by hand in the same edit.
        timing_changed = {"cron", "schedule_type"} & set(form.changed_data)
        stored = Schedule.objects.filter(pk=obj.pk).values_list("next_run", flat=True).first() if change else None
        next_run_edited = obj.next_run != stored  # compared by value: the split widget always reports a change
        if (
            change
            and timing_changed
            and not next_run_edited
            and obj.schedule_type == Schedule.CRON
            and not schedules.is_paused(obj)
        ):
            obj.next_run = obj.calculate_next_run()
        super().save_model(request, obj, form, change)


# --- Successful and failed tasks: resubmit only with a permission to change them ------------------
# django-q2's resubmit action declares no permission, so anyone who may *view* the tasks could run
# them again. Here it needs change (or, for a failure, delete: resubmitting removes it from the list),
# and it queues only what the cluster would run (snapshots/task_policy.py).


def _resubmit(modeladmin, request, queryset, delete):
    queued = []
    for task in queryset:
        options = {"hook": task.hook, "group": task.group, "cluster": task.cluster}
        package = {"func": task.func, "args": task.args or (), "kwargs": task.kwargs or {}, "hook": task.hook}
        try:
            task_policy.check_task(package)
        except TaskRefused as error:
            modeladmin.message_user(request, f"Not resubmitted: {task.name}: {error}", messages.ERROR)
            continue
        queued.append(async_task(task.func, *package["args"], q_options=options, **package["kwargs"]))
        if delete:
            task.delete()
    if queued:
        modeladmin.message_user(request, f"Resubmitted: {', '.join(queued)}", messages.SUCCESS)


@admin.action(description="Resubmit the selected failed tasks", permissions=["change", "delete"])
def resubmit_failures(modeladmin, request, queryset):
    _resubmit(modeladmin, request, queryset, delete=True)


@admin.action(description="Resubmit the selected tasks", permissions=["change"])
def resubmit_successes(modeladmin, request, queryset):
    _resubmit(modeladmin, request, queryset, delete=False)


class FailureAdmin(QFailAdmin):
    actions = [resubmit_failures]


class SuccessAdmin(QTaskAdmin):
    actions = [resubmit_successes]


def register(site=admin.site):
    for model, model_admin in ((Schedule, ScheduleAdmin), (Failure, FailureAdmin), (Success, SuccessAdmin)):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
