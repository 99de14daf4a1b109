"""A system check (database tag) listing stored rows that break the identifier rules (docs/interfaces.md).

Rows saved before the rules existed stay where they are — `migrate` never fails on them (the
CHECKs of migration 0003 are NOT VALID) — but they are named here, as warnings, whenever
`manage.py migrate` or `manage.py check --database default` runs:

- identifiers with a control or invisible character, surrounding whitespace or a leading = + - @;
- EVM addresses not in their EIP-55 form, and wallets of one chain whose addresses differ only in
  letter case (`manage.py merge_wallet_case_variants` merges those);
- transactions and prices whose instant lies outside [2009-01-03, now + 1 day].

Each warning counts the rows and names the first few; the full rule is bagtracker.identifiers.
"""

from django.core import checks
from django.db import DatabaseError, connections
from django.utils import timezone
from psycopg import sql

from bagtracker import instants
from bagtracker.identifiers import address_problem, identifier_problem

SHOWN = 5
EVM_PATTERN = "^0x[0-9a-fA-F]{40}$"
# The cheap SQL approximation of the rule (migration 0003), to find candidates among many rows;
# each candidate is then judged by bagtracker.identifiers.
SUSPECT = r"^[=+@-]|^[[:space:]]|[[:space:]]$|[^\x20-\x7e]"


def _rows(cursor, query, params=()):
    cursor.execute(query, params)
    return cursor.fetchall()


def _listing(items):
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN:,} more" if len(items) > SHOWN else "")


def _identifier_warnings(cursor):
    found = []
    for label, table, column, check_id in (
        ("chain slug", "bagtracker_chain", "slug", "bagtracker.W001"),
        ("token symbol", "bagtracker_token", "symbol", "bagtracker.W002"),
        ("token contract address", "bagtracker_token", "contract_address", "bagtracker.W003"),
        ("transaction tx_hash", "bagtracker_transaction", "tx_hash", "bagtracker.W004"),
    ):
        query = sql.SQL("SELECT id, {column} FROM {table} WHERE {column} ~ %s ORDER BY id").format(
            column=sql.Identifier(column), table=sql.Identifier(table)
        )
        rows = _rows(cursor, query, [SUSPECT])
        bad = [f"#{pk} {value!r} ({problem})" for pk, value in rows if (problem := identifier_problem(value))]
        if bad:
            found.append(
                checks.Warning(
                    f"{len(bad):,} {label}(s) break the identifier rules: {_listing(bad)}",
                    hint="Fix them in the admin (docs/interfaces.md); new rows like these are refused.",
                    id=check_id,
                )
            )
    return found


def _wallet_warnings(cursor):
    found = []
    rows = _rows(
        cursor,
        "SELECT id, address FROM bagtracker_wallet WHERE address ~ %s OR address ~ %s ORDER BY id",
        [SUSPECT, EVM_PATTERN],
    )
    bad = [f"#{pk} {value!r} ({problem})" for pk, value in rows if (problem := address_problem(value))]
    if bad:
        found.append(
            checks.Warning(
                f"{len(bad):,} wallet address(es) break the identifier rules: {_listing(bad)}",
                hint="An EVM address alone on its chain is put in EIP-55 form by saving the wallet in the admin; "
                "case variants are merged by manage.py merge_wallet_case_variants.",
                id="bagtracker.W005",
            )
        )
    groups = _rows(
        cursor,
        "SELECT c.slug, array_agg(w.id ORDER BY w.id) FROM bagtracker_wallet w "
        "JOIN bagtracker_chain c ON c.id = w.chain_id WHERE w.address ~ %s "
        "GROUP BY c.slug, lower(w.address) HAVING count(*) > 1 ORDER BY c.slug, min(w.id)",
        [EVM_PATTERN],
    )
    if groups:
        named = [f"{slug}: wallets {', '.join(f'#{pk}' for pk in ids)}" for slug, ids in groups]
        found.append(
            checks.Warning(
                f"{len(groups):,} EVM address(es) are split over wallets that differ only in letter case: "
                f"{_listing(named)}",
                hint="manage.py merge_wallet_case_variants [--chain SLUG] [--dry-run] merges each group into "
                "the wallet in EIP-55 form.",
                id="bagtracker.W006",
            )
        )
    return found


def _instant_warnings(cursor):
    found = []
    latest = instants.latest(timezone.now())
    for label, table, column, check_id in (
        ("transaction timestamp", "bagtracker_transaction", "timestamp", "bagtracker.W007"),
        ("price as_of", "bagtracker_price", "as_of", "bagtracker.W008"),
    ):
        rows = _rows(
            cursor,
            sql.SQL(
                "SELECT id, {column} FROM {table} WHERE {column} < %s OR {column} > %s ORDER BY id LIMIT 1000"
            ).format(column=sql.Identifier(column), table=sql.Identifier(table)),
            [instants.EARLIEST, latest],
        )
        if rows:
            named = [f"#{pk} {instants.describe(value)}" for pk, value in rows]
            found.append(
                checks.Warning(
                    f"{len(rows):,}{'+' if len(rows) == 1000 else ''} {label}(s) outside 2009-01-03 .. now + 1 day: "
                    f"{_listing(named)}",
                    hint="Correct or delete them in the admin; imports and forms refuse such instants.",
                    id=check_id,
                )
            )
    return found


@checks.register(checks.Tags.database)
def stored_rows_follow_the_identifier_rules(app_configs=None, databases=None, **kwargs):
    if not databases or "default" not in databases:
        return []
    try:
        with connections["default"].cursor() as cursor:
            return _identifier_warnings(cursor) + _wallet_warnings(cursor) + _instant_warnings(cursor)
    except DatabaseError:  # tables not created yet (a first migrate): nothing stored to check
        return []
