"""The domain: chains, tokens, wallets, their transactions and token price history.

Every rule a row must satisfy is a database constraint, so a bulk import, a shell session or raw
SQL cannot store what a form would refuse. Rules that span tables (a transaction's token belongs to
its wallet's chain; its amount has no more decimal places than the token allows) are enforced by
the trigger installed in migration 0002.

Identifiers (docs/interfaces.md, bagtracker/identifiers.py): field validators and clean()
give the admin its form errors; migration 0003 adds CHECKs for no invisible characters, no
surrounding whitespace and no formula prefix, NOT VALID so that `migrate` never fails on rows
stored before the rule (`manage.py check --database default` lists those). An EVM address is
stored in its EIP-55 form whatever path saves the wallet (save()). Stored instants lie in
[2009-01-03, now + 1 day] (clean(); a CHECK cannot depend on now()).
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import ExpressionWrapper, Q

from bagtracker import instants
from bagtracker.identifiers import (
    BadIdentifier,
    canonical_address,
    checksum_address,
    is_evm_address,
    validate_identifier,
)
from bagtracker.numbers import digits_and_places

AMOUNT_DIGITS = 78  # token amounts: NUMERIC(78, 18)
PRICE_DIGITS = 38  # prices and USD values: NUMERIC(38, 18)
DECIMAL_PLACES = 18


def amount_field(**kwargs):
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)


def price_field(**kwargs):
    return models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)


class Chain(models.Model):
    slug = models.SlugField(max_length=50, unique=True, validators=[validate_identifier])
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class Token(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="tokens")
    symbol = models.CharField(max_length=32, validators=[validate_identifier])
    name = models.CharField(max_length=100, blank=True)
    # Empty for the chain's native coin (ETH on ethereum, SOL on solana).
    contract_address = models.CharField(max_length=128, blank=True, default="", validators=[validate_identifier])
    decimals = models.PositiveSmallIntegerField(default=18)

    class Meta:
        ordering = ["chain__slug", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "symbol"], name="token_unique_symbol_per_chain"),
            models.UniqueConstraint(
                fields=["chain", "contract_address"],
                condition=~Q(contract_address=""),
                name="token_unique_contract_per_chain",
            ),
            models.CheckConstraint(
                condition=Q(decimals__gte=0, decimals__lte=DECIMAL_PLACES), name="token_decimals_0_18"
            ),
        ]

    def __str__(self):
        return f"{self.symbol} ({self.chain_id and self.chain.slug})"

    def clean(self):
        # The same rules as the trigger of migration 0002, as form errors instead of a failed save.
        stored = Token.objects.filter(pk=self.pk).values("chain_id", "decimals").first() if self.pk else None
        if stored is None:
            return
        errors = {}
        if self.chain_id != stored["chain_id"] and self.transactions.exists():
            errors["chain"] = f"{self.symbol} has transactions; its chain cannot change"
        if self.decimals is not None and self.decimals < stored["decimals"]:
            needed = self.transactions.aggregate(
                places=models.Max(models.Func(models.Func("amount", function="trim_scale"), function="scale"))
            )["places"]
            if needed is not None and needed > self.decimals:
                errors["decimals"] = (
                    f"{self.symbol} has transaction amounts with more than {self.decimals} decimal places; "
                    f"the fewest it can have is {needed}"
                )
        if errors:
            raise ValidationError(errors)


class Wallet(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="wallets")
    address = models.CharField(max_length=128, validators=[validate_identifier])
    name = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="wallet_unique_address_per_chain"),
            models.CheckConstraint(condition=~Q(address=""), name="wallet_address_not_empty"),
        ]

    def __str__(self):
        label = self.name or self.address
        return f"#{self.pk} {label}"

    def save(self, *args, **kwargs):
        # One wallet per EVM address whatever its case: stored in EIP-55 form by every path (a
        # shell, a fixture). A mixed-case address with a wrong checksum is left for clean() and the
        # importers to refuse, and for the system check to list.
        if (
            self.address
            and is_evm_address(self.address)
            and self.address[2:]
            in (
                self.address[2:].lower(),
                self.address[2:].upper(),
            )
        ):
            self.address = checksum_address(self.address)
        super().save(*args, **kwargs)

    def clean(self):
        # As the trigger of migration 0002: a wallet's transactions hold tokens of its chain.
        if (
            self.pk
            and self.transactions.exists()
            and Wallet.objects.filter(pk=self.pk).exclude(chain_id=self.chain_id).exists()
        ):
            raise ValidationError({"chain": f"wallet {self.pk} has transactions; its chain cannot change"})
        if self.address and is_evm_address(self.address):
            try:
                self.address = canonical_address(self.address)
            except BadIdentifier as error:
                raise ValidationError({"address": str(error)}) from None
            variant = self.case_variants().first() if self.chain_id else None
            if variant:
                raise ValidationError(
                    {
                        "address": f"wallet {variant} has this address in another letter case; merge them with "
                        "manage.py merge_wallet_case_variants"
                    }
                )

    def case_variants(self):
        """Other wallets of this chain whose EVM address differs from this one's in letter case only."""
        same = Wallet.objects.filter(chain_id=self.chain_id, address__iexact=self.address)
        return same.exclude(address=self.address).exclude(pk=self.pk)


