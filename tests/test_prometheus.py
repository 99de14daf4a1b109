"""A real Prometheus server scrapes /metrics and evaluates the alerting rules of docs/operations.md.

Debian's `prometheus` package (apt; .ci/run installs it). Without it these tests skip, unless
BAGTRACKER_REQUIRE_PROMETHEUS=1 (CI), where they fail. The server runs on a free port with its
own data directory and is always stopped."""

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request

import pytest
import yaml
from django.test import override_settings
from django_q.tasks import async_task

from tests.jobs_support import ROOT, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TOKEN = "a-token-for-the-prometheus-test"

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def alerting_rules():
    text = (ROOT / "docs" / "operations.md").read_text()
    return yaml.safe_load(re.search(r"```yaml\n(# Prometheus alerting rules.*?)```", text, re.DOTALL).group(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prometheus(tmp_path, live_server):
    if not os.path.exists(PROMETHEUS):
        message = "no prometheus binary (apt-get install prometheus)"
        if os.environ.get("BAGTRACKER_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message + " and BAGTRACKER_REQUIRE_PROMETHEUS=1")
        pytest.skip(message)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(alerting_rules()))
    target = live_server.url.removeprefix("http://").replace("localhost", "127.0.0.1")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": "bagtracker",
                "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials": TOKEN},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "prometheus.log", "w") as log:
        server = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: _ready(url), timeout=30, what="prometheus /-/ready")
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def _ready(url):
    try:
        return urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200
    except OSError:
        return False


def api(url, path, **params):
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_scrapes_the_metrics_and_every_alerting_rule_evaluates(prometheus):
    # The operator's allowed host only: the scrape's Host (127.0.0.1:port) is not in it.
    with override_settings(METRICS_TOKEN=TOKEN, ALLOWED_HOSTS=["bags.example.com"]):
        async_task("snapshots.tasks.cleanup_old_snapshots", sync=True)  # a worker run, counted

        def counted():
            result = api(prometheus, "query", query='bagtracker_task_runs_total{task="cleanup_old_snapshots"}')
            return [r for r in result["result"] if r["metric"]["outcome"] == "success" and r["value"][1] == "1"]

        [series] = wait_until(counted, timeout=30, interval=0.5, what="a scrape with the run counted")
        # Our labels survive the scrape as they are: Prometheus' own job/instance are beside them.
        assert series["metric"]["job"] == "bagtracker" and "exported_job" not in series["metric"]

        rules = alerting_rules()["groups"][0]["rules"]

        def evaluated():
            groups = api(prometheus, "rules")["groups"]
            loaded = [rule for group in groups for rule in group["rules"]]
            return (
                len(loaded) == len(rules)
                and all(r.get("lastEvaluation", "").startswith("20") for r in loaded)
                and loaded
            )

        loaded = wait_until(evaluated, timeout=30, interval=0.5, what="every rule evaluated")
        assert {r["name"]: r["health"] for r in loaded} == {rule["alert"]: "ok" for rule in rules}
        for rule in rules:
            for selector in re.findall(r"bagtracker_\w+(?:\{[^}]*\})?", rule["expr"]):
                assert api(prometheus, "query", query=selector)["result"], (
                    f"{rule['alert']}: {selector} selects nothing"
                )
