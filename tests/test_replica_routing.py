"""read_replica.py without a replica configured (the default): everything on the primary,
no cookie; and the router's rules, which hold whatever is configured. With a real replica:
tests/test_e2e_replica.py."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from bagtracker.models import Wallet
from config.env import strict_database_url, strict_int
from read_replica import PIN_COOKIE, ReplicaRouter, read_alias, replica_reads
from snapshots.models import BalanceSnapshot


def test_without_a_replica_reads_stay_on_the_primary():
    assert "replica" not in connections.settings
    with replica_reads() as alias:
        assert alias == read_alias() == "default"
        assert ReplicaRouter().db_for_read(BalanceSnapshot) == "default"
    assert read_alias() == "default"


def test_inside_a_replica_block_only_the_projects_data_is_routed():
    from django.contrib.sessions.models import Session

    import read_replica as replica

    router = ReplicaRouter()
    token = replica._reading.set("replica")
    try:
        assert router.db_for_read(Wallet) == router.db_for_read(BalanceSnapshot) == "replica"
        assert router.db_for_read(Session) == "default"  # a session written a moment ago is found
        assert router.db_for_write(Wallet) == "default"
    finally:
        replica._reading.reset(token)


def test_migrations_never_run_on_the_replica():
    router = ReplicaRouter()
    assert router.allow_migrate("default", "snapshots") is True
    assert router.allow_migrate("replica", "snapshots") is False
    assert router.allow_migrate("replica", "django_q") is False


def test_a_save_sets_no_cookie_without_a_replica(admin_client, wallet):
    response = admin_client.post(
        f"/admin/bagtracker/wallet/{wallet.pk}/change/",
        {"chain": wallet.chain_id, "address": wallet.address, "name": "x", "is_active": "on", "_save": "Save"},
    )
    assert response.status_code == 302
    assert PIN_COOKIE not in response.cookies


def test_the_replica_settings_are_checked(monkeypatch):
    monkeypatch.setenv("DATABASE_REPLICA_URL", "mysql://user@replica/bagtracker")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_URL must point at PostgreSQL"):
        strict_database_url("DATABASE_REPLICA_URL")
    monkeypatch.setenv("DATABASE_REPLICA_MAX_LAG_SECONDS", "five")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_MAX_LAG_SECONDS='five' is not an integer"):
        strict_int("DATABASE_REPLICA_MAX_LAG_SECONDS", 5)