class TransactionKind(models.TextChoices):
    BUY = "buy"
    SELL = "sell"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"


# The one definition of which kinds add to a running amount (acquisitions) and which take from it
# (disposals). SQL that needs them takes them as parameters (e.g. `kind = ANY(%(disposals)s)`).
ACQUISITION_KINDS = (TransactionKind.BUY.value, TransactionKind.TRANSFER_IN.value)
DISPOSAL_KINDS = (TransactionKind.SELL.value, TransactionKind.TRANSFER_OUT.value)


class TransactionStatus(models.TextChoices):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Transaction(models.Model):
    Kind = TransactionKind
    Status = TransactionStatus

    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="transactions")
    token = models.ForeignKey(Token, on_delete=models.PROTECT, related_name="transactions")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CONFIRMED)
    amount = amount_field()
    price_usd = price_field(null=True, blank=True)
    timestamp = models.DateTimeField()
    # NULL, not "": many transactions have no hash, and the unique constraint must ignore them.
    tx_hash = models.CharField(max_length=128, null=True, blank=True, validators=[validate_identifier])  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transaction_amount_positive"),
            models.CheckConstraint(
                condition=Q(price_usd__isnull=True) | Q(price_usd__gte=0), name="transaction_price_not_negative"
            ),
            models.CheckConstraint(condition=Q(kind__in=TransactionKind.values), name="transaction_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=TransactionStatus.values), name="transaction_status_valid"),
            models.CheckConstraint(
                condition=Q(tx_hash__isnull=True) | ~Q(tx_hash=""), name="transaction_tx_hash_null_not_empty"
            ),
            models.UniqueConstraint(
                fields=["wallet", "token", "tx_hash", "kind"],
                condition=Q(tx_hash__isnull=False),
                name="transaction_unique_hash_per_wallet_token_kind",
            ),
        ]
        indexes = [
            # The ledger walk reads a pair's history in ledger order (docs/ledger.md): timestamp,
            # acquisitions before disposals at the same instant, id. With the kind's rank in the
            # key the walk's read needs no sort (an incremental sort cost ~0.2 µs a row).
            models.Index(
                "wallet",
                "token",
                "timestamp",
                ExpressionWrapper(~Q(kind__in=ACQUISITION_KINDS), output_field=models.BooleanField()),
                "id",
                name="transaction_ledger_order",
            ),
            # The price fallback: a token's latest priced confirmed transaction at or before T.
            models.Index(
                fields=["token", "timestamp"],
                condition=Q(status="confirmed", price_usd__isnull=False),
                name="transaction_priced_by_token",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.amount} {self.token_id and self.token.symbol} (#{self.pk})"

    def clean(self):
        errors = {}
        if self.tx_hash == "":
            self.tx_hash = None
        if self.wallet_id and self.token_id and self.wallet.chain_id != self.token.chain_id:
            errors["token"] = (
                f"{self.token.symbol} is on {self.token.chain.slug}, the wallet on {self.wallet.chain.slug}"
            )
        if (
            self.token_id
            and self.amount is not None
            and self.amount.is_finite()
            and digits_and_places(self.amount)[1] > self.token.decimals
        ):
            errors["amount"] = f"{self.token.symbol} allows at most {self.token.decimals} decimal places"
        if self.timestamp is not None:
            try:
                instants.check_instant(self.timestamp, "timestamp")
            except instants.InstantOutOfRange as error:
                errors["timestamp"] = str(error)
        if errors:
            raise ValidationError(errors)


class Price(models.Model):
    token = models.ForeignKey(Token, on_delete=models.CASCADE, related_name="prices")
    as_of = models.DateTimeField()
    price_usd = price_field()
    source = models.CharField(max_length=50, default="manual")

    class Meta:
        ordering = ["-as_of"]
        constraints = [
            models.UniqueConstraint(fields=["token", "as_of"], name="price_unique_token_as_of"),
            models.CheckConstraint(condition=Q(price_usd__gte=0), name="price_not_negative"),
        ]

    def __str__(self):
        return f"{self.token} @ {self.as_of:%Y-%m-%d %H:%M}Z = {self.price_usd}"

    def clean(self):
        if self.as_of is not None:
            try:
                instants.check_instant(self.as_of, "as_of")
            except instants.InstantOutOfRange as error:
                raise ValidationError({"as_of": str(error)}) from None
