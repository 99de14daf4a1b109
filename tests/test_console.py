"""The admin as the operator's console: a wallet's value chart and positions, the overview with job
health, and the operator actions behind a confirmation page (queued on the real ORM broker)."""

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule, Task

from snapshots import tasks
from snapshots.models import BalanceSnapshot
from snapshots.services import portfolio
from snapshots.services.scope import WalletScope
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc
from tests.jobs_support import queued_payloads


def portfolio_url(wallet):
    return reverse("admin:bagtracker_wallet_portfolio", args=[wallet.pk])


def queued():
    return queued_payloads()


def chart_series(response, period):
    return next(p for p in response.context["chart"]["periods"] if p["period"] == period)


@pytest.fixture
def usdc(make_token):
    return make_token("USDC", decimals=6, contract_address="0xa0b8")


@pytest.fixture
def history(wallet, token, usdc, make_tx, make_price):
    """ETH bought 2 @ 100 and 1 @ 160 (avg 120), 1 sold @ 200; USDC 500 @ 1; three daily snapshots."""
    make_tx("buy", "2", price="100", at=utc(2026, 3, 1, 10))
    make_tx("buy", "500", price="1", at=utc(2026, 3, 1, 11), of_token=usdc)
    make_tx("buy", "1", price="160", at=utc(2026, 3, 2, 10))
    make_tx("sell", "1", price="200", at=utc(2026, 3, 3, 10))
    make_price("150", utc(2026, 3, 2))
    make_price("1", utc(2026, 3, 2), of_token=usdc)
    for day in (2, 3, 4):
        take_snapshot("daily", utc(2026, 3, day), "scheduled")
    take_snapshot("hourly", utc(2026, 3, 4, 5), "scheduled")
    return wallet


def test_the_wallet_page_charts_the_total_and_each_token_per_period(admin_client, history, token, usdc):
    response = admin_client.get(portfolio_url(history))
    assert response.status_code == 200

    daily = chart_series(response, "daily")
    assert daily["labels"] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    total, eth, usd_coin = daily["datasets"]
    assert [d["label"] for d in daily["datasets"]] == ["Total (USD)", "ETH (ethereum)", "USDC (ethereum)"]
    # 2 ETH @ 150 + 500 USDC; then 3 ETH; then 2 ETH (one sold on the 3rd).
    assert eth["data"] == [300.0, 450.0, 300.0]
    assert usd_coin["data"] == [500.0, 500.0, 500.0]
    assert total["data"] == [800.0, 950.0, 800.0]
    assert len(chart_series(response, "hourly")["labels"]) == 1
    assert chart_series(response, "weekly")["labels"] == []
    assert response.context["chart"]["default"] == "daily"
    page = response.content.decode()
    assert 'id="wallet-value-chart-data"' in page and "chart.umd.min.js" in page


def test_the_wallet_history_is_summed_in_sql_with_gaps_where_a_token_was_not_held(wallet, token, usdc, make_tx):
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1))
    make_tx("buy", "5", price="1", at=utc(2026, 3, 2, 12), of_token=usdc)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    take_snapshot("daily", utc(2026, 3, 3), "scheduled")

    daily = portfolio.wallet_value_history(wallet.pk)["daily"]
    assert daily.total == [Decimal("10"), Decimal("15")]
    assert [(t.symbol, t.values) for t in daily.tokens] == [
        ("ETH", [Decimal("10"), Decimal("10")]),
        ("USDC", [None, Decimal("5")]),
    ]


def test_each_period_keeps_only_its_latest_points(wallet, make_tx):
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1))
    for day in range(2, 8):
        take_snapshot("daily", utc(2026, 3, day), "scheduled")
    daily = portfolio.wallet_value_history(wallet.pk, max_points=4)["daily"]
    assert [t.day for t in daily.as_of] == [4, 5, 6, 7]


