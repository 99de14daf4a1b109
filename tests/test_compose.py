"""docker-compose.yml, Dockerfile and .env.example, proved without a Docker engine: the compose file
parses and says what the issue asks, every variable is documented, and each service's command
runs natively against this machine's PostgreSQL and Redis."""

import http.client
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.jobs_support import ROOT, QCluster, process_env, redis_test_url, wait_until

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
DESIGN_VARIABLES = [
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_PASSWORD",
    "BALANCE_DUST_THRESHOLD",
    "BALANCE_SNAPSHOT_ENABLED",
    "BALANCE_HOURLY_SNAPSHOTS",
    "BALANCE_DAILY_SNAPSHOTS",
    "BALANCE_WEEKLY_SNAPSHOTS",
    "BALANCE_MONTHLY_SNAPSHOTS",
    "BALANCE_SNAPSHOT_CATCH_UP",
    "BALANCE_CATCH_UP_MAX_BOUNDARIES",
    "BALANCE_HOURLY_RETENTION_DAYS",
    "BALANCE_HISTORY_RETENTION_DAYS",
    "BALANCE_WEEKLY_RETENTION_DAYS",
    "BALANCE_MONTHLY_RETENTION_DAYS",
    "SENTRY_DSN",
    "BAGTRACKER_DATA_DIR",
]


def documented(name):
    return re.search(rf"^#?\s*{name}=", ENV_EXAMPLE, re.MULTILINE) is not None


def native(command):
    """A compose command as the container's shell would get it ($$ is compose's escape for $)."""
    return shlex.split(command.replace("$$", "$"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_four_services_are_there_with_restart_policies():
    assert set(SERVICES) == {"db", "redis", "web", "qcluster", "db-replica"}  # the replica only with its profile
    assert all(service["restart"] == "unless-stopped" for service in SERVICES.values())


def test_db_and_redis_have_health_checks_and_volumes():
    assert SERVICES["db"]["healthcheck"]["test"][1].startswith("pg_isready")
    assert SERVICES["db"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert "--appendonly yes" in SERVICES["redis"]["command"]
    assert SERVICES["redis"]["volumes"] == ["redisdata:/data"]
    assert set(COMPOSE["volumes"]) == {"pgdata", "pgdata-replica", "redisdata"}


def test_web_migrates_then_serves_and_qcluster_can_be_scaled():
    web, qcluster = SERVICES["web"], SERVICES["qcluster"]
    assert web["command"].index("migrate") < web["command"].index("gunicorn")
    assert qcluster["command"] == "python manage.py qcluster"
    assert "container_name" not in qcluster and "ports" not in qcluster  # --scale qcluster=N
    assert qcluster["depends_on"]["web"]["condition"] == "service_healthy"
    for service in (web, qcluster):
        assert service["env_file"] == ".env" and service["build"] == "."
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert "@db:5432/" in service["environment"]["DATABASE_URL"]


def test_every_variable_of_the_design_settings_and_compose_is_in_env_example():
    # Every variable an operator may set; the test suite's own settings module reads only its own.
    sources = [p for p in (ROOT / "config").rglob("*.py") if p.name != "test.py"] + [
        ROOT / "dev.py",
        ROOT / "manage.py",
    ]
    settings_source = "\n".join(p.read_text() for p in sources)
    read_by_settings = set(
        re.findall(r'(?:strict_\w+|env\.\w+|environ\.get|environ\.setdefault|getenv)\("([A-Z_]+)"', settings_source)
    )
    assert {"DJANGO_SECRET_KEY", "BAGTRACKER_PORT", "DJANGO_SETTINGS_MODULE"} <= read_by_settings
    compose_source = (ROOT / "docker-compose.yml").read_text()
    used_by_compose = set(re.findall(r"\$\{([A-Z_]+)", compose_source)) | set(
        re.findall(r"\$\$\{([A-Z_]+)", compose_source)
    )
    used_by_compose -= {"POSTGRES_USER", "POSTGRES_DB"} & set(re.findall(r"\$\$\{([A-Z_]+)", compose_source))
    missing = sorted(n for n in set(DESIGN_VARIABLES) | read_by_settings | used_by_compose if not documented(n))
    assert missing == []


def test_a_streaming_replica_of_db_is_there_behind_its_profile():
    replica = SERVICES["db-replica"]
    assert replica["profiles"] == ["replica"]  # `docker compose up` alone starts no replica
    assert replica["image"] == SERVICES["db"]["image"]  # streaming needs the same major version
    assert replica["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_basebackup -h db" in replica["command"] and "--write-recovery-conf" in replica["command"]
    assert "hot_standby=on" in replica["command"] and replica["volumes"] == ["pgdata-replica:/var/lib/postgresql/data"]
    # db accepts the replica's replication connection (an init script: first start of its volume).
    assert SERVICES["db"]["configs"][0]["target"].startswith("/docker-entrypoint-initdb.d/")
    assert "host replication all all scram-sha-256" in COMPOSE["configs"]["allow-replication"]["content"]
    assert documented("DATABASE_REPLICA_URL") and documented("DATABASE_REPLICA_MAX_LAG_SECONDS")


def test_the_dockerfile_is_slim_non_root_and_production():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", dockerfile, re.MULTILINE)
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)  # numeric: verifiable without /etc/passwd
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in dockerfile


def test_every_image_is_pinned_to_an_exact_release():
    assert re.fullmatch(r"postgres:\d+\.\d+-bookworm", SERVICES["db"]["image"])
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-alpine", SERVICES["redis"]["image"])


# --- Each service's command, run natively ---------------------------------------------------------


def test_the_redis_command_runs_with_persistence(tmp_path):
    port = free_port()
    command = [
        *native(SERVICES["redis"]["command"]),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp_path),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), timeout=10, what="redis-server")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        server.terminate()
        server.wait(timeout=10)


def _pings(client):
    try:
        return client.ping()
    except Exception:
        return False


@pytest.mark.django_db
def test_the_db_health_check_runs_against_this_postgresql():
    from django.conf import settings

    db = settings.DATABASES["default"]
    if (db.get("HOST") or "").startswith("/"):
        pytest.skip("embedded PostgreSQL on a Unix socket; the check is for a TCP server")
    env = {
        **os.environ,
        "POSTGRES_USER": db["USER"],
        "POSTGRES_DB": db["NAME"],
        "PGHOST": db["HOST"],
        "PGPORT": str(db.get("PORT") or 5432),
    }
    check = SERVICES["db"]["healthcheck"]["test"][1].replace("$$", "$")
    assert subprocess.run(["sh", "-c", check], env=env, capture_output=True).returncode == 0


# As an operator writes it: the public name only. Compose's probes use 127.0.0.1 and web:8000.
OPERATOR_HOSTS = "bags.example.com"
METRICS_TOKEN = "compose-test-metrics-token"


def production_env(**extra):
    return process_env(
        broker_url=redis_test_url(),
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="compose-test",
        DJANGO_ALLOWED_HOSTS=OPERATOR_HOSTS,
        METRICS_TOKEN=METRICS_TOKEN,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    )


def _get(port, path, **headers):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_web_command_migrates_and_gunicorn_answers_health(tmp_path):
    port = free_port()
    env = production_env(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="1")
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115 -- gunicorn writes to it until the finally below
    web = subprocess.Popen(
        native(SERVICES["web"]["command"]),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        probe = SERVICES["web"]["healthcheck"]["test"][3].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        wait_until(
            lambda: web.poll() is None and subprocess.run([sys.executable, "-c", probe]).returncode == 0,
            timeout=60,
            what="gunicorn /health",
        )
        assert _get(port, "/health")[0] == 200  # never redirected to https
        # Prometheus in the compose network scrapes the service by name.
        assert _get(port, "/metrics", Host="web:8000", Authorization=f"Bearer {METRICS_TOKEN}")[0] == 200
        # Host checking is on for everything else: a foreign Host is refused, the public name redirected.
        assert _get(port, "/admin/login/")[0] == 400
        assert _get(port, "/admin/login/", Host="web:8000")[0] == 400
        status, location = _get(port, "/admin/login/", Host="bags.example.com")
        assert (status, location) == (301, "https://bags.example.com/admin/login/")  # the production default
    finally:
        os.killpg(web.pid, 15)
        web.wait(timeout=30)
        log.close()
    assert "No migrations to apply" in (tmp_path / "web.log").read_text()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_qcluster_command_starts_a_cluster_on_redis(tmp_path):
    assert native(SERVICES["qcluster"]["command"])[:2] == ["python", "manage.py"]
    cluster = QCluster(production_env(), tmp_path / "qcluster.log").start()
    try:
        cluster.wait_ready()
        assert "bagtracker:q] running." in cluster.log()
    finally:
        cluster.stop()


@pytest.mark.django_db(transaction=True)
def test_the_qcluster_health_check_runs_and_passes_on_fresh_snapshots():
    check = SERVICES["qcluster"]["healthcheck"]["test"][1:]
    assert check == ["python", "manage.py", "jobs_status", "--quiet"]
    result = subprocess.run(check, cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
