"""Merging wallets whose EVM addresses differ only in letter case (docs/interfaces.md).

Before the rule, `0x52…EE7` and `0x52…ee7` could become two wallets of one chain, each with part of
the history, so a holding was split in two. ``merge_wallet_case_variants`` puts each such group
back together, one group per database transaction:

- the wallet to keep is the one already in EIP-55 form, else the oldest; it gets that form;
- the others' transactions move to it. The same transaction stored in two variants (same token,
  tx_hash and kind, identical values) is kept once; the same key with different values cannot be
  merged automatically and the group is left as it is, reported;
- the balances of the kept wallet are rebuilt by the ledger (a refusal leaves the group alone,
  reported), the emptied variants are deleted (their balances and snapshot rows with them);
- once committed, the kept wallet's retained snapshots are re-taken from its merged history
  (the wallet-scoped rebuild of `recalculate --snapshots`).

A lone EVM address that is not in EIP-55 form is rewritten to it. Anything else the system check
lists (invisible characters, instants out of range) needs a person, and is reported as such.
"""

import time
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction

from bagtracker.checks import EVM_PATTERN, stored_rows_follow_the_identifier_rules
from bagtracker.identifiers import checksum_address
from bagtracker.models import Chain, Transaction, Wallet
from snapshots.job_registry import Outcome
from snapshots.services.ledger import LedgerError, apply_to_wallets
from snapshots.services.snapshots import rebuild_wallet_snapshots

GROUPS_SQL = """
SELECT c.slug, array_agg(w.id ORDER BY w.id)
FROM bagtracker_wallet w JOIN bagtracker_chain c ON c.id = w.chain_id
WHERE w.address ~ %(evm)s AND (%(chain)s::bigint IS NULL OR w.chain_id = %(chain)s)
GROUP BY c.slug, lower(w.address)
ORDER BY c.slug, min(w.id)
"""

# A variant's transaction that the kept wallet already holds under the same key: (variant tx,
# kept tx, identical values?).
DUPLICATES_SQL = """
SELECT moved.id, kept.id,
       (moved.status, moved.amount, moved.price_usd, moved.timestamp)
       IS NOT DISTINCT FROM (kept.status, kept.amount, kept.price_usd, kept.timestamp)
FROM bagtracker_transaction moved
JOIN bagtracker_transaction kept
  ON kept.wallet_id = %(kept)s AND kept.token_id = moved.token_id
 AND kept.tx_hash = moved.tx_hash AND kept.kind = moved.kind
WHERE moved.wallet_id = %(variant)s
ORDER BY moved.id
"""


class UnknownChain(ValueError):
    pass


class _CannotMerge(Exception):
    pass


@dataclass
class GroupResult:
    chain: str
    address: str  # the EIP-55 form
    kept: int
    merged: list = field(default_factory=list)  # wallet ids merged into ``kept`` (deleted)
    renamed_from: str = ""
    moved: int = 0
    duplicates_dropped: int = 0
    snapshot_boundaries: int = 0
    error: str = ""


@dataclass
class MergeResult:
    dry_run: bool
    groups: list = field(default_factory=list)
    not_fixed: list = field(default_factory=list)  # messages of what needs a person
    duration_seconds: float = 0.0

    @property
    def failed(self):
        return [g for g in self.groups if g.error]

    @property
    def status(self):
        return Outcome.PARTIAL_SUCCESS if self.failed else Outcome.SUCCESS


def _groups(chain_id):
    with connection.cursor() as cursor:
        cursor.execute(GROUPS_SQL, {"evm": EVM_PATTERN, "chain": chain_id})
        return cursor.fetchall()


def _plan(slug, ids):
    """The kept wallet and the variants, or None when the group is already right."""
    wallets = {w.pk: w for w in Wallet.objects.filter(pk__in=ids)}
    canonical = checksum_address(wallets[ids[0]].address)
    kept = next((w for w in wallets.values() if w.address == canonical), wallets[ids[0]])
    variants = [w for pk, w in sorted(wallets.items()) if pk != kept.pk]
    if not variants and kept.address == canonical:
        return None
    return GroupResult(chain=slug, address=canonical, kept=kept.pk, merged=[w.pk for w in variants]), kept, variants


def _merge(group, kept, variants):
    """One group, in the caller's transaction; _CannotMerge leaves it untouched."""
    list(Wallet.objects.select_for_update().filter(pk__in=[kept.pk, *group.merged]).order_by("pk"))
    with connection.cursor() as cursor:
        for variant in variants:
            cursor.execute(DUPLICATES_SQL, {"kept": kept.pk, "variant": variant.pk})
            for moved_id, kept_id, identical in cursor.fetchall():
                if not identical:
                    raise _CannotMerge(
                        f"transaction {moved_id} (wallet {variant.pk}) and {kept_id} (wallet {kept.pk}) have the same "
                        "token, tx_hash and kind but different values; correct or delete one in the admin, then run "
                        "this again"
                    )
                Transaction.objects.filter(pk=moved_id).delete()
                group.duplicates_dropped += 1
            group.moved += Transaction.objects.filter(wallet=variant).update(wallet=kept)
        if not kept.name:
            kept.name = next((v.name for v in variants if v.name), "")
        kept.is_active = kept.is_active or any(v.is_active for v in variants)
        Wallet.objects.filter(pk__in=group.merged).delete()
        if kept.address != group.address:
            group.renamed_from = kept.address
        kept.address = group.address
        kept.save(update_fields=["address", "name", "is_active"])
        try:
            apply_to_wallets([kept.pk])
        except LedgerError as error:
            raise _CannotMerge(f"the merged history is refused by the ledger: {error}") from None


def merge_wallet_case_variants(chain=None, dry_run=False, now=None):
    """Merge the case-variant EVM wallets of ``chain`` (a slug; default every chain). See the module
    docstring. ``dry_run`` says what would be merged and writes nothing."""
    started = time.monotonic()
    chain_id = None
    if chain is not None:
        chain_id = Chain.objects.filter(slug=chain).values_list("pk", flat=True).first()
        if chain_id is None:
            raise UnknownChain(f"chain {chain!r} does not exist")
    result = MergeResult(dry_run=dry_run)
    for slug, ids in _groups(chain_id):
        planned = _plan(slug, ids)
        if planned is None:
            continue
        group, kept, variants = planned
        result.groups.append(group)
        if dry_run:
            continue
        try:
            with transaction.atomic():
                _merge(group, kept, variants)
        except (_CannotMerge, IntegrityError) as error:
            group.error = str(error).splitlines()[0]
            continue
        if group.merged:
            rebuilt = rebuild_wallet_snapshots(kept.pk, now=now)
            group.snapshot_boundaries = len(rebuilt.boundaries)
            if rebuilt.failures:
                group.error = f"merged, but {len(rebuilt.failures):,} snapshot boundaries failed to rebuild"
    if not dry_run:  # what is left for a person (a group that failed is reported with its reason)
        result.not_fixed = [
            warning.msg
            for warning in stored_rows_follow_the_identifier_rules(databases=["default"])
            if warning.id != "bagtracker.W006"
        ]
    result.duration_seconds = time.monotonic() - started
    return result
