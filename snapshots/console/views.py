"""The console's pages: a wallet's portfolio, its backfill form, and the overview.

Thin: each reads one service (snapshots.services.portfolio, .monitoring) or queues one job
(snapshots.services.jobs.queue_job) and renders a template. The wallet pages are mounted by
WalletAdmin.get_urls (admin/bagtracker/wallet/<id>/portfolio/, …/backfill/), the overview by the
admin site (admin/overview/, config/admin_site.py).
"""

from datetime import UTC, date, datetime, time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from bagtracker import instants
from bagtracker.errors import WalletNotFound
from bagtracker.models import Wallet
from read_replica import replica_view
from snapshots.console import permissions
from snapshots.console.charts import chart_data, pnl_chart_data
from snapshots.models import Period
from snapshots.periods import format_boundary
from snapshots.services import bounds, monitoring, portfolio
from snapshots.services.jobs import QueueError, queue_job


def _wallet_or_404(model_admin, request, object_id):
    wallet = model_admin.get_object(request, unquote(object_id))
    if wallet is None:
        raise Http404(str(WalletNotFound(object_id)))
    return wallet


def _context(model_admin, request, wallet, title):
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": wallet,
        "wallet": wallet,
        "title": title,
    }


@replica_view
def wallet_portfolio(model_admin, request, object_id):
    """The wallet's value over time (total and per token, a tab per period) and its positions."""
    if not permissions.can(request, permissions.PORTFOLIO):
        raise PermissionDenied
    wallet = _wallet_or_404(model_admin, request, object_id)
    positions = portfolio.wallet_positions(wallet.pk)
    context = {
        **_context(model_admin, request, wallet, f"Portfolio of wallet {wallet}"),
        "chart": chart_data(portfolio.wallet_value_history(wallet.pk)),
        "pnl_chart": pnl_chart_data(portfolio.wallet_pnl_history(wallet.pk)),
        "cost_basis_method": settings.BALANCE_COST_BASIS,
        "positions": positions,
        "max_points": portfolio.MAX_POINTS,
    }
    return TemplateResponse(request, "admin/console/wallet_portfolio.html", context)


# --- Backfill ------------------------------------------------------------------------------------


class BackfillForm(forms.Form):
    period = forms.ChoiceField(choices=Period.choices, initial=Period.DAILY)
    since = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="00:00 UTC of this day")
    until = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="00:00 UTC of this day, inclusive; empty = now",
    )

    def __init__(self, *args, now, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError(f"since {since} is after until {until}")
        if since and _midnight(since) > self.now:
            self.add_error("since", f"{since} is in the future")
        return cleaned

    def instants(self):
        """(since, until) clamped into [2009-01-03, now]: a range is clamped, never refused for
        reaching too far (0001-01-01 would otherwise overflow computing a weekly boundary)."""
        since = instants.clamp(_midnight(self.cleaned_data["since"]), self.now)
        until = self.cleaned_data.get("until")
        return since, min(instants.clamp(_midnight(until), self.now), self.now) if until else self.now


def _midnight(day: date):
    return datetime.combine(day, time(), tzinfo=UTC)


def wallet_backfill(model_admin, request, object_id):
    """Form (period, since, until) → a confirmation page naming the boundaries → the queued job."""
    if not permissions.can(request, permissions.BACKFILL):
        raise PermissionDenied
    wallet = _wallet_or_404(model_admin, request, object_id)
    now = timezone.now()
    form = BackfillForm(request.POST or None, now=now)
    context = {**_context(model_admin, request, wallet, f"Backfill snapshots of wallet {wallet}"), "form": form}
    if request.method != "POST" or not form.is_valid():
        return TemplateResponse(request, "admin/console/wallet_backfill.html", context)

    period = form.cleaned_data["period"]
    since, until = form.instants()
    # Clamped to the wallet's first transaction and to retention before anything is listed.
    plan = bounds.plan_backfill(period, since, until, now, wallet_ids=[wallet.pk])
    if request.POST.get("confirmed") != "yes" or not plan.count:
        context.update(
            period=period,
            boundaries=plan.count,
            first=plan.count and format_boundary(plan.first),
            last=plan.count and format_boundary(plan.last),
            since_text=format_boundary(since),
            until_text=format_boundary(until),
            notes=plan.notes,
        )
        return TemplateResponse(request, "admin/console/wallet_backfill_confirm.html", context)

    try:
        task_id = queue_job("backfill_wallet_snapshots", wallet.pk, period, since.isoformat(), until.isoformat())
    except QueueError as error:
        model_admin.message_user(request, str(error), messages.ERROR)
        return TemplateResponse(request, "admin/console/wallet_backfill.html", context)
    model_admin.message_user(
        request,
        f"Queued the backfill of {plan.count:,} {period} boundaries of wallet {wallet} "
        f"({format_boundary(plan.first)} to {format_boundary(plan.last)}): task {task_id}",
        messages.SUCCESS,
    )
    return redirect(reverse("admin:bagtracker_wallet_portfolio", args=[wallet.pk]))


# --- Overview ------------------------------------------------------------------------------------


def job_health(now):
    """One row per job: its schedule, last run, next run, last failure, and its period's freshness."""
    freshness = {f.period: f for f in monitoring.snapshot_freshness(now)}
    rows = []
    for job in monitoring.job_statuses():
        period = job.period
        runs = [t for t in (job.last_success, job.last_failure) if t]
        rows.append(
            {
                "job": job,
                "last_run": max(runs) if runs else None,
                "last_run_failed": bool(runs) and job.last_failure == max(runs),
                "overdue": bool(job.next_run and job.next_run < now),
                "freshness": freshness.get(period),
                "age": monitoring.format_age(freshness[period].age_seconds)
                if period and freshness[period].age_seconds is not None
                else None,
            }
        )
    return rows


@replica_view
def overview(request, site):
    """All active wallets' value over time (one period per page: its sum reads every row of the
    fleet's boundaries), and every job's health, at a glance."""
    if not permissions.can(request, permissions.OVERVIEW):
        raise PermissionDenied
    now = timezone.now()
    health = job_health(now)
    period = request.GET.get("period")
    period = period if period in Period.values else "daily"
    history = portfolio.portfolio_value_history(period)
    context = {
        **site.each_context(request),
        "title": "Overview",
        "chart": chart_data({period: history}, per_token=False, selected=period),
        "jobs": health,
        "stale": [row for row in health if row["freshness"] and row["freshness"].stale],
        "now": now,
        "wallets": Wallet.objects.filter(is_active=True).count(),
        "max_points": portfolio.MAX_POINTS,
    }
    return TemplateResponse(request, "admin/console/overview.html", context)
