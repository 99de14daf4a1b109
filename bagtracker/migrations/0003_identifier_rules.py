"""Identifier rules (docs/interfaces.md): field validators for the admin, and CHECKs for the
database — no control or invisible character, no whitespace at either end, no leading = + - @.

The CHECKs are added NOT VALID: PostgreSQL enforces them on every row written from now on but does
not scan the rows already stored, so `migrate` never fails on data saved before the rule. Those
rows are listed by the system check (`manage.py check --database default`, bagtracker/checks.py);
once fixed, `ALTER TABLE … VALIDATE CONSTRAINT …` makes a constraint complete. The character class
is a cheap approximation of bagtracker.identifiers (Unicode categories Cc, Cf, Zl, Zp and the odd
spaces), which stays the one full rule.
"""

from django.db import migrations, models

import bagtracker.identifiers

# Control characters, then the invisible ones: no-break and odd-width spaces, soft hyphen, Arabic
# letter mark, zero-width and bidi marks, line/paragraph separators, word joiners, the BOM.
INVISIBLE = (
    "[[:cntrl:]\\u00a0\\u00ad\\u061c\\u180e\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u206f\\u3000\\ufeff\\ufff9-\\ufffb]"
)
COLUMNS = [
    ("bagtracker_chain", "slug", "chain_slug_clean"),
    ("bagtracker_token", "symbol", "token_symbol_clean"),
    ("bagtracker_token", "contract_address", "token_contract_address_clean"),
    ("bagtracker_wallet", "address", "wallet_address_clean"),
    ("bagtracker_transaction", "tx_hash", "transaction_tx_hash_clean"),
]


def _check(column):
    return f"{column} !~ '^[=+@-]' AND {column} !~ '^[[:space:]]|[[:space:]]$' AND {column} !~ '{INVISIBLE}'"


ADD = [
    f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({_check(column)}) NOT VALID" for table, column, name in COLUMNS
]
DROP = [f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}" for table, _, name in COLUMNS]


class Migration(migrations.Migration):
    dependencies = [
        ("bagtracker", "0002_transaction_integrity_trigger"),
    ]

    operations = [
        migrations.RunSQL(ADD, reverse_sql=DROP),
        migrations.AlterField(
            model_name="chain",
            name="slug",
            field=models.SlugField(unique=True, validators=[bagtracker.identifiers.validate_identifier]),
        ),
        migrations.AlterField(
            model_name="token",
            name="contract_address",
            field=models.CharField(
                blank=True, default="", max_length=128, validators=[bagtracker.identifiers.validate_identifier]
            ),
        ),
        migrations.AlterField(
            model_name="token",
            name="symbol",
            field=models.CharField(max_length=32, validators=[bagtracker.identifiers.validate_identifier]),
        ),
        migrations.AlterField(
            model_name="transaction",
            name="tx_hash",
            field=models.CharField(
                blank=True, max_length=128, null=True, validators=[bagtracker.identifiers.validate_identifier]
            ),
        ),
        migrations.AlterField(
            model_name="wallet",
            name="address",
            field=models.CharField(max_length=128, validators=[bagtracker.identifiers.validate_identifier]),
        ),
    ]
