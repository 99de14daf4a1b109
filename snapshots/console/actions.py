"""Operator actions that ask first: a confirmation page naming what will happen to which objects,
then the action itself, whose message carries the queued task ids.

`confirmed_action` wraps any admin action (the schedule admin's run now / pause / resume use it
too); `recalculate_selected_wallets` queues the recalculate_wallet_balances job per wallet.
"""

from functools import wraps

from django.contrib import messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from snapshots.services.jobs import QueueError, queue_job

# Objects listed by name on a confirmation page; beyond that, a count.
LISTED = 20
# Wallets one click may queue a job for; the whole fleet is one recalculate_all_wallets job.
MAX_WALLETS = 1000


def confirmed_action(*, question, button, template="admin/console/confirm_action.html", describe=str):
    """Show a confirmation page first; run the action when that page is posted (confirmed=yes).

    ``describe(obj)`` names each selected object on the page."""

    def decorate(action):
        @wraps(action)
        def confirm_first(modeladmin, request, queryset):
            if request.POST.get("confirmed") == "yes":
                return action(modeladmin, request, queryset)
            return confirmation_page(
                modeladmin, request, queryset, action.__name__, question, button, template, describe
            )

        return confirm_first

    return decorate


def confirmation_page(modeladmin, request, queryset, action_name, question, button, template, describe=str):
    opts = modeladmin.model._meta
    count = queryset.count()
    select_across = request.POST.get("select_across") == "1"
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Are you sure?",
        "opts": opts,
        "question": question,
        "button": button,
        "action_name": action_name,
        "objects": [describe(obj) for obj in queryset[:LISTED]],
        "count": count,
        "more": max(0, count - LISTED),
        "select_across": select_across,
        # Every selected id is posted back (not only the listed ones), unless "select all" was used.
        "selected": [] if select_across else request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "verbose_name": opts.verbose_name if count == 1 else opts.verbose_name_plural,
    }
    return TemplateResponse(request, template, context)


def _listing(queued, shown=10):
    text = ", ".join(queued[:shown])
    return text + (f" and {len(queued) - shown:,} more" if len(queued) > shown else "")


@confirmed_action(
    question="Recalculate the balances of these wallets from their confirmed transactions? "
    "One recalculate_wallet_balances job is queued per wallet.",
    button="Yes, queue the recalculation",
    template="admin/console/confirm_recalculate.html",
)
def recalculate_selected_wallets(modeladmin, request, queryset):
    count = queryset.count()
    if count > MAX_WALLETS:
        modeladmin.message_user(
            request,
            f"{count:,} wallets selected; at most {MAX_WALLETS:,} at once. For the whole fleet queue "
            "recalculate_all_wallets: manage.py recalculate --all --async",
            messages.ERROR,
        )
        return None
    create_snapshots = request.POST.get("create_snapshots") == "on"
    queued = []
    try:
        for wallet in queryset.order_by("pk"):
            task_id = queue_job("recalculate_wallet_balances", wallet.pk, create_snapshots=create_snapshots)
            queued.append(f"#{wallet.pk} (task {task_id})")
    except QueueError as error:
        modeladmin.message_user(
            request, f"{error}. Queued before the error: {_listing(queued) or 'none'}", messages.ERROR
        )
        return None
    what = "recalculation and snapshot rebuild" if create_snapshots else "recalculation"
    modeladmin.message_user(
        request,
        f"Queued the {what} of {len(queued):,} wallet{'s' if len(queued) != 1 else ''}: {_listing(queued)}",
        messages.SUCCESS,
    )
    return None


recalculate_selected_wallets.short_description = "Recalculate the selected wallets (queued)"
recalculate_selected_wallets.allowed_permissions = ("change",)
