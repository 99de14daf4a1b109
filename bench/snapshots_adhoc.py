"""Ad-hoc comparison of the snapshot services with bare SQL on the same table (not a test).

    createdb bt_bench && DATABASE_URL=postgres://.../bt_bench python manage.py migrate
    psql bt_bench -f bench/snapshots_adhoc_data.sql
    DATABASE_URL=... python manage.py recalculate --all && psql bt_bench -c "VACUUM ANALYZE"
    DATABASE_URL=... PYTHONPATH=. python bench/snapshots_adhoc.py

Prints wall times of: a bare INSERT … SELECT … ON CONFLICT from the balances vs take_snapshot on a
new boundary; bare re-runs (DO UPDATE of every row, and DO UPDATE … WHERE values differ) vs
re-taking an unchanged boundary; a bare DELETE of one boundary vs prune_snapshots of another; and
the peak RSS of this process. Wall times on a shared machine vary by ±30 %: compare ratios of
adjacent runs, and repeat.
"""

import os
import resource
import time
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from snapshots.periods import floor_boundary  # noqa: E402
from snapshots.services import retention  # noqa: E402
from snapshots.services.snapshots import take_snapshot  # noqa: E402

BARE = """
INSERT INTO snapshots_balancesnapshot (wallet_id, token_id, period, as_of, amount, price_usd, value_usd,
                                       avg_buy_price_usd, source, created_at)
SELECT b.wallet_id, b.token_id, 'hourly', %s, b.amount, NULL, NULL, b.avg_buy_price_usd, 'manual', now()
FROM snapshots_balance b
ON CONFLICT (period, as_of, wallet_id, token_id) DO UPDATE SET amount = EXCLUDED.amount,
    avg_buy_price_usd = EXCLUDED.avg_buy_price_usd
"""
BARE_WHERE = BARE + """ WHERE (snapshots_balancesnapshot.amount, snapshots_balancesnapshot.avg_buy_price_usd)
    IS DISTINCT FROM (EXCLUDED.amount, EXCLUDED.avg_buy_price_usd)"""


def timed(label, fn):
    started = time.monotonic()
    fn()
    seconds = time.monotonic() - started
    print(f"{label:45s} {seconds:7.2f} s", flush=True)
    return seconds


def bare(sql, as_of):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [as_of])


def bare_delete(as_of):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM snapshots_balancesnapshot WHERE period = 'hourly' AND as_of = %s", [as_of])


def checkpoint():
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def main():
    now = timezone.now()
    a = floor_boundary("hourly", now) - timedelta(hours=1)
    b = floor_boundary("hourly", now)
    r = {}
    checkpoint()
    r["bare_new"] = timed("bare INSERT … SELECT … ON CONFLICT (new)", lambda: bare(BARE, a))
    checkpoint()
    r["ours_new"] = timed("take_snapshot (new boundary)", lambda: take_snapshot("hourly", b, "manual"))
    checkpoint()
    r["bare_all"] = timed("bare re-run (DO UPDATE every row)", lambda: bare(BARE, a))
    checkpoint()
    r["bare_where"] = timed("bare re-run (DO UPDATE WHERE values differ)", lambda: bare(BARE_WHERE, a))
    checkpoint()
    r["ours_again"] = timed("take_snapshot (unchanged, again)", lambda: take_snapshot("hourly", b, "manual"))
    checkpoint()
    r["bare_delete"] = timed("bare DELETE of one boundary", lambda: bare_delete(a))
    checkpoint()
    settings.BALANCE_HISTORY_RETENTION_DAYS = settings.BALANCE_WEEKLY_RETENTION_DAYS = 0
    settings.BALANCE_MONTHLY_RETENTION_DAYS = 0
    r["ours_prune"] = timed("prune_snapshots (the other boundary)",
                            lambda: retention.prune_snapshots(now=now + timedelta(days=30)))
    print(f"new {r['ours_new'] / r['bare_new']:.2f}x; again {r['ours_again'] / r['bare_where']:.2f}x of bare-where, "
          f"{r['ours_again'] / r['bare_all']:.2f}x of bare-all; cleanup {r['ours_prune'] / r['bare_delete']:.2f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
