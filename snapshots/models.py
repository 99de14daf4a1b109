from django.db import models

from bagtracker.models import Token, Wallet, amount_field, price_field


class Balance(models.Model):
    """The ledger of one (wallet, token) over its confirmed transactions (DESIGN.md, "The ledger").

    Derived data: written only by snapshots.services.ledger, never edited by hand.
    """

    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="balances")
    token = models.ForeignKey(Token, on_delete=models.PROTECT, related_name="balances")
    amount = amount_field()
    total_in = amount_field()
    total_out = amount_field()
    avg_buy_price_usd = price_field(null=True, blank=True)
    avg_sell_price_usd = price_field(null=True, blank=True)
    realized_pnl_usd = price_field()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["wallet_id", "token_id"]
        constraints = [
            models.UniqueConstraint(fields=["wallet", "token"], name="balance_unique_wallet_token"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="balance_amount_not_negative"),
        ]

    def __str__(self):
        return f"{self.wallet} {self.token.symbol}: {self.amount}"
