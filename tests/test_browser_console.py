"""The console in a real browser: Playwright for Python driving Debian's headless Chromium
(apt packages chromium and chromium-driver; `playwright install` is never needed) against
pytest-django's live server, and a real `manage.py qcluster` (ORM broker) for the jobs.

Without Chromium these tests skip, unless BAGTRACKER_REQUIRE_BROWSER=1 (CI), where they fail.
Screenshots go to test-artifacts/ (gitignored).
"""

import re

import pytest
from django_q.models import Task

from snapshots.models import SnapshotRun
from snapshots.periods import floor_boundary
from snapshots.services.snapshots import take_snapshot
from tests.browser_support import ARTIFACTS, log_in
from tests.conftest import utc
from tests.jobs_support import process_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def points(page, canvas_id):
    return page.evaluate(
        "id => Chart.getChart(document.getElementById(id)).data.datasets.map(d => d.data.length)", canvas_id
    )


def test_an_operator_opens_a_wallet_and_sees_its_value_chart(page, live_server, wallet, make_token, make_tx):
    usdc = make_token("USDC", decimals=6, contract_address="0xa0b8")
    make_tx("buy", "2", price="100", at=utc(2026, 3, 1, 10))
    make_tx("buy", "500", price="1", at=utc(2026, 3, 1, 11), of_token=usdc)
    for day in range(2, 7):
        take_snapshot("daily", utc(2026, 3, day), "scheduled")
    take_snapshot("hourly", utc(2026, 3, 6, 5), "scheduled")
    take_snapshot("hourly", utc(2026, 3, 6, 6), "scheduled")

    log_in(page, live_server)
    page.click("#console-module >> text=Wallets")
    page.click(f"#result_list tr:has-text('{wallet.address}') >> text=chart")
    page.wait_for_selector("[data-console-chart][data-ready=daily]")

    assert page.title().startswith(f"Portfolio of wallet {wallet}")
    assert points(page, "wallet-value-chart") == [5, 5, 5]  # the total, ETH, USDC: five days each
    labels = page.evaluate(
        "Chart.getChart(document.getElementById('wallet-value-chart')).data.datasets.map(d => d.label)"
    )
    assert labels == ["Total (USD)", "ETH (ethereum)", "USDC (ethereum)"]
    assert page.inner_text("#positions tr[data-token=ETH]").split("\t")[1] == "2"
    page.screenshot(path=ARTIFACTS / "wallet-portfolio-daily.png", full_page=True)

    page.click("[data-period=hourly]")
    page.wait_for_selector("[data-console-chart][data-ready=hourly]")
    assert points(page, "wallet-value-chart") == [2, 2, 2]
    page.click("[data-period=weekly]")
    assert page.is_visible("text=No snapshots for this period yet.")


def test_an_operator_runs_a_schedule_from_the_admin_and_sees_its_result(
    page,
    live_server,
    qcluster,
    wallet,
    make_tx,
):
    make_tx("buy", "5", price="3", at=utc(2026, 1, 1))
    qcluster(process_env())  # the real cluster, on the live server's database and Redis

    log_in(page, live_server)
    page.click("#console-module >> text=Schedules")
    page.check("#result_list tr:has-text('hourly_balance_snapshots') input.action-select")
    page.select_option("select[name=action]", "run_now")
    page.click("button[name=index]")

    page.wait_for_selector("text=Queue the jobs of these schedules now?")
    page.screenshot(path=ARTIFACTS / "run-now-confirmation.png", full_page=True)
    page.click("input[value='Yes, run them now']")
    message = page.inner_text("ul.messagelist li.success")
    task_id = re.search(r"hourly_balance_snapshots \(([0-9a-f]{32})\)", message).group(1)

    def hourly_row_shows_success():
        page.goto(f"{live_server.url}/admin/overview/")
        row = page.inner_text("#job-health tr[data-job=create_hourly_snapshots]")
        return row if "success" in row else None

    row = wait_until(hourly_row_shows_success, timeout=60, interval=1, what=f"task {task_id} to finish")
    assert "1 rows" in row and "ok" in row  # one balance snapshotted; the hourly period is fresh
    run = SnapshotRun.objects.get(period="hourly", status="completed")
    assert run.as_of == floor_boundary("hourly", run.started_at) and run.rows == 1
    page.screenshot(path=ARTIFACTS / "overview-after-run-now.png", full_page=True)

    page.goto(f"{live_server.url}/admin/django_q/success/{task_id}/change/")
    assert "create_hourly_snapshots" in page.content()

    # The schedule list shows the run it started: its time (UTC) linking to the result, and success.
    page.goto(f"{live_server.url}/admin/django_q/schedule/")
    row = page.locator("#result_list tr:has-text('hourly_balance_snapshots')")
    stopped = Task.objects.get(id=task_id).stopped
    assert row.locator("td.field-last_run_utc a").inner_text() == stopped.strftime("%Y-%m-%d %H:%M")
    assert row.locator("td.field-last_run_success img").get_attribute("alt") == "True"
    assert "Last run (UTC)" in page.text_content("#result_list thead")
    page.screenshot(path=ARTIFACTS / "schedules-after-run-now.png", full_page=True)