def test_positions_carry_average_buy_price_realized_and_unrealized_pnl_at_the_current_price(history, token, usdc):
    positions = portfolio.wallet_positions(history.pk, at=utc(2026, 3, 5))
    eth, usd_coin = positions.positions
    assert (eth.symbol, eth.amount, eth.avg_buy_price_usd) == ("ETH", Decimal("2"), Decimal("120"))
    assert eth.realized_pnl_usd == Decimal("80")  # (200 − 120) × 1
    assert (eth.price_usd, eth.price_source) == (Decimal("150"), "price")
    assert eth.value_usd == Decimal("300")
    assert eth.unrealized_pnl_usd == Decimal("60")  # 2 × 150 − 2 × 120
    assert usd_coin.unrealized_pnl_usd == Decimal("0")
    assert positions.value_usd == Decimal("800") and positions.unrealized_pnl_usd == Decimal("60")


def test_without_a_price_row_the_latest_priced_trade_prices_a_position(wallet, token, make_tx, make_wallet):
    make_tx("buy", "4", price="10", at=utc(2026, 3, 1))
    make_tx("buy", "1", price="12", at=utc(2026, 3, 2), on_wallet=make_wallet())  # any wallet's trade counts
    make_tx("buy", "1", price="99", at=utc(2026, 3, 9), on_wallet=make_wallet())  # after the instant: not yet

    [eth] = portfolio.wallet_positions(wallet.pk, at=utc(2026, 3, 5)).positions
    assert (eth.price_usd, eth.price_source, eth.price_as_of) == (Decimal("12"), "transaction", utc(2026, 3, 2))
    assert eth.unrealized_pnl_usd == Decimal("8")  # 4 × 12 − 4 × 10


def test_a_position_without_any_price_has_no_value_and_is_named_incomplete(wallet, make_tx):
    make_tx("transfer_in", "3", at=utc(2026, 3, 1))
    positions = portfolio.wallet_positions(wallet.pk)
    [eth] = positions.positions
    assert eth.price_usd is None and eth.value_usd is None and eth.unrealized_pnl_usd is None
    assert positions.incomplete


def test_the_wallet_page_shows_positions_and_links_from_the_wallet_admin(admin_client, history):
    page = admin_client.get(portfolio_url(history)).content.decode()
    assert 'data-token="ETH"' in page and "$80.00" in page and "$60.00" in page and "120" in page
    assert portfolio_url(history) in admin_client.get(reverse("admin:bagtracker_wallet_changelist")).content.decode()
    change = admin_client.get(reverse("admin:bagtracker_wallet_change", args=[history.pk])).content.decode()
    assert portfolio_url(history) in change and reverse("admin:bagtracker_wallet_backfill", args=[history.pk]) in change


def test_an_unknown_wallet_is_a_404(admin_client, db):
    assert admin_client.get(reverse("admin:bagtracker_wallet_portfolio", args=[999999])).status_code == 404


def test_the_wallet_page_needs_a_staff_login(client, history):
    response = client.get(portfolio_url(history))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def _many_snapshots(wallet, make_token, make_tx, tokens, days, first=0):
    symbols = [make_token(f"T{i}", contract_address=f"0x{i:04x}") for i in range(first, first + tokens)]
    for t in symbols:
        make_tx("buy", "1", price="2", at=utc(2026, 1, 1), of_token=t)
    for day in range(days):
        take_snapshot("daily", utc(2026, 1, 2) + timedelta(days=day), "scheduled")


def test_the_wallet_page_query_count_does_not_grow_with_snapshots_or_tokens(
    admin_client, wallet, make_token, make_tx, django_assert_max_num_queries
):
    _many_snapshots(wallet, make_token, make_tx, tokens=1, days=2)
    with CaptureQueriesContext(connection) as small:
        admin_client.get(portfolio_url(wallet))

    _many_snapshots(wallet, make_token, make_tx, tokens=6, days=40, first=1)
    assert BalanceSnapshot.objects.filter(wallet=wallet).count() == 7 * 40
    with django_assert_max_num_queries(len(small)):
        response = admin_client.get(portfolio_url(wallet))
    assert len(chart_series(response, "daily")["labels"]) == 40
    assert len(chart_series(response, "daily")["datasets"]) == 1 + 7
    assert len(small) <= 12  # session, user, wallet, history, positions, and the admin's own


# --- Overview --------------------------------------------------------------------------------------


def test_the_overview_is_linked_from_the_index(admin_client, db):
    assert reverse("admin:overview") in admin_client.get(reverse("admin:index")).content.decode()


def test_the_overview_charts_active_wallets_at_complete_boundaries(admin_client, wallet, make_wallet, make_tx):
    other, retired = make_wallet(), make_wallet()
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1))
    make_tx("buy", "2", price="10", at=utc(2026, 3, 1), on_wallet=other)
    make_tx("buy", "4", price="10", at=utc(2026, 3, 1), on_wallet=retired)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    take_snapshot("daily", utc(2026, 3, 3), "scheduled")
    take_snapshot("daily", utc(2026, 3, 4), "backfill", WalletScope(wallets=[wallet.pk]))  # one wallet: not a total
    retired.is_active = False
    retired.save()

    response = admin_client.get(reverse("admin:overview"))
    daily = chart_series(response, "daily")
    assert daily["labels"] == ["2026-03-02", "2026-03-03"]
    assert daily["datasets"][0]["data"] == [30.0, 30.0]
    assert len(daily["datasets"]) == 1
    assert chart_series(response, "hourly")["loaded"] is False  # one period per page: a tab link loads it
    assert '<a href="?period=hourly"' in response.content.decode()


def test_the_overview_loads_the_period_asked_for(admin_client, wallet, make_tx):
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1))
    take_snapshot("hourly", utc(2026, 3, 2, 5), "scheduled")
    response = admin_client.get(reverse("admin:overview"), {"period": "hourly"})
    assert response.context["chart"]["default"] == "hourly"
    assert chart_series(response, "hourly")["labels"] == ["2026-03-02 05:00"]
    assert admin_client.get(reverse("admin:overview"), {"period": "yearly"}).context["chart"]["default"] == "daily"


def test_the_overview_shows_each_jobs_last_run_next_run_failure_and_staleness(admin_client, wallet, make_tx):
    now = timezone.now()
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1))
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")  # long ago: daily is stale
    Task.objects.create(
        id="a" * 32,
        name="ok",
        func="snapshots.tasks.create_daily_snapshots",
        started=now,
        stopped=now,
        success=True,
        result={"status": "success", "rows": 1},
    )
    Task.objects.create(
        id="b" * 32,
        name="broken",
        func="snapshots.tasks.cleanup_old_snapshots",
        started=now,
        stopped=now,
        success=False,
        result="Traceback…\nOperationalError: server closed",
    )
    Schedule.objects.filter(name="weekly_balance_snapshots").update(next_run=None)

    response = admin_client.get(reverse("admin:overview"))
    page = response.content.decode()
    rows = {row["job"].job: row for row in response.context["jobs"]}
    assert rows["create_daily_snapshots"]["freshness"].stale and "stale-warning" in page
    assert (
        rows["create_daily_snapshots"]["last_run"] is not None and not rows["create_daily_snapshots"]["last_run_failed"]
    )
    assert rows["cleanup_old_snapshots"]["last_run_failed"] and "OperationalError: server closed" in page
    assert rows["create_weekly_snapshots"]["job"].paused
    assert rows["create_hourly_snapshots"]["job"].next_run > now - timedelta(minutes=1)
    assert "15 0 * * *" in page and 'data-job="recalculate_wallet_balances"' in page


# --- Operator actions ------------------------------------------------------------------------------


def test_recalculating_selected_wallets_asks_first_then_queues_one_job_each(admin_client, wallet, make_wallet):
    other = make_wallet()
    changelist = reverse("admin:bagtracker_wallet_changelist")
    selection = {"action": "recalculate_selected_wallets", "_selected_action": [wallet.pk, other.pk]}

    confirm = admin_client.post(changelist, selection)
    assert confirm.status_code == 200 and "Are you sure?" in confirm.content.decode()
    assert queued() == []

    response = admin_client.post(changelist, {**selection, "confirmed": "yes", "create_snapshots": "on"}, follow=True)
    jobs = queued()
    assert [(j["func"], j["args"], j["kwargs"]) for j in jobs] == [
        ("snapshots.tasks.recalculate_wallet_balances", (wallet.pk,), {"create_snapshots": True}),
        ("snapshots.tasks.recalculate_wallet_balances", (other.pk,), {"create_snapshots": True}),
    ]
    message = next(str(m) for m in response.context["messages"])
    assert all(j["id"] in message for j in jobs) and "2 wallets" in message


