from django.contrib import admin

from snapshots.models import Balance


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):
    """Balances are derived from transactions: read-only here; `recalculate` repairs them."""

    list_display = [
        "wallet", "token", "amount", "total_in", "total_out",
        "avg_buy_price_usd", "avg_sell_price_usd", "realized_pnl_usd", "updated_at",
    ]
    list_filter = ["token__chain", "token"]
    search_fields = ["=wallet__id", "wallet__address", "wallet__name", "token__symbol"]
    list_select_related = ["wallet", "token", "token__chain"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# django-q2's schedule admin, extended with run now / pause / resume and validated edits.
from snapshots import schedule_admin  # noqa: E402

schedule_admin.register()
