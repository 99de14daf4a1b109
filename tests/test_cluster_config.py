"""Q_CLUSTER from the environment: Redis from REDIS_URL or REDIS_HOST… (local settings give the embedded
server's URL), the ORM broker only when chosen (BAGTRACKER_BROKER=orm)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import strict_networks
from config.q_cluster import q_cluster_settings
from config.sentry import init_sentry


def settings_for(**env):
    base = {"redis_url": None, "redis_host": None, "redis_port": 6379, "redis_db": 0, "redis_password": None}
    return q_cluster_settings(**{**base, **env})


def test_redis_url_selects_the_redis_broker():
    config = settings_for(redis_url="redis://cache:6379/2")
    assert config["redis"] == "redis://cache:6379/2" and "orm" not in config


def test_redis_host_port_db_password_select_the_redis_broker():
    config = settings_for(redis_host="redis", redis_port=6380, redis_db=4, redis_password="pw")
    assert config["redis"] == {"host": "redis", "port": 6380, "db": 4, "password": "pw"}


def test_the_orm_broker_is_used_only_when_chosen():
    config = settings_for(orm=True)
    assert config["orm"] == "default" and "redis" not in config
    with pytest.raises(ImproperlyConfigured, match="no broker: set REDIS_URL or REDIS_HOST"):
        settings_for()


def test_jobs_of_minutes_are_neither_killed_early_nor_delivered_twice_while_running():
    config = settings_for(orm=True)
    assert config["timeout"] >= 15 * 60
    assert config["retry"] > config["timeout"]
    assert config["max_attempts"] >= 1 and config["ack_failures"] is True
    assert config["catch_up"] is False and config["save_limit"] > 0 and config["recycle"] > 0


def test_the_metrics_allow_list_is_validated(monkeypatch):
    monkeypatch.setenv("METRICS_ALLOWED_IPS", "10.0.0.0/8, 127.0.0.1")
    assert strict_networks("METRICS_ALLOWED_IPS") == ["10.0.0.0/8", "127.0.0.1"]
    monkeypatch.setenv("METRICS_ALLOWED_IPS", "10.0.0.0/8,localhost")
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_IPS: 'localhost'"):
        strict_networks("METRICS_ALLOWED_IPS")


def test_sentry_is_off_without_a_dsn_and_a_bad_dsn_stops_start_up():
    assert init_sentry(None, "test") is False
    with pytest.raises(ImproperlyConfigured, match="SENTRY_DSN"):
        init_sentry("not a dsn", "test")


def test_sentry_starts_with_a_dsn():
    import sentry_sdk

    try:
        assert init_sentry("https://public@sentry.example.invalid/1", "test") is True
        assert sentry_sdk.get_client().is_active()
    finally:
        sentry_sdk.init()  # back to a client that sends nothing
