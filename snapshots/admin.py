from datetime import UTC, datetime
from functools import partial

from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html

from bagtracker.admin import WalletAdmin as DomainWalletAdmin
from bagtracker.models import Wallet
from snapshots.console import permissions
from snapshots.console import views as console
from snapshots.console.actions import recalculate_selected_wallets
from snapshots.models import Balance, BalanceSnapshot, SnapshotRun
from snapshots.services.monitoring import cost_basis_report

# The domain's wallet admin with the console on top: a portfolio chart and backfill page per wallet
# and a "recalculate" action. Registered here, not in bagtracker/admin.py, so that the domain app
# imports nothing from this one (docs/architecture.md).
admin.site.unregister(Wallet)


@admin.register(Wallet)
class WalletAdmin(DomainWalletAdmin):
    list_display = [*DomainWalletAdmin.list_display, "portfolio_link"]
    actions = [recalculate_selected_wallets]
    change_form_template = "admin/console/wallet_change_form.html"

    def get_urls(self):
        # The console's wallet pages (snapshots/console/views.py), before the catch-all <id>/ URL.
        def page(view, name):
            return path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(partial(view, self)),
                name=f"bagtracker_wallet_{name}",
            )

        return [
            page(console.wallet_portfolio, "portfolio"),
            page(console.wallet_backfill, "backfill"),
            *super().get_urls(),
        ]

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if permissions.can(request, permissions.PORTFOLIO) else [f for f in shown if f != "portfolio_link"]

    @admin.display(description="portfolio")
    def portfolio_link(self, wallet):
        return format_html('<a href="{}">chart</a>', reverse("admin:bagtracker_wallet_portfolio", args=[wallet.pk]))

    def get_deleted_objects(self, objs, request):
        """A wallet goes with its derived rows (balances, summaries; the snapshot rows by trigger):
        those are read-only to everyone here, so they must not stop a user allowed to delete the
        wallet (and its transactions) from doing so, as Django's check of related objects would."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        derived = {
            model._meta.verbose_name
            for model, model_admin in self.admin_site._registry.items()
            if isinstance(model_admin, ReadOnlyAdmin)
        }
        return deleted, counts, perms_needed - derived, protected


class ReadOnlyAdmin(admin.ModelAdmin):
    """Derived data: the services write it, people look at it."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    """Balances are derived from transactions: read-only here; `recalculate` repairs them."""

    list_display = [
        "wallet",
        "token",
        "amount",
        "total_in",
        "total_out",
        "cost_basis_usd",
        "avg_cost_usd",
        "realized_pnl_usd",
        "cost_basis_complete",
        "realized_pnl_complete",
        "cost_basis_method",
        "avg_buy_price_usd",
        "avg_sell_price_usd",
        "updated_at",
    ]
    list_filter = ["cost_basis_method", "cost_basis_complete", "realized_pnl_complete", "token__chain", "token"]
    search_fields = ["=wallet__id", "wallet__address", "wallet__name", "token__symbol"]
    list_select_related = ["wallet", "token", "token__chain"]

    def changelist_view(self, request, extra_context=None):
        # A switch of BALANCE_COST_BASIS is said where the numbers are read, until it is applied.
        report = cost_basis_report()
        if report.switched:
            messages.warning(request, report.describe())
        return super().changelist_view(request, extra_context)


class InputFilter(admin.SimpleListFilter):
    """A text box in the filter sidebar (a wallet id, a date): lists of every wallet don't scale."""

    template = "admin/snapshots/input_filter.html"
    placeholder = ""

    def lookups(self, request, model_admin):
        return ((None, None),)  # one dummy choice, so that the filter is shown

    def choices(self, changelist):
        all_choice = next(super().choices(changelist))
        all_choice["query_parts"] = [
            (name, value)
            for name, values in changelist.get_filters_params().items()
            if name != self.parameter_name
            for value in (values if isinstance(values, list) else [values])
        ]
        yield all_choice


class WalletIdFilter(InputFilter):
    title = "wallet id"
    parameter_name = "wallet"
    placeholder = "e.g. 42"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        return queryset.filter(wallet_id=int(value)) if value.isdigit() else queryset


def _parse_day_or_instant(text):
    text = (text or "").strip()
    if not text:
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


class AsOfFromFilter(InputFilter):
    title = "as of, from (inclusive)"
    parameter_name = "as_of_from"
    placeholder = "2026-11-01 or 2026-11-01T06:00Z"

    def queryset(self, request, queryset):
        start = _parse_day_or_instant(self.value())
        return queryset.filter(as_of__gte=start) if start else queryset


class AsOfUntilFilter(InputFilter):
    title = "as of, until (inclusive)"
    parameter_name = "as_of_until"
    placeholder = "2026-11-30T23:00Z"

    def queryset(self, request, queryset):
        end = _parse_day_or_instant(self.value())
        return queryset.filter(as_of__lte=end) if end else queryset


@admin.register(BalanceSnapshot)
class BalanceSnapshotAdmin(ReadOnlyAdmin):
    """Snapshots are a pure function of history: read-only; re-take them with create_snapshots,
    backfill_snapshots or recalculate --snapshots."""

    list_display = [
        "as_of",
        "period",
        "wallet",
        "token",
        "amount",
        "price_usd",
        "value_usd",
        "avg_buy_price_usd",
        "source",
        "created_at",
    ]
    list_filter = ["period", "source", "token", WalletIdFilter, AsOfFromFilter, AsOfUntilFilter]
    date_hierarchy = "as_of"
    search_fields = ["=wallet__id", "wallet__address", "wallet__name", "token__symbol"]
    list_select_related = ["wallet", "token", "token__chain"]
    show_full_result_count = False


@admin.register(SnapshotRun)
class SnapshotRunAdmin(ReadOnlyAdmin):
    list_display = ["as_of", "period", "status", "source", "rows", "started_at", "duration", "short_error"]
    list_filter = ["period", "status", "source"]
    date_hierarchy = "as_of"
    show_full_result_count = False

    @admin.display(description="duration (s)")
    def duration(self, run):
        seconds = run.duration_seconds
        return None if seconds is None else f"{seconds:.2f}"

    @admin.display(description="error")
    def short_error(self, run):
        return run.error if len(run.error) <= 120 else run.error[:117] + "..."


# django-q2's schedule admin, extended with run now / pause / resume and validated edits.
from snapshots import schedule_admin  # noqa: E402 -- registers after the admins above

schedule_admin.register()
