"""/health and /metrics answer any Host (container health checks, in-network scrapes) while every
other request is still held to DJANGO_ALLOWED_HOSTS, and a probe's error answer is not an incident."""

import logging

import pytest
from django.test import override_settings
from django_q.conf import Conf

OPERATOR_HOSTS = ["bags.example.com"]


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=OPERATOR_HOSTS)
def test_the_health_check_answers_the_container_probe_whatever_the_allowed_hosts(client):
    assert client.get("/health", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert client.get("/health?only=database,broker", HTTP_HOST="localhost").status_code == 200


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=OPERATOR_HOSTS, METRICS_TOKEN="a-token-of-sixteen-chars")
def test_prometheus_scrapes_the_web_service_by_its_network_name(client):
    response = client.get("/metrics", HTTP_HOST="web:8000", HTTP_AUTHORIZATION="Bearer a-token-of-sixteen-chars")
    assert response.status_code == 200
    assert client.get("/metrics", HTTP_HOST="web:8000").status_code == 404  # the token is still required


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=OPERATOR_HOSTS)
def test_a_foreign_host_is_still_refused_everywhere_else(client):
    assert client.get("/admin/login/", HTTP_HOST="web:8000").status_code == 400
    assert client.get("/admin/login/", HTTP_HOST="evil.example.net").status_code == 400
    assert client.get("/health/", HTTP_HOST="evil.example.net").status_code == 400  # exact paths only
    assert client.post("/health", HTTP_HOST="evil.example.net").status_code == 400  # GET and HEAD only
    assert client.get("/admin/login/", HTTP_HOST="bags.example.com").status_code == 200


@pytest.mark.django_db
def test_an_unhealthy_probe_is_not_logged_as_an_error(client, monkeypatch, caplog):
    """With SENTRY_DSN set every ERROR line is an event: a probe every 15 s must not be one."""
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    with caplog.at_level(logging.INFO, logger="django.request"):
        assert client.get("/health", HTTP_HOST="web:8000").status_code == 503
        assert client.get("/metrics", HTTP_HOST="web:8000").status_code == 404
    assert [r for r in caplog.records if r.name == "django.request"] == []


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=OPERATOR_HOSTS)
def test_a_foreign_host_on_a_real_page_is_still_reported(client, caplog):
    with caplog.at_level(logging.ERROR, logger="django.security.DisallowedHost"):
        client.get("/admin/login/", HTTP_HOST="evil.example.net")
    assert any("evil.example.net" in r.getMessage() for r in caplog.records)
