"""What the browser tests share: where Chromium is, how it is started, where screenshots go, and how
an operator logs in. The `browser` and `page` fixtures are in tests/conftest.py.

Without Chromium the browser tests skip, unless BAGTRACKER_REQUIRE_BROWSER=1 (CI), where they fail.
"""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

CHROMIUM = os.environ.get("BAGTRACKER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PASSWORD = "browser-test-pw"


def unavailable(reason):
    if os.environ.get("BAGTRACKER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} and BAGTRACKER_REQUIRE_BROWSER=1")
    pytest.skip(reason)


def log_in(page, live_server):
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#console-module")
