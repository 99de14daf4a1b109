"""Web hardening (issue 11, item 5): /health tells an anonymous caller only whether the service is
healthy; the details that map the infrastructure (server versions, queue length, which check
failed) go to staff and to a caller bearing METRICS_TOKEN. Every page carries a
Content-Security-Policy without inline script (tested in Chromium: tests/test_browser_csp.py) and
the other headers of Django's deployment checklist."""

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django_q.conf import Conf

TOKEN = "health-details-token-0123"

pytestmark = pytest.mark.django_db


def test_an_anonymous_caller_gets_the_status_and_nothing_else(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    text = response.content.decode()
    assert "PostgreSQL" not in text and "queue" not in text and "checks" not in text


def test_an_unhealthy_service_says_so_by_code_and_status_only(client, monkeypatch):
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = client.get("/health")
    assert response.status_code == 503 and response.json() == {"status": "error"}
    assert client.get("/health?only=database").status_code == 200  # narrowing still works


def test_staff_get_every_checks_details(admin_client):
    body = admin_client.get("/health").json()
    assert body["status"] == "ok" and set(body["checks"]) == {"database", "broker", "snapshots"}
    assert body["checks"]["database"]["detail"].startswith("PostgreSQL")


@override_settings(METRICS_TOKEN=TOKEN)
def test_the_metrics_token_gets_the_details_and_nothing_less_does(client):
    assert "checks" in client.get("/health", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert "checks" not in client.get("/health", HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}").json()
    assert "checks" not in client.get(f"/health?token={TOKEN}").json()
    member = get_user_model().objects.create_user("member")  # logged in, not staff
    client.force_login(member)
    assert "checks" not in client.get("/health").json()


@override_settings(METRICS_TOKEN=None)
def test_without_a_token_configured_no_header_gets_details(client):
    assert "checks" not in client.get("/health", HTTP_AUTHORIZATION="Bearer ").json()


def directives(response):
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split("; ")}


@pytest.mark.parametrize("url", ["/admin/login/", "/admin/", "/admin/overview/", "/health"])
def test_every_response_carries_the_policy_and_the_deployment_headers(admin_client, url):
    response = admin_client.get(url)
    policy = directives(response)
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
