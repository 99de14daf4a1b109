"""DATABASE_REPLICA_URL end to end: a primary and a streaming replica of the test's own
(tests/replication_support.py), the console and the exports in processes configured like the web
server (tests/console_client.py). Which server answered is read from each server's statement log
(by application_name) and from data only one of them holds yet (replay paused on the replica)."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.jobs_support import wait_until
from tests.replication_support import StreamingPair, binaries, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
WALLET = "0x00000000000000000000000000000000000000AA"  # EIP-55 checksummed, as stored
TRANSACTIONS = f"""wallet,chain,token,kind,status,amount,price_usd,timestamp,tx_hash
{WALLET},ethereum,ETH,buy,confirmed,5,2000,2026-01-01T00:00:00Z,
"""
PORTFOLIO = "/admin/bagtracker/wallet/1/portfolio/"
OVERVIEW = "/admin/overview/"
EXPORTS = [["command", "export_balances"], ["command", "export_snapshots", "--period", "daily"]]
PROJECT_TABLE = re.compile(r"\b(bagtracker|snapshots|django_q)_\w+")


def environment(pair=None, primary_url=None, **settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_", "PG"))}
    # No job is queued here: the ORM broker, so no Redis is needed or started.
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", PYTHONUNBUFFERED="1", BAGTRACKER_BROKER="orm")
    env["DATABASE_URL"] = primary_url or pair.primary.url()
    if pair:
        env["DATABASE_REPLICA_URL"] = pair.replica.url()
    env.update({k: str(v) for k, v in settings.items()})
    return env


def prepare(tmp_dir):
    def prepare(primary):  # before the replica is copied from it: schema, a user, a wallet, a snapshot
        (tmp_dir / "transactions.csv").write_text(TRANSACTIONS)
        steps = [
            ["command", "migrate", "--no-input"],
            ["command", "createsuperuser", "--no-input", "--username", "admin", "--email", "admin@example.com"],
            ["command", "import_transactions", str(tmp_dir / "transactions.csv")],
            ["command", "create_snapshots", "--period", "daily"],
        ]
        env = environment(primary_url=primary.url(), DJANGO_SUPERUSER_PASSWORD="not-a-secret-123")
        run_steps(steps, env)

    return prepare


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    pair = StreamingPair()
    try:
        yield pair.start(prepare(tmp_path_factory.mktemp("replica")))
    finally:
        pair.stop()


def run_steps(steps, env):
    done = subprocess.run(
        [sys.executable, "-m", "tests.console_client", json.dumps(steps)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def drive(pair, steps, application, **settings):
    """Run the steps in one process configured with the replica, as PGAPPNAME=application."""
    return run_steps(steps, {**environment(pair, **settings), "PGAPPNAME": application})


def reads_of_project_tables(server, application):
    return [s for s in server.statements(application) if PROJECT_TABLE.search(s)]


def test_the_console_and_the_exports_read_the_replica(pair):
    # The primary has been idle for seconds (longer than the 5 s limit since its last commit): the
    # replica is current all the same, because it has replayed everything the primary flushed.
    pair.caught_up()
    portfolio, overview, balances, snapshots = drive(pair, [["get", PORTFOLIO], ["get", OVERVIEW], *EXPORTS], "reader")

    assert portfolio["status"] == overview["status"] == 200
    assert portfolio["h1"] == f"Portfolio of wallet #1 {WALLET}"
    assert f"{WALLET},ethereum,ETH,5," in balances["output"]
    assert f"{WALLET},ethereum,ETH,5,2000,10000," in snapshots["output"]
    on_replica = " ".join(reads_of_project_tables(pair.replica, "reader"))
    for table in ("bagtracker_wallet", "snapshots_balance", "snapshots_balancesnapshot", "snapshots_snapshotrun"):
        assert re.search(rf"\b{table}\b", on_replica), f"{table} was not read on the replica: {on_replica}"
    # The primary answered the guard (its WAL position), the login and the session, nothing else.
    assert reads_of_project_tables(pair.primary, "reader") == []


def test_a_lagging_replica_is_skipped_and_an_export_waits_for_what_was_committed_before_it(pair):
    pair.caught_up()
    pair.pause_replay()
    try:
        pair.primary.sql("UPDATE bagtracker_wallet SET name = 'renamed'")
        pair.primary.sql("UPDATE bagtracker_token SET symbol = 'WETH'")

        # Behind by any time at all, with a limit of 0 s: the primary answers.
        page, balances = drive(pair, [["get", PORTFOLIO], EXPORTS[0]], "strict", DATABASE_REPLICA_MAX_LAG_SECONDS=0)
        assert page["h1"] == "Portfolio of wallet #1 renamed"
        assert f"{WALLET},ethereum,WETH,5," in balances["output"]
        assert reads_of_project_tables(pair.replica, "strict") == []

        # Within a generous limit the console reads the replica (it shows the old name), but an
        # export still shows everything committed before it started: the replica has not replayed
        # it, so after a short wait the export reads the primary.
        page, balances = drive(
            pair, [["get", PORTFOLIO], EXPORTS[0]], "tolerant", DATABASE_REPLICA_MAX_LAG_SECONDS=3600
        )
        assert page["h1"] == f"Portfolio of wallet #1 {WALLET}"
        assert f"{WALLET},ethereum,WETH,5," in balances["output"]
    finally:
        pair.resume_replay()
        pair.primary.sql("UPDATE bagtracker_wallet SET name = ''")
        pair.primary.sql("UPDATE bagtracker_token SET symbol = 'ETH'")


def test_a_stopped_replica_is_skipped(pair):
    pair.replica.stop()
    try:
        page, balances = drive(pair, [["get", PORTFOLIO], EXPORTS[0]], "stopped")
    finally:
        pair.replica.start()
    assert page == {"status": 200, "h1": f"Portfolio of wallet #1 {WALLET}"}
    assert f"{WALLET},ethereum,ETH,5," in balances["output"]
    assert reads_of_project_tables(pair.primary, "stopped")


def test_a_browser_that_saved_something_reads_the_primary(pair):
    pair.caught_up()
    pair.pause_replay()
    try:
        change = "/admin/bagtracker/wallet/1/change/"
        saved = {"chain": "1", "address": WALLET, "name": "saved in the admin", "is_active": "on", "_save": "Save"}
        steps = [["get", PORTFOLIO], ["post", change, saved], ["get", PORTFOLIO]]
        before, save, after = drive(pair, steps, "writer", DATABASE_REPLICA_MAX_LAG_SECONDS=3600)
        # A browser that did not write still reads the replica, which has not replayed the save.
        (other,) = drive(pair, [["get", PORTFOLIO]], "other", DATABASE_REPLICA_MAX_LAG_SECONDS=3600)
    finally:
        pair.resume_replay()
    assert before["h1"] == f"Portfolio of wallet #1 {WALLET}"
    assert save["status"] == 302
    assert after["h1"] == "Portfolio of wallet #1 saved in the admin"
    assert other["h1"] == f"Portfolio of wallet #1 {WALLET}"


def test_the_compose_replica_command_copies_the_primary_and_streams_from_it(pair):
    """docker-compose.yml's db-replica command, run natively: `db` is our primary, the port ours."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["db-replica"]["command"]
    shell, flag, script = shlex.split(command.replace("$$", "$"))
    port = free_port()
    script = script.replace("-h db", f"-h 127.0.0.1 -p {pair.primary.port}").replace(
        "exec postgres", f"exec postgres -c port={port} -c listen_addresses=127.0.0.1 -k {pair.root}"
    )
    env = {
        "PATH": f"{binaries()}:{os.environ['PATH']}",
        "PGDATA": str(pair.root / "compose-replica"),
        "POSTGRES_USER": "postgres",
    }
    with open(pair.root / "compose-replica.log", "w") as log:
        server = subprocess.Popen([shell, flag, script], env=env, user=pair.user, stdout=log, stderr=subprocess.STDOUT)
    url = f"postgres://postgres@127.0.0.1:{port}/bagtracker"

    def answers(query):
        assert server.poll() is None, (pair.root / "compose-replica.log").read_text()
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                return connection.execute(query).fetchone()[0]
        except psycopg.OperationalError:
            return None

    try:
        assert wait_until(lambda: answers("SELECT pg_is_in_recovery()"), timeout=60, what="the compose replica")
        pair.primary.sql("UPDATE bagtracker_wallet SET name = 'streamed'")
        wait_until(lambda: answers("SELECT name FROM bagtracker_wallet") == "streamed", timeout=30, what="streaming")
    finally:
        server.send_signal(signal.SIGQUIT)  # immediate shutdown: its data is thrown away
        server.wait(timeout=30)
        pair.primary.sql("UPDATE bagtracker_wallet SET name = ''")
