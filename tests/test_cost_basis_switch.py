"""Switching BALANCE_COST_BASIS (docs/ledger.md): the numbers computed with the other method are counted
by jobs_status, the Balance admin and /health's details for staff, until recalculated."""

import contextlib
import io
import json
from datetime import timedelta

from django.core.management import CommandError, call_command
from django.utils import timezone

from snapshots.models import Balance, BalanceSnapshot
from snapshots.services.ledger import recalculate_all_wallets
from snapshots.services.monitoring import cost_basis_report
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc


def jobs_status_json():
    out = io.StringIO()
    with contextlib.suppress(CommandError):  # it also exits 1 when snapshots are stale
        call_command("jobs_status", "--json", stdout=out)
    return json.loads(out.getvalue())["cost_basis"]


def test_a_switch_is_counted_until_everything_is_recalculated(settings, make_tx):
    yesterday = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    make_tx("buy", "1", price="100", at=yesterday - timedelta(days=1))
    take_snapshot("daily", yesterday, "manual")  # inside retention: rebuilt by --snapshots
    assert not cost_basis_report().switched

    settings.BALANCE_COST_BASIS = "fifo"
    report = cost_basis_report()
    assert (report.balances, report.snapshot_rows, report.summaries) == (1, 1, 1)
    assert "carry another method until `manage.py recalculate --all --snapshots`" in report.describe()
    assert jobs_status_json() == {
        "method": "fifo",
        "balances_with_another_method": 1,
        "snapshot_rows_with_another_method": 1,
        "summaries_with_another_method": 1,
    }

    call_command("recalculate", "--all", "--snapshots", stdout=io.StringIO(), stderr=io.StringIO())
    assert not cost_basis_report().switched
    assert Balance.objects.get().cost_basis_method == "fifo"
    assert BalanceSnapshot.objects.get().cost_basis_method == "fifo"


def test_rows_from_before_the_upgrade_count_as_another_method(make_tx):
    make_tx("buy", "1", price="100", at=utc(2026, 1, 1))
    Balance.objects.update(cost_basis_method="")  # as the migration leaves an existing balance
    assert cost_basis_report().balances == 1
    recalculate_all_wallets()
    assert cost_basis_report().balances == 0


def test_health_tells_staff_only(settings, client, admin_user, make_tx):
    make_tx("buy", "1", price="100", at=utc(2026, 1, 1))
    settings.BALANCE_COST_BASIS = "fifo"
    anonymous = client.get("/health")
    assert "details" not in anonymous.json()
    client.force_login(admin_user)
    staff = client.get("/health")
    assert staff.status_code == anonymous.status_code  # the status itself is unaffected
    assert staff.json()["details"]["cost_basis"]["balances_with_another_method"] == 1


def test_the_balance_admin_warns(settings, client, admin_user, make_tx):
    make_tx("buy", "1", price="100", at=utc(2026, 1, 1))
    settings.BALANCE_COST_BASIS = "fifo"
    client.force_login(admin_user)
    page = client.get("/admin/snapshots/balance/")
    assert page.status_code == 200
    assert "carry another method" in page.content.decode()
