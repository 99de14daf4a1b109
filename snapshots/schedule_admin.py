"""The schedule admin: django-q2's, plus "Run now", "Pause"/"Resume", and edits that are checked
the way the scheduler will read them (snapshots/schedules.py explains why that matters)."""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import ngettext
from django_q.admin import ScheduleAdmin as QScheduleAdmin
from django_q.models import Schedule

from snapshots import schedules
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


@admin.action(description="Run now (queue the selected jobs at once)")
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


@admin.action(description="Pause the selected schedules")
@confirmed_action(
    question="Pause these schedules? They will not run until resumed.",
    button="Yes, pause them",
    describe=describe_schedule,
)
def pause(modeladmin, request, queryset):
    count = schedules.pause_schedules(queryset)
    modeladmin.message_user(request, ngettext("%d schedule paused.", "%d schedules paused.", count) % count)


@admin.action(description="Resume the selected schedules")
@confirmed_action(
    question="Resume these schedules? Each runs next at its next cron time.",
    button="Yes, resume them",
    describe=describe_schedule,
)
def resume(modeladmin, request, queryset):
    count = schedules.resume_schedules(queryset)
    modeladmin.message_user(request, ngettext("%d schedule resumed.", "%d schedules resumed.", count) % count)


class ScheduleAdmin(QScheduleAdmin):
    form = ScheduleForm
    actions = [run_now, pause, resume]
    list_display = (
        "id",
        "name",
        "func",
        "schedule_type",
        "cron",
        "paused",
        "repeats",
        "cluster",
        "next_run",
        "get_last_run",
        "get_success",
    )

    @admin.display(boolean=True, description="paused")
    def paused(self, obj):
        return schedules.is_paused(obj)

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


def register(site=admin.site):
    if site.is_registered(Schedule):
        site.unregister(Schedule)
    site.register(Schedule, ScheduleAdmin)
