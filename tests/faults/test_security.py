"""Security (issue 6, item 8): the admin needs a staff login; production settings pass Django's
deployment checks and have no default secret; /metrics is closed unless configured; no secret
is committed. /metrics by token and allow-list: tests/test_operations.py."""

import json
import os
import re
import subprocess
import sys

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse
from django_q.models import Schedule

from tests.jobs_support import ROOT, queued_payloads

pytestmark = pytest.mark.faults

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "x7Qp-" + "k3Vn8-Lm2Rt9-Zw4Yb6-Hc1Jd5-Fg0Ks7-Pq3Xe8-Ua2Wi9-Oy4Tz",
    "DJANGO_ALLOWED_HOSTS": "bagtracker.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://bagtracker.example.com",
}


def admin_urls():
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        urls.append(reverse("admin:{}_{}_add".format(*info)))
    return urls


@pytest.mark.django_db
def test_every_admin_page_sends_an_anonymous_visitor_to_the_login(client):
    for url in admin_urls():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("admin:login")), url


@pytest.mark.django_db
def test_a_user_who_is_not_staff_is_refused_everywhere_and_cannot_run_a_job(client):
    user = get_user_model().objects.create_user("alice", password="a-long-password-1")
    client.force_login(user)
    for url in admin_urls():
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login")), url
    hourly = Schedule.objects.get(name="hourly_balance_snapshots")
    response = client.post(
        reverse("admin:django_q_schedule_changelist"), {"action": "run_now", "_selected_action": [hourly.pk]}
    )
    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))
    assert not queued_payloads()


def production(*args, **env):
    variables = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    variables.update(PRODUCTION)
    variables.update(env)
    for name in [k for k, v in variables.items() if v is None]:
        del variables[name]
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=variables, capture_output=True, text=True, timeout=60)


def test_production_settings_pass_the_deployment_checks():
    result = production("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_are_secure_whatever_the_environment_says():
    code = (
        "import json, django; from django.conf import settings; django.setup(); print(json.dumps({k: getattr("
        "settings, k) for k in ['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
        "'SECURE_SSL_REDIRECT', 'ALLOWED_HOSTS', 'CSRF_TRUSTED_ORIGINS', 'METRICS_TOKEN', 'METRICS_ALLOWED_IPS']}))"
    )
    result = production("-c", code, DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["ALLOWED_HOSTS"] == ["bagtracker.example.com"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://bagtracker.example.com"]
    assert values["METRICS_TOKEN"] is None and values["METRICS_ALLOWED_IPS"] == []  # closed by default


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"])
def test_production_has_no_default_for_the_secret_key_or_the_hosts(missing):
    result = production("manage.py", "check", **{missing: None})
    assert result.returncode != 0
    assert missing in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_weak_key_fails_the_deployment_checks_and_the_placeholder_does_not_start():
    result = production("manage.py", "check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY="short")
    assert result.returncode != 0 and "SECRET_KEY" in result.stdout + result.stderr
    result = production("manage.py", "check", DJANGO_SECRET_KEY="change-me-to-a-long-random-string")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY is still the placeholder" in result.stderr


@pytest.mark.django_db
@override_settings(METRICS_TOKEN=None, METRICS_ALLOWED_IPS=[])
def test_metrics_are_closed_to_everyone_without_a_token_or_allow_list(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="0123456789abcdef-token", METRICS_ALLOWED_IPS=[])
def test_metrics_want_the_exact_token_in_the_header(client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer 0123456789abcdef-token").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer 0123456789abcdef-toke").status_code == 404
    assert client.get("/metrics?token=0123456789abcdef-token").status_code == 404


SECRETS = [
    (re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"), "a private key"),
    (re.compile(r"AKIA[0-9A-Z]{16}"), "an AWS access key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"), "a GitHub token"),
    (re.compile(r"\bsk_live_[A-Za-z0-9]{16,}"), "a Stripe key"),
    (re.compile(r"https://[0-9a-f]{32}@[^ ]*sentry\.io"), "a Sentry DSN"),
]


def tracked_files():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_secret_is_committed():
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}: {what}" for pattern, what in SECRETS if pattern.search(text)]
    assert not found


def test_production_reads_every_secret_from_the_environment():
    production_py = (ROOT / "config/settings/production.py").read_text()
    assert re.search(r'^SECRET_KEY = env\.str\("DJANGO_SECRET_KEY"\)\s', production_py, re.M)
    assert not re.search(r'SECRET_KEY\s*=\s*["\']', production_py)
    compose = (ROOT / "docker-compose.yml").read_text()
    for line in compose.splitlines():
        if re.search(r"(PASSWORD|SECRET|TOKEN|DSN)\w*\s*[:=]", line) and "${" not in line:
            pytest.fail(f"docker-compose.yml sets a secret literally: {line.strip()}")
    assert "env_file: .env" in compose
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT).returncode == 0
    assert ignored, ".env (the operator's secrets) must be in .gitignore"
    example = (ROOT / ".env.example").read_text()
    for line in example.splitlines():
        match = re.match(r"\s*(\w*(PASSWORD|SECRET_KEY|TOKEN|DSN)\w*)=(.+)", line)
        assert not match or match.group(3).startswith("change-me"), f".env.example holds a value: {line}"
