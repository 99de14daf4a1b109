# The counters behind /metrics' per-task run counter and duration histogram (snapshots/services/job_metrics.py).

import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("snapshots", "0003_cost_basis"),
    ]

    operations = [
        migrations.CreateModel(
            name="JobRunStats",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("task", models.CharField(max_length=100)),
                ("outcome", models.CharField(max_length=20)),
                ("runs", models.BigIntegerField(default=0)),
                ("duration_seconds_sum", models.FloatField(default=0)),
                (
                    "duration_buckets",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.BigIntegerField(), default=list, size=None
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name_plural": "job run stats",
                "constraints": [models.UniqueConstraint(fields=("task", "outcome"), name="job_run_stats_task_outcome")],
            },
        ),
    ]