def _backfill(admin_client, wallet, **data):
    return admin_client.post(reverse("admin:bagtracker_wallet_backfill", args=[wallet.pk]), data, follow=True)


def test_a_backfill_is_confirmed_with_its_boundaries_then_queued_and_the_job_writes_the_rows(
    admin_client, wallet, make_tx, settings
):
    settings.BALANCE_HISTORY_RETENTION_DAYS = 0  # kept forever: 2026-03 is inside retention
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1))
    form = {"period": "daily", "since": "2026-03-02", "until": "2026-03-05"}

    confirm = _backfill(admin_client, wallet, **form)
    assert "4 daily boundaries" in confirm.content.decode() and queued() == []

    response = _backfill(admin_client, wallet, **form, confirmed="yes")
    [job] = queued()
    assert job["func"] == "snapshots.tasks.backfill_wallet_snapshots"
    assert job["args"] == (wallet.pk, "daily", "2026-03-02T00:00:00+00:00", "2026-03-05T00:00:00+00:00")
    assert job["id"] in next(str(m) for m in response.context["messages"])
    assert response.redirect_chain[-1][0] == portfolio_url(wallet)

    result = tasks.backfill_wallet_snapshots(*job["args"])  # what the cluster runs
    assert result["status"] == "success" and result["boundaries"] == 4
    assert BalanceSnapshot.objects.filter(wallet=wallet, period="daily", source="backfill").count() == 4


def test_a_backfill_from_year_1_is_clamped_and_the_confirmation_says_so(admin_client, wallet, make_tx):
    make_tx("buy", "1", price="10", at=utc(2026, 3, 1))
    page = _backfill(admin_client, wallet, period="hourly", since="0001-01-01").content.decode()
    assert "Range clamped: since 2009-01-03T00:00Z is before the first confirmed transaction of wallet" in page
    assert "is older than hourly retention (7 days, BALANCE_HOURLY_RETENTION_DAYS)" in page
    assert re.search(r"(168|169) hourly boundaries", page) and queued() == []


@pytest.mark.parametrize(
    "form, error",
    [
        ({"period": "daily", "since": "2026-03-05", "until": "2026-03-02"}, "is after until"),
        ({"period": "daily", "since": "2999-01-01"}, "is in the future"),
        ({"period": "yearly", "since": "2026-03-01"}, "Select a valid choice"),
        ({"period": "daily", "since": "March"}, "Enter a valid date"),
    ],
)
def test_a_bad_backfill_range_is_refused_on_the_form(admin_client, wallet, form, error):
    page = _backfill(admin_client, wallet, **form, confirmed="yes").content.decode()
    assert error in page and queued() == []


def test_chart_js_is_served_from_the_projects_own_static_files(admin_client, history):
    from django.contrib.staticfiles import finders

    vendored = finders.find("snapshots/vendor/chartjs/chart.umd.min.js")
    assert vendored and "Chart.js v4" in Path(vendored).read_text()[:300]
    page = admin_client.get(portfolio_url(history)).content.decode()
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', page)
    assert "/static/snapshots/vendor/chartjs/chart.umd.min.js" in scripts
    assert not [src for src in scripts if src.startswith(("http:", "https:", "//"))]  # no CDN


# --- What the numbers mean: cost basis, PnL, completeness, formatting ------------------------------


