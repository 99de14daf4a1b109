"""The Content-Security-Policy (config/settings/base.py) in a real browser: every console page and
the admin's pages with their widgets (calendar, autocomplete, filter boxes, actions) work under it,
and Chromium reports no violation. The `page` fixture fails the test on any violation (the
securitypolicyviolation event or Chromium's console message) or JavaScript error."""

import pytest
from django.contrib.auth.models import Group, User
from django_q.models import Schedule

from snapshots.services.snapshots import take_snapshot
from tests.browser_support import ARTIFACTS, log_in
from tests.conftest import utc

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/admin/",
    "/admin/overview/",
    "/admin/overview/?period=hourly",
    "/admin/bagtracker/wallet/",
    "/admin/bagtracker/wallet/{wallet}/change/",
    "/admin/bagtracker/wallet/{wallet}/portfolio/",
    "/admin/bagtracker/wallet/{wallet}/backfill/",
    "/admin/bagtracker/transaction/",
    "/admin/bagtracker/transaction/?kind__exact=buy",
    "/admin/bagtracker/price/",
    "/admin/bagtracker/token/",
    "/admin/bagtracker/chain/",
    "/admin/snapshots/balance/",
    "/admin/snapshots/balancesnapshot/?wallet={wallet}",
    "/admin/snapshots/snapshotrun/",
    "/admin/django_q/schedule/",
    "/admin/django_q/schedule/{schedule}/change/",
    "/admin/django_q/schedule/add/",
    "/admin/django_q/success/",
    "/admin/django_q/failure/",
    "/admin/auth/user/",
    "/admin/auth/user/{user}/change/",
    "/admin/auth/group/add/",
    "/admin/password_change/",
]


def test_every_console_and_admin_page_works_under_the_policy(page, live_server, wallet, make_tx):
    make_tx("buy", "2", price="100", at=utc(2026, 3, 1, 10))
    for day in range(2, 5):
        take_snapshot("daily", utc(2026, 3, day), "scheduled")
    Group.objects.create(name="operators")

    response = page.goto(f"{live_server.url}/admin/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    log_in(page, live_server)
    ids = {
        "wallet": wallet.pk,
        "schedule": Schedule.objects.get(name="hourly_balance_snapshots").pk,
        "user": User.objects.get(username="operator").pk,
    }
    for path in PAGES:
        page.goto(live_server.url + path.format(**ids))
        page.wait_for_load_state("networkidle")
        if page.query_selector("[data-console-chart]"):
            page.wait_for_selector("[data-console-chart][data-ready]")  # console.js and Chart.js ran

    # The widgets that script the page: a transaction's autocomplete and calendar, a group's
    # permission picker, and an action's confirmation.
    page.goto(f"{live_server.url}/admin/bagtracker/transaction/add/")
    page.click(".field-wallet .select2-selection")
    page.wait_for_selector(f".select2-results__option:has-text('{wallet}')")  # fetched by autocomplete
    page.keyboard.press("Escape")
    page.click(".field-timestamp .datetimeshortcuts a[id^=calendarlink]")
    page.wait_for_selector(".calendarbox", state="visible")
    page.goto(f"{live_server.url}/admin/auth/group/add/")
    page.wait_for_selector("#id_permissions_from")  # SelectFilter2 built its two boxes
    page.goto(f"{live_server.url}/admin/django_q/schedule/")
    page.check("#result_list tr:has-text('hourly_balance_snapshots') input.action-select")
    page.select_option("select[name=action]", "pause")
    page.click("button[name=index]")
    page.wait_for_selector("text=Pause these schedules?")
    page.goto(f"{live_server.url}/admin/bagtracker/wallet/{wallet.pk}/backfill/")
    page.select_option("select[name=period]", "daily")
    page.fill("input[name=since]", "2026-03-02")
    page.fill("input[name=until]", "2026-03-04")
    page.click("input[type=submit]")
    page.wait_for_selector("text=3")  # the confirmation names the boundaries
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "csp-backfill-confirmation.png", full_page=True)
