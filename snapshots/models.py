from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from bagtracker.models import Token, Wallet, amount_field, price_field
from snapshots.cost_basis import METHODS
from snapshots.periods import PERIODS, Period

# A sum of USD values over a wallet's tokens: wider than one value (NUMERIC(38,18)).
USD_SUM_DIGITS = 48
WALLET_ID_MAX = 2**63 - 1  # bigint


def usd_sum_field(**kwargs):
    return models.DecimalField(max_digits=USD_SUM_DIGITS, decimal_places=18, **kwargs)


def cost_basis_method_field():
    # '' = computed before cost basis existed (or never): counted as "another method" until recalculated.
    return models.CharField(max_length=8, blank=True, default="", db_default="", choices=[(m, m) for m in METHODS])


class Balance(models.Model):
    """The ledger of one (wallet, token) over its confirmed transactions (docs/ledger.md).

    Derived data: written only by snapshots.services.ledger, never edited by hand.
    """

    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="balances")
    token = models.ForeignKey(Token, on_delete=models.PROTECT, related_name="balances")
    amount = amount_field()
    total_in = amount_field()
    total_out = amount_field()
    # Trade statistics: Σ qty·price / Σ qty over the priced acquisitions / disposals.
    avg_buy_price_usd = price_field(null=True, blank=True)
    avg_sell_price_usd = price_field(null=True, blank=True)
    # The cost basis (docs/ledger.md): state after the last transaction, under cost_basis_method.
    cost_basis_usd = price_field(default=0, db_default=0)
    avg_cost_usd = price_field(null=True, blank=True)
    realized_pnl_usd = price_field()
    cost_basis_complete = models.BooleanField(default=True, db_default=True)
    realized_pnl_complete = models.BooleanField(default=True, db_default=True)
    cost_basis_method = cost_basis_method_field()
    # The exact sums behind avg_buy_price_usd (acquisitions that have a price): a snapshot derives
    # the average as of an earlier instant by subtracting the acquisitions made since.
    priced_in_qty = amount_field(default=0)
    priced_in_value_usd = models.DecimalField(max_digits=130, decimal_places=36, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["wallet_id", "token_id"]
        constraints = [
            models.UniqueConstraint(fields=["wallet", "token"], name="balance_unique_wallet_token"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="balance_amount_not_negative"),
        ]

    def __str__(self):
        return f"{self.wallet} {self.token.symbol}: {self.amount}"


class SnapshotSource(models.TextChoices):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"


class BalanceState(models.Model):
    """The state of one (wallet, token) of one period, valid over an interval of boundaries
    (docs/snapshots.md, "How it is stored"): its snapshot row at every taken boundary b of the
    period that covers the wallet (a WalletState holds b) with valid_from <= b < valid_to.

    Derived data, written only by snapshots.services.snapshot_sql. Plain ids, no foreign keys (a
    per-row check doubles a boundary's write): triggers on the wallet and token tables delete a
    deleted wallet's or token's states in the same transaction (migration 0007).
    """

    period = models.CharField(max_length=8, choices=Period.choices)
    wallet_id = models.BigIntegerField()
    token_id = models.BigIntegerField()
    valid_from = models.DateTimeField()
    # 'infinity' while open: Python has no such datetime, so read open states with values_list()
    # of other columns (or in SQL), not as model instances.
    valid_to = models.DateTimeField()
    amount = amount_field()
    avg_buy = price_field(null=True, blank=True)
    cost_basis = price_field()
    realized = price_field()
    method = cost_basis_method_field()
    source = models.CharField(max_length=10, choices=SnapshotSource.choices)
    created_at = models.DateTimeField()

    class Meta:
        # Partitioned by LIST (period), then RANGE (valid_to) (migration 0008; docs/snapshots.md,
        # "Retention"). The database's primary key is the state's key, (period, wallet_id, token_id,
        # valid_from, valid_to) — a unique constraint of a partitioned table must hold its partition
        # keys — not id (migration 0019): id has no index there and only makes the view's row ids.
        # Find states by key (SQL, or filter() on the key's columns), not by id.
        constraints = [
            models.CheckConstraint(condition=Q(valid_from__lt=models.F("valid_to")), name="balance_state_not_empty"),
        ]
        # No index on the parent: each range partition has one on (period, valid_to) (cleanup trims
        # a half-expired range by it) and one on token_id, the open ones neither (migrations 0018,
        # 0020; docs/snapshots.md, "Retention"): a boundary's states are opened there.

    def __str__(self):
        return f"{self.period} {self.wallet_id}/{self.token_id} [{self.valid_from}, {self.valid_to}): {self.amount}"


class BoundaryPrice(models.Model):
    """The price of one token at one boundary of a period, stored once for all its holders."""

    period = models.CharField(max_length=8, choices=Period.choices)
    as_of = models.DateTimeField()
    token_id = models.BigIntegerField()  # no foreign key: see BalanceState
    price_usd = price_field(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["period", "as_of", "token_id"], name="boundary_price_unique"),
        ]

    def __str__(self):
        return f"{self.period} {self.as_of:%Y-%m-%dT%H:%M}Z token {self.token_id}: {self.price_usd}"