def test_positions_carry_cost_basis_average_cost_and_unrealized_pnl_over_the_cost_basis(wallet, make_tx, make_price):
    make_tx("buy", "1", price="100", at=utc(2026, 3, 1, 1))
    make_tx("sell", "1", price="150", at=utc(2026, 3, 1, 2))
    make_tx("buy", "1", price="300", at=utc(2026, 3, 1, 3))
    make_price("250", utc(2026, 3, 2))
    positions = portfolio.wallet_positions(wallet.pk, at=utc(2026, 3, 5))
    [eth] = positions.positions
    assert (eth.realized_pnl_usd, eth.cost_basis_usd, eth.avg_cost_usd) == (Decimal(50), Decimal(300), Decimal(300))
    assert eth.unrealized_pnl_usd == Decimal(-50)  # round(1 × 250) − 300, not 250 − the lifetime buy average 200
    assert eth.avg_buy_price_usd == Decimal(200)  # the trade statistic, kept
    assert positions.cost_basis_complete and positions.realized_pnl_complete


def test_the_wallet_page_marks_an_incomplete_cost_basis_and_realized_pnl(admin_client, wallet, make_tx, make_price):
    make_tx("transfer_in", "2", at=utc(2026, 3, 1, 1))  # unknown cost
    make_tx("sell", "1", at=utc(2026, 3, 1, 2))  # no price: realizes nothing
    make_price("10", utc(2026, 3, 2))
    [eth] = portfolio.wallet_positions(wallet.pk).positions
    assert not eth.cost_basis_complete and not eth.realized_pnl_complete
    page = admin_client.get(portfolio_url(wallet)).content.decode()
    assert page.count(">cost basis incomplete</span>") == 3  # the summary's cost basis and unrealized, the row
    assert page.count(">realized PnL incomplete</span>") == 2  # the summary and the row


def test_prices_and_averages_are_rounded_for_people_with_the_exact_value_on_hover(
    admin_client, wallet, make_tx, make_price
):
    make_tx("buy", "1234.5", price="3150.104", at=utc(2026, 3, 1, 1))
    make_price("0.000012345678", utc(2026, 3, 2))
    page = admin_client.get(portfolio_url(wallet)).content.decode()
    assert '<span title="3150.104">3,150.10</span>' in page  # average cost
    assert ">0.0000123457</span>" in page and ": 0.000012345678" in page  # price now; exact in its tooltip
    assert 'title="1234.5">1,234.5</td>' in page  # the amount: exact, with separators
    assert "3150.104000000000000000" not in page


@pytest.mark.parametrize(
    "value, shown",
    [
        ("3150.104", "3,150.10"),
        ("120.000000000000000000", "120.00"),
        ("1.23456789", "1.23457"),
        ("0.000012345678", "0.0000123457"),
        ("1234567.891", "1,234,567.89"),
        ("-42.5", "−42.50"),
        ("0.000000000000000001", "0.000000000000000001"),
        ("0", "0.00"),
    ],
)
def test_human_numbers_keep_six_significant_digits_and_at_least_cents(value, shown):
    from snapshots.templatetags.console import human_number

    assert human_number(Decimal(value)) == shown


def test_the_realized_pnl_line_reads_the_wallet_summaries_and_does_not_drop_when_sold_out(
    admin_client, wallet, make_tx
):
    make_tx("buy", "1", price="100", at=utc(2026, 3, 1, 10))
    make_tx("sell", "1", price="150", at=utc(2026, 3, 2, 10))  # sold out: no row from the 3rd on
    for day in (2, 3, 4):
        take_snapshot("daily", utc(2026, 3, day), "scheduled")
    assert not BalanceSnapshot.objects.filter(wallet=wallet, as_of__gte=utc(2026, 3, 3)).exists()

    daily = portfolio.wallet_pnl_history(wallet.pk)["daily"]
    assert daily.realized_pnl == [Decimal(0), Decimal(50), Decimal(50)]
    assert daily.cost_basis == [Decimal(100), Decimal(0), Decimal(0)]

    response = admin_client.get(portfolio_url(wallet))
    pnl = next(p for p in response.context["pnl_chart"]["periods"] if p["period"] == "daily")
    assert pnl["labels"] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert pnl["datasets"][0]["label"] == "Realized PnL (USD)" and pnl["datasets"][0]["data"] == [0.0, 50.0, 50.0]
    assert 'id="wallet-pnl-chart-data"' in response.content.decode()
