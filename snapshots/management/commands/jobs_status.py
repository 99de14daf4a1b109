import json

from django.core.management.base import CommandError
from django.utils import timezone

from command_line import BaseCommand
from snapshots.periods import format_boundary
from snapshots.services import monitoring


def _when(instant):
    return instant.strftime("%Y-%m-%d %H:%MZ") if instant else "—"


class Command(BaseCommand):
    help = (
        "Each job's last success, last failure and next run, and each period's newest snapshot. "
        "Exits 1 when an enabled period's newest completed snapshot is older than two periods."
    )

    def add_arguments(self, parser):
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="machine-readable output")
        output.add_argument("--quiet", action="store_true", help="no output, only the exit status (a health check)")

    def handle(self, *args, **options):
        now = timezone.now()
        jobs = monitoring.job_statuses()
        periods = monitoring.snapshot_freshness(now)
        stale = [p for p in periods if p.stale]
        cost_basis = monitoring.cost_basis_report()

        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "now": now.isoformat(),
                        "stale": bool(stale),
                        "jobs": [j.as_dict() for j in jobs],
                        "periods": [p.as_dict() for p in periods],
                        "cost_basis": cost_basis.as_dict(),
                    },
                    indent=2,
                )
            )
        elif not options["quiet"]:
            self._table(jobs, periods, now)
            self.stdout.write("")
            self.stdout.write(cost_basis.describe())
        if stale:
            raise CommandError("stale snapshots: " + "; ".join(p.describe() for p in stale), returncode=1)

    def _table(self, jobs, periods, now):
        rows = [("JOB", "SCHEDULE", "NEXT RUN", "LAST SUCCESS", "LAST FAILURE")]
        for job in jobs:
            schedule = f"{job.schedule} ({job.cron})" if job.schedule else "on demand"
            next_run = "paused" if job.schedule and job.paused else _when(job.next_run) if job.schedule else "—"
            if job.next_run and job.next_run < now:
                next_run += " (overdue: is a qcluster running?)"
            success = _when(job.last_success)
            if job.last_success:
                details = [f"{job.last_duration_seconds:.2f} s"]
                if job.last_rows is not None:
                    details.append(f"{job.last_rows:,} rows")
                success += f" ({', '.join(details)})"
            failure = _when(job.last_failure) + (f" {job.last_error}" if job.last_error else "")
            rows.append((job.job, schedule, next_run, success, failure))
        self._print(rows)
        self.stdout.write("")
        rows = [("PERIOD", "STATE", "NEWEST SNAPSHOT", "AGE", "ROWS", "FAILED RUNS")]
        for p in periods:
            rows.append(
                (
                    p.period,
                    p.state,
                    format_boundary(p.newest_as_of) if p.newest_as_of else "never",
                    monitoring.format_age(p.age_seconds) if p.age_seconds is not None else "—",
                    f"{p.rows:,}" if p.rows is not None else "—",
                    f"{p.failed_runs:,}",
                )
            )
        self._print(rows)

    def _print(self, rows):
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )
