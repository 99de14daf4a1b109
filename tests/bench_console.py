"""Benchmark of the admin console on a realistic fleet: server time and queries of the wallet page
and the overview (issue 7: < 300 ms for the wallet page with 1,000 wallets and a year of daily
snapshots). Not a test: timings on shared machines are reported, not asserted.

    DATABASE_URL=postgres://…/bench_db python -m tests.bench_console [--wallets 1000] [--days 365]

On an empty database it migrates, loads `seed_demo --wallets N --days D`, and takes a year of
daily snapshots (plus weekly, monthly and a week of hourly ones) for every wallet; a database that
already has them is reused. Server time = the whole Django request in-process (middleware, views,
templates, queries), without a network hop.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--samples", type=int, default=25, help="wallet pages timed")
    parser.add_argument("--rounds", type=int, default=3, help="reads of each sampled wallet's chart")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        sys.exit("set DATABASE_URL to a database of its own: the benchmark loads a fleet into it")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("BALANCE_HISTORY_RETENTION_DAYS", "0")  # keep the year (nothing is cleaned up here anyway)

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from bagtracker.models import Wallet
    from snapshots.models import BalanceSnapshot
    from snapshots.periods import floor_boundary
    from snapshots.services.snapshots import backfill_snapshots

    call_command("migrate", verbosity=0)
    if not Wallet.objects.exists():
        started = time.monotonic()
        call_command("seed_demo", wallets=args.wallets, days=args.days, verbosity=0)
        print(f"seed_demo --wallets {args.wallets} --days {args.days}: {time.monotonic() - started:.1f} s")
    if not BalanceSnapshot.objects.filter(period="daily").exists():
        now = timezone.now()
        for period, since in [
            ("daily", now - timedelta(days=args.days)),
            ("weekly", now - timedelta(days=args.days)),
            ("monthly", now - timedelta(days=args.days)),
            ("hourly", now - timedelta(days=7)),
        ]:
            started = time.monotonic()
            result = backfill_snapshots(period, since, now)
            print(
                f"backfill {period}: {len(result.boundaries)} boundaries, {result.rows:,} rows "
                f"in {time.monotonic() - started:.1f} s"
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    user = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("bench", "", "bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    rows = BalanceSnapshot.objects.count()
    wallets = Wallet.objects.count()
    daily = BalanceSnapshot.objects.filter(period="daily").values("as_of").distinct().count()
    print(
        f"fleet: {wallets:,} wallets, {rows:,} snapshot rows, {daily} daily boundaries, "
        f"now {floor_boundary('hourly', timezone.now()):%Y-%m-%d %H:%M}Z"
    )

    def timed(url):
        connection.queries_log.clear()  # a full log (the backfill's, under DEBUG) would count nothing
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, (url, response.status_code)
        return elapsed * 1000, len(queries)

    step = max(1, wallets // args.samples)
    ids = list(Wallet.objects.order_by("pk").values_list("pk", flat=True)[::step][: args.samples])
    timed(reverse("admin:bagtracker_wallet_portfolio", args=[ids[0]]))  # warm-up: templates, connection
    page = [timed(reverse("admin:bagtracker_wallet_portfolio", args=[pk])) for pk in ids]
    times = sorted(ms for ms, _ in page)
    print(
        f"wallet page ({len(ids)} wallets): median {statistics.median(times):.0f} ms, "
        f"p95 {times[int(0.95 * (len(times) - 1))]:.0f} ms, max {times[-1]:.0f} ms; "
        f"queries {min(q for _, q in page)}–{max(q for _, q in page)}"
    )
    # The charts alone (issue 14: a wallet's chart ≤ 100 ms, the overview ≤ 150 ms, p95): the
    # services the two pages call, without the request around them. A wallet's chart is what its
    # page draws: value (total and per token) and PnL, a tab per period, all four read at once.
    from snapshots.services import portfolio

    def chart_ms(read):
        started = time.perf_counter()
        read()
        return (time.perf_counter() - started) * 1000

    def summary(times):
        times = sorted(times)
        return f"median {statistics.median(times):.0f} ms, p95 {times[int(0.95 * (len(times) - 1))]:.0f} ms"

    charts = [
        chart_ms(lambda pk=pk: (portfolio.wallet_value_history(pk), portfolio.wallet_pnl_history(pk)))
        for _ in range(args.rounds)
        for pk in ids
    ]
    points = sum(len(h.as_of) for h in portfolio.wallet_value_history(ids[0]).values())
    print(f"a wallet's chart, all four periods ({len(charts)} reads, {points} points for the first): {summary(charts)}")
    fleet = [chart_ms(lambda: portfolio.portfolio_value_history("daily")) for _ in range(5 * args.rounds)]
    print(f"the overview's fleet chart, daily ({len(fleet)} reads): {summary(fleet)}")
    overview = [timed(reverse("admin:overview")) for _ in range(5)]
    times = sorted(ms for ms, _ in overview)
    print(
        f"overview (5 loads): median {statistics.median(times):.0f} ms, max {times[-1]:.0f} ms; "
        f"queries {overview[0][1]}"
    )


if __name__ == "__main__":
    main()