class BalanceSnapshot(models.Model):
    """One (wallet, token) of the ledger as of a period boundary (docs/snapshots.md).

    A read-only VIEW (migration 0007): wallet summaries × the BalanceState whose interval holds the
    boundary × the boundary's price, value_usd derived from them. Written only through
    snapshots.services.snapshots; a pure function of history.
    """

    id = models.BigIntegerField(primary_key=True)  # derived from the state's id and the boundary
    wallet = models.ForeignKey(
        Wallet, on_delete=models.DO_NOTHING, related_name="snapshots", db_index=False, db_constraint=False
    )
    # As before the views: the ORM refuses to delete a token that has snapshot rows.
    token = models.ForeignKey(
        Token, on_delete=models.PROTECT, related_name="snapshots", db_index=False, db_constraint=False
    )
    period = models.CharField(max_length=8, choices=Period.choices)
    as_of = models.DateTimeField()
    amount = amount_field()
    price_usd = price_field(null=True, blank=True)
    value_usd = price_field(null=True, blank=True)
    avg_buy_price_usd = price_field(null=True, blank=True)
    # The ledger as of as_of (docs/ledger.md).
    cost_basis_usd = price_field(default=0)
    realized_pnl_usd = price_field(default=0)
    cost_basis_method = cost_basis_method_field()
    source = models.CharField(max_length=10, choices=SnapshotSource.choices)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        ordering = ["-as_of", "wallet_id", "token_id"]

    def __str__(self):
        return f"{self.period} {self.as_of:%Y-%m-%dT%H:%M}Z {self.wallet_id}/{self.token_id}: {self.amount}"


class Boundary(models.Model):
    """A boundary of a period that has been taken, by any write (a whole boundary, a shard plan, a
    wallet's backfill) — docs/snapshots.md, "Wallet summaries as intervals". A wallet state holding
    a taken boundary covers the wallet there; a boundary not taken covers nobody."""

    period = models.CharField(max_length=8, choices=Period.choices)
    as_of = models.DateTimeField()
    source = models.CharField(max_length=10, choices=SnapshotSource.choices)  # of its first write
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "as_of"], name="boundary_unique")]

    def __str__(self):
        return f"{self.period} {self.as_of:%Y-%m-%dT%H:%M}Z"


class WalletState(models.Model):
    """The price-independent part of one wallet's summary of one period, valid over an interval of
    taken boundaries (docs/snapshots.md): the wallet is covered, with these rows, cost basis,
    realized PnL and method, at every taken boundary b with valid_from <= b < valid_to. Its value
    is computed when read (the snapshots_walletsnapshot view). Derived data, like BalanceState."""

    period = models.CharField(max_length=8, choices=Period.choices)
    wallet_id = models.BigIntegerField()
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField()  # 'infinity' while open: see BalanceState
    rows = models.BigIntegerField()
    cost_basis = usd_sum_field()
    realized = usd_sum_field()
    method = cost_basis_method_field()
    source = models.CharField(max_length=10, choices=SnapshotSource.choices)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["period", "wallet_id", "valid_from"], name="wallet_state_unique_from"),
            models.CheckConstraint(condition=Q(valid_from__lt=models.F("valid_to")), name="wallet_state_not_empty"),
        ]
        indexes = [models.Index(fields=["period", "valid_to"], name="wallet_state_period_to")]

    def __str__(self):
        return f"{self.period} wallet {self.wallet_id} [{self.valid_from}, {self.valid_to}): {self.rows} rows"


