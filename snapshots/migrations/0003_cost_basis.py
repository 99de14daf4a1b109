# Cost basis (docs/ledger.md): new Balance and snapshot columns with database defaults, so adding them
# never fails on existing rows; existing rows read as method "" (not computed) until
# `manage.py recalculate --all --snapshots`. And the wallet summaries of each boundary.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bagtracker", "0002_transaction_integrity_trigger"),
        ("snapshots", "0002_snapshots"),
    ]

    operations = [
        migrations.AddField(
            model_name="balance",
            name="avg_cost_usd",
            field=models.DecimalField(blank=True, decimal_places=18, max_digits=38, null=True),
        ),
        migrations.AddField(
            model_name="balance",
            name="cost_basis_complete",
            field=models.BooleanField(db_default=True, default=True),
        ),
        migrations.AddField(
            model_name="balance",
            name="cost_basis_method",
            field=models.CharField(
                blank=True, choices=[("average", "average"), ("fifo", "fifo")], db_default="", default="", max_length=8
            ),
        ),
        migrations.AddField(
            model_name="balance",
            name="cost_basis_usd",
            field=models.DecimalField(db_default=0, decimal_places=18, default=0, max_digits=38),
        ),
        migrations.AddField(
            model_name="balance",
            name="realized_pnl_complete",
            field=models.BooleanField(db_default=True, default=True),
        ),
        migrations.AddField(
            model_name="balancesnapshot",
            name="cost_basis_method",
            field=models.CharField(
                blank=True, choices=[("average", "average"), ("fifo", "fifo")], db_default="", default="", max_length=8
            ),
        ),
        migrations.AddField(
            model_name="balancesnapshot",
            name="cost_basis_usd",
            field=models.DecimalField(db_default=0, decimal_places=18, default=0, max_digits=38),
        ),
        migrations.AddField(
            model_name="balancesnapshot",
            name="realized_pnl_usd",
            field=models.DecimalField(db_default=0, decimal_places=18, default=0, max_digits=38),
        ),
        migrations.CreateModel(
            name="WalletSnapshot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "period",
                    models.CharField(
                        choices=[
                            ("hourly", "Hourly"),
                            ("daily", "Daily"),
                            ("weekly", "Weekly"),
                            ("monthly", "Monthly"),
                        ],
                        max_length=8,
                    ),
                ),
                ("as_of", models.DateTimeField()),
                ("value_usd", models.DecimalField(decimal_places=18, default=0, max_digits=48)),
                ("rows", models.PositiveIntegerField(default=0)),
                ("unpriced_rows", models.PositiveIntegerField(default=0)),
                ("cost_basis_usd", models.DecimalField(decimal_places=18, default=0, max_digits=48)),
                ("realized_pnl_usd", models.DecimalField(decimal_places=18, default=0, max_digits=48)),
                (
                    "cost_basis_method",
                    models.CharField(
                        blank=True,
                        choices=[("average", "average"), ("fifo", "fifo")],
                        db_default="",
                        default="",
                        max_length=8,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[("scheduled", "Scheduled"), ("manual", "Manual"), ("backfill", "Backfill")],
                        max_length=10,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "wallet",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="summaries",
                        to="bagtracker.wallet",
                    ),
                ),
            ],
            options={
                "ordering": ["-as_of", "wallet_id"],
                "indexes": [models.Index(fields=["wallet", "period", "as_of"], name="summary_wallet_history")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("period", "as_of", "wallet"), name="summary_unique_period_as_of_wallet"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("period__in", ("hourly", "daily", "weekly", "monthly"))),
                        name="summary_period_valid",
                    ),
                ],
            },
        ),
    ]