# --- Layout: nothing wider than the window at 1280 px ----------------------------------------------

# The console's own pages show every column at 1280 px; Django's generic lists of derived rows
# (18-decimal amounts in many columns) may scroll inside their table box, never widen the page.
ALL_COLUMNS_VISIBLE = {
    "/admin/overview/",
    "/admin/overview/?period=hourly",
    "/admin/bagtracker/wallet/{wallet}/portfolio/",
    "/admin/django_q/schedule/",
}
CONSOLE_PAGES = [
    "/admin/",
    "/admin/overview/",
    "/admin/overview/?period=hourly",
    "/admin/bagtracker/wallet/",
    "/admin/bagtracker/wallet/{wallet}/portfolio/",
    "/admin/bagtracker/wallet/{wallet}/change/",
    "/admin/bagtracker/transaction/",
    "/admin/django_q/schedule/",
    "/admin/django_q/success/",
    "/admin/django_q/failure/",
    "/admin/snapshots/balance/",
    "/admin/snapshots/balancesnapshot/",
    "/admin/snapshots/snapshotrun/",
]


def overflow(page):
    """The page's width, and the widest table box: a table that scrolls inside its box hides columns too."""
    return page.evaluate(
        """() => {
        const boxes = [...document.querySelectorAll('.results')];
        const hidden = Math.max(0, ...boxes.map(b => b.scrollWidth - b.clientWidth));
        return {scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth, hidden};
        }"""
    )


def widest(page):
    """The outermost elements that reach past the window's right edge, to say what to fix."""
    return page.evaluate(
        """() => {
        const width = document.documentElement.clientWidth;
        const out = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 1);
        const name = e => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`;
        return out.filter(e => !out.includes(e.parentElement)).slice(0, 5)
            .map(e => `${name(e)} right=${Math.round(e.getBoundingClientRect().right)}`);
        }"""
    )


def test_no_console_page_is_wider_than_1280_px(page, live_server, make_wallet, make_token, make_tx):
    # Long values where they hurt: a Solana-length address, a many-token wallet, a long error.
    wallet = make_wallet(address="7" * 44, name="a wallet with a rather long descriptive name for the list")
    for symbol in ("WETH", "USDC", "WBTC", "LONGTOKENSYMBOL"):
        token = make_token(symbol, contract_address=f"0x{symbol.encode().hex():0>40}")
        make_tx(
            "buy",
            "123456.123456789012345678",
            price="98765.4321",
            at=utc(2026, 3, 1, 10),
            of_token=token,
            on_wallet=wallet,
        )
    for day in range(2, 5):
        take_snapshot("daily", utc(2026, 3, day), "scheduled")
    take_snapshot("hourly", utc(2026, 3, 4, 5), "scheduled")
    Task.objects.create(
        id="f" * 32,
        name="failed-once",
        func="snapshots.tasks.create_hourly_snapshots",
        success=False,
        started=utc(2026, 3, 4, 5, 5),
        stopped=utc(2026, 3, 4, 5, 6),
        result="Traceback (most recent call last):\n" + "x" * 400 + "\nOperationalError: " + "y" * 300,
    )

    log_in(page, live_server)
    wide = {}
    for path in CONSOLE_PAGES:
        page.goto(live_server.url + path.format(wallet=wallet.pk))
        page.wait_for_load_state("load")
        if page.query_selector("[data-console-chart]"):
            page.wait_for_selector("[data-console-chart][data-ready]")  # drawn at its final size
        size = overflow(page)
        if size["scroll"] > size["client"] or (path in ALL_COLUMNS_VISIBLE and size["hidden"] > 0):
            wide[path] = {**size, "widest": widest(page)}
            page.screenshot(path=ARTIFACTS / f"too-wide-{path.strip('/').replace('/', '-')}.png", full_page=True)
    assert wide == {}, "\n".join(f"{path}: {size}" for path, size in wide.items())
    page.goto(f"{live_server.url}/admin/overview/")
    page.wait_for_selector("[data-console-chart][data-ready]")
    page.screenshot(path=ARTIFACTS / "overview-1280.png", full_page=True)