class BoundaryTotal(models.Model):
    """Σ over every wallet a boundary covers of its rows of one token: their values, their count,
    and how many have no price — the overview's sums (docs/snapshots.md)."""

    period = models.CharField(max_length=8, choices=Period.choices)
    as_of = models.DateTimeField()
    token_id = models.BigIntegerField()  # no foreign key: see BalanceState
    value_usd = usd_sum_field(default=0)
    rows = models.BigIntegerField(default=0)
    unpriced_rows = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "as_of", "token_id"], name="boundary_total_unique")]

    def __str__(self):
        return f"{self.period} {self.as_of:%Y-%m-%dT%H:%M}Z token {self.token_id}: {self.value_usd} USD"


class WalletSnapshot(models.Model):
    """The wallet summary of a boundary (docs/snapshots.md): one per wallet the boundary covers
    (active, with a confirmed transaction before as_of).

    A read-only VIEW (migration 0013): taken boundaries × the WalletState holding them. value_usd
    sums the wallet's rows that have a price (the others are counted in unpriced_rows), computed
    when read from its BalanceStates and the boundary's prices; cost_basis_usd and realized_pnl_usd
    sum ALL its tokens as of as_of, closed positions included, so a realized-PnL line never drops
    when a position is sold out.
    """

    id = models.BigIntegerField(primary_key=True)  # derived from the wallet state's id and the boundary
    wallet = models.ForeignKey(
        Wallet, on_delete=models.DO_NOTHING, related_name="summaries", db_index=False, db_constraint=False
    )
    period = models.CharField(max_length=8, choices=Period.choices)
    as_of = models.DateTimeField()
    value_usd = usd_sum_field(default=0)
    rows = models.PositiveIntegerField(default=0)
    unpriced_rows = models.PositiveIntegerField(default=0)
    cost_basis_usd = usd_sum_field(default=0)
    realized_pnl_usd = usd_sum_field(default=0)
    cost_basis_method = cost_basis_method_field()
    source = models.CharField(max_length=10, choices=SnapshotSource.choices)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        ordering = ["-as_of", "wallet_id"]

    def __str__(self):
        return f"{self.period} {self.as_of:%Y-%m-%dT%H:%M}Z wallet {self.wallet_id}: {self.value_usd} USD"


class SnapshotRun(models.Model):
    """One attempt at a (period, as_of). At most one completed run per boundary: it is the marker
    catch-up looks for, and the only thing that makes the boundary's rows visible to readers. A
    failed attempt is kept beside it, with its error, for the admin.

    A boundary taken in shards (snapshots/services/shards.py) has one ``running`` run while its
    shards are written: its plan (``shard_cuts``: the first wallet id of every shard but the first)
    and the shards done so far. The last shard to finish turns it ``completed`` in its own
    transaction."""

    class Status(models.TextChoices):
        COMPLETED = "completed"
        FAILED = "failed"
        RUNNING = "running"

    period = models.CharField(max_length=8, choices=Period.choices)
    as_of = models.DateTimeField()
    source = models.CharField(max_length=10, choices=SnapshotSource.choices)
    status = models.CharField(max_length=10, choices=Status.choices)
    rows = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # Completed runs: every ledger write the run may not have seen began at or after this instant
    # (snapshots.services.snapshot_sql.HORIZON_SQL); the next boundary's fast path starts from it.
    horizon = models.DateTimeField(null=True, blank=True)
    # Sharded runs only (empty otherwise): shard i covers wallet ids [cuts[i-1], cuts[i]), the first
    # from 0, the last without end, so together the shards cover every wallet, even one added later.
    shard_cuts = ArrayField(models.BigIntegerField(), default=list, db_default="{}", blank=True)
    shards_done = ArrayField(models.PositiveIntegerField(), default=list, db_default="{}", blank=True)
    # Sharded runs: a shard left the boundary's totals behind its rows (it compared with stored
    # intervals, or stored another price than the plan's), so the last shard recomputes them all.
    # Otherwise each shard added its rows' totals itself.
    totals_stale = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["-as_of", "period", "-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "as_of"], condition=Q(status="completed"), name="snapshot_run_one_completed"
            ),
            models.UniqueConstraint(
                fields=["period", "as_of"], condition=Q(status="running"), name="snapshot_run_one_running"
            ),
            models.CheckConstraint(condition=Q(period__in=PERIODS), name="snapshot_run_period_valid"),
        ]
        indexes = [models.Index(fields=["period", "as_of"], name="snapshot_run_period_as_of")]

    def __str__(self):
        return f"{self.period} {self.as_of:%Y-%m-%dT%H:%M}Z {self.status}"

    @property
    def duration_seconds(self):
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def shards(self):
        """How many shards the run was planned in (1: one statement, not sharded)."""
        return len(self.shard_cuts) + 1

    def shard_range(self, index):
        """(lo, hi), inclusive: the wallet ids of shard ``index``."""
        if not 0 <= index < self.shards:
            raise ValueError(f"run {self.pk} has {self.shards} shards, not shard {index}")
        lo = self.shard_cuts[index - 1] if index else 0
        hi = self.shard_cuts[index] - 1 if index < len(self.shard_cuts) else WALLET_ID_MAX
        return lo, hi

    def shards_left(self):
        return [i for i in range(self.shards) if i not in self.shards_done]


