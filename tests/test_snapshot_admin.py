"""The snapshot admin: read-only lists, filterable by period, wallet, token, source and as_of range."""

import pytest
from django.contrib.auth.models import User

from snapshots.models import BalanceSnapshot
from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc


@pytest.fixture
def staff_client(client, db):
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def two_days(make_tx, make_wallet, wallet):
    other = make_wallet(address="0xfeed")
    make_tx("buy", "1", at=utc(2026, 3, 1))
    make_tx("buy", "2", at=utc(2026, 3, 1), on_wallet=other)
    take_snapshot("daily", utc(2026, 3, 2), "scheduled")
    take_snapshot("daily", utc(2026, 3, 3), "backfill")
    return other


def listed(response):
    return len(response.context["cl"].result_list)


def test_the_snapshot_list_filters_by_wallet_period_source_and_as_of_range(staff_client, two_days):
    url = "/admin/snapshots/balancesnapshot/"
    assert listed(staff_client.get(url)) == 4
    assert listed(staff_client.get(url, {"wallet": two_days.id})) == 2
    assert listed(staff_client.get(url, {"period": "hourly"})) == 0
    assert listed(staff_client.get(url, {"source": "backfill"})) == 2
    assert listed(staff_client.get(url, {"as_of_from": "2026-03-03"})) == 2
    assert listed(staff_client.get(url, {"as_of_from": "2026-03-01", "as_of_until": "2026-03-02T00:00Z"})) == 2
    response = staff_client.get(url, {"wallet": two_days.id, "source": "scheduled"})
    assert listed(response) == 1 and b'name="source"' in response.content  # other filters kept by the wallet box


def test_snapshots_are_read_only(staff_client, two_days):
    snapshot = BalanceSnapshot.objects.first()
    assert staff_client.get("/admin/snapshots/balancesnapshot/add/").status_code == 403
    response = staff_client.post(f"/admin/snapshots/balancesnapshot/{snapshot.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert staff_client.get(f"/admin/snapshots/balancesnapshot/{snapshot.pk}/change/").status_code == 200


def test_the_run_list_shows_status_rows_duration_and_error(staff_client, two_days):
    response = staff_client.get("/admin/snapshots/snapshotrun/")
    assert response.status_code == 200
    assert listed(response) == 2
    assert b"Duration (s)" in response.content and b"Completed" in response.content
