from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db import transaction
from django.shortcuts import redirect
from django.urls import reverse

from bagtracker.errors import RunningAmountNegative
from bagtracker.models import Chain, Price, Token, Transaction, Wallet
from bagtracker.services.transactions import check_save_transaction, delete_transactions, save_transaction
from bagtracker.signals import history_written


@admin.register(Chain)
class ChainAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]
    search_fields = ["slug", "name"]


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["symbol", "chain", "name", "contract_address", "decimals"]
    list_filter = ["chain", "decimals"]
    search_fields = ["symbol", "name", "contract_address"]
    list_select_related = ["chain"]


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    """The snapshots app extends this admin with the wallet's portfolio pages (snapshots/admin.py)."""

    list_display = ["id", "name", "address", "chain", "is_active", "created_at"]
    list_filter = ["chain", "is_active"]
    search_fields = ["=id", "address", "name"]
    list_select_related = ["chain"]


class TransactionForm(forms.ModelForm):
    class Meta:
        model = Transaction
        fields = ["wallet", "token", "kind", "status", "amount", "price_usd", "timestamp", "tx_hash"]

    def _post_clean(self):
        super()._post_clean()
        if not self.errors:
            # Refuse, with the reason, a change that would drive a running amount negative.
            try:
                check_save_transaction(self.instance)
            except RunningAmountNegative as error:
                self.add_error(None, str(error))


# Named delete_selected so that it replaces the site-wide action: the confirmation page posts
# back action=delete_selected, whatever the action that showed it was called.
@admin.action(description="Delete selected transactions (balances are updated)", permissions=["delete"])
def delete_selected(modeladmin, request, queryset):
    try:
        with transaction.atomic():
            return django_delete_selected(modeladmin, request, queryset)
    except RunningAmountNegative as error:
        modeladmin.message_user(request, f"Nothing was deleted: {error}", messages.ERROR)
        return None


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    form = TransactionForm
    list_display = ["id", "timestamp", "wallet", "token", "kind", "status", "amount", "price_usd", "tx_hash"]
    list_filter = ["kind", "status", "token__chain", "token"]
    search_fields = ["=id", "tx_hash", "wallet__address", "wallet__name", "token__symbol"]
    date_hierarchy = "timestamp"
    list_select_related = ["wallet", "token", "token__chain"]
    autocomplete_fields = ["wallet", "token"]
    actions = [delete_selected]

    def save_model(self, request, obj, form, change):
        save_transaction(obj)

    def delete_model(self, request, obj):
        delete_transactions(Transaction.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        delete_transactions(queryset)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except RunningAmountNegative as error:
            self.message_user(request, f"Not deleted: {error}", messages.ERROR)
            return redirect(reverse("admin:bagtracker_transaction_change", args=[object_id]))


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ["token", "as_of", "price_usd", "source"]
    list_filter = ["source", "token__chain", "token"]
    search_fields = ["token__symbol", "source"]
    date_hierarchy = "as_of"
    list_select_related = ["token", "token__chain"]
    autocomplete_fields = ["token"]

    # A price for the past changes the snapshots taken since: tell the snapshots app (it refreshes
    # them once this transaction commits).
    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            history_written.send(sender=Price)

    def delete_model(self, request, obj):
        with transaction.atomic():
            super().delete_model(request, obj)
            history_written.send(sender=Price)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            super().delete_queryset(request, queryset)
            history_written.send(sender=Price)