class StaleMark(models.Model):
    """What a history edit made stale in the retained snapshots (docs/snapshots.md, "History edits heal
    themselves"): every boundary at or after ``since`` of one wallet (its transactions changed), or
    of every wallet holding one token from ``since`` until ``until`` (a price changed: it counts
    until the next price). Written by database triggers on transactions and prices, in the writer's
    own transaction, one mark per wallet or token (a later write widens it); removed by
    snapshots.services.healing in the transaction that refreshed its last rows.
    """

    # Plain ids, no foreign keys: a mark outlives nothing it names (a deleted wallet's mark finds
    # no rows and is dropped), and it must never make deleting a wallet wait or fail.
    wallet_id = models.BigIntegerField(null=True, blank=True)
    token_id = models.BigIntegerField(null=True, blank=True)
    since = models.DateTimeField()
    until = models.DateTimeField(null=True, blank=True)  # token marks: the next price (null: open)
    # Bumped by every write that touches the mark: a refresh settles a mark only if no write came
    # in since it read it (the write's rows may not be in what the refresh saw).
    generation = models.BigIntegerField(db_default=0)
    marked_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["since"]
        constraints = [
            models.CheckConstraint(
                condition=Q(wallet_id__isnull=False, token_id__isnull=True)
                | Q(wallet_id__isnull=True, token_id__isnull=False),
                name="stale_mark_wallet_or_token",
            ),
            models.UniqueConstraint(
                fields=["wallet_id"], condition=Q(wallet_id__isnull=False), name="stale_mark_wallet"
            ),
            models.UniqueConstraint(fields=["token_id"], condition=Q(token_id__isnull=False), name="stale_mark_token"),
        ]

    def __str__(self):
        what = f"wallet {self.wallet_id}" if self.wallet_id is not None else f"token {self.token_id}"
        return f"{what} since {self.since:%Y-%m-%dT%H:%M}Z"


class JobRunStats(models.Model):
    """How many runs of one job ended with one outcome, and how long they took: the counters behind
    /metrics' bagtracker_task_runs_total and bagtracker_task_duration_seconds.

    Jobs run in qcluster processes and /metrics is served by web processes, so the counts live
    here, written by the worker after each run with one UPSERT (snapshots/services/job_metrics.py).
    They only ever grow: unlike django-q2's task table, nothing prunes them.
    """

    task = models.CharField(max_length=100)
    outcome = models.CharField(max_length=20)
    runs = models.BigIntegerField(default=0)
    duration_seconds_sum = models.FloatField(default=0)
    # Runs per duration bucket (job_metrics.DURATION_BUCKETS, then +Inf), not cumulative.
    duration_buckets = ArrayField(models.BigIntegerField(), default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "job run stats"
        constraints = [models.UniqueConstraint(fields=["task", "outcome"], name="job_run_stats_task_outcome")]

    def __str__(self):
        return f"{self.task} {self.outcome}: {self.runs}"
