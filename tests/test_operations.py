"""/health and /metrics: what a load balancer, a container health check and Prometheus see."""

from datetime import UTC

import pytest
from django.test import override_settings
from django_q.conf import Conf
from django_q.models import Success
from prometheus_client.parser import text_string_to_metric_families


@pytest.mark.django_db
def test_health_is_ok_when_database_and_broker_answer(admin_client):
    response = admin_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


@pytest.mark.django_db
def test_health_is_503_when_the_broker_is_unreachable(admin_client, monkeypatch):
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = admin_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"]["ok"] is False and "ConnectionError" in body["checks"]["broker"]["detail"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_health_checks_redis_when_it_is_the_broker(admin_client, monkeypatch, redis_url):
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    body = admin_client.get("/health?only=broker").json()
    assert list(body["checks"]) == ["broker"]
    assert body["checks"]["broker"]["detail"].startswith("Redis ")


@pytest.mark.django_db
def test_health_rejects_an_unknown_check(client):
    assert client.get("/health?only=database,cpu").status_code == 400


@pytest.mark.django_db
def test_metrics_are_not_public_by_default(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="s3cret")
def test_metrics_need_the_token(client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")


@pytest.mark.django_db
@override_settings(METRICS_ALLOWED_IPS=["10.0.0.0/8"])
def test_metrics_answer_an_allowed_network(client):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 404


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="t")
def test_metrics_report_the_last_success_duration_rows_and_failures_of_a_job(client):
    from datetime import datetime

    started = datetime(2026, 11, 29, 10, 5, 0, tzinfo=UTC)
    stopped = datetime(2026, 11, 29, 10, 5, 2, 500000, tzinfo=UTC)
    func = "snapshots.tasks.create_hourly_snapshots"
    Success.objects.create(
        id="a" * 32,
        name="one",
        func=func,
        started=started,
        stopped=stopped,
        success=True,
        result={"status": "success", "period": "hourly", "rows": 42},
    )
    Success.objects.create(
        id="b" * 32,
        name="two",
        func=func,
        started=started,
        stopped=stopped,
        success=False,
        result="Traceback ...\nValueError: boom",
    )
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    parsed = {family.name: family for family in text_string_to_metric_families(text)}

    def value(name, **labels):
        (sample,) = [s for s in parsed[name].samples if s.labels == labels]
        return sample.value

    hourly = {"task": "create_hourly_snapshots"}
    assert value("bagtracker_job_last_success_timestamp_seconds", **hourly) == stopped.timestamp()
    assert value("bagtracker_job_last_duration_seconds", **hourly) == 2.5
    assert value("bagtracker_job_last_rows", **hourly) == 42
    assert value("bagtracker_job_last_failure_timestamp_seconds", **hourly) == stopped.timestamp()
    assert value("bagtracker_schedule_paused", schedule="hourly_balance_snapshots", **hourly) == 0
    assert value("bagtracker_database_up") == 1
    assert parsed["bagtracker_job_last_rows"].type == "gauge"
