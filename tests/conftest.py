"""Fixtures of the whole suite: factories for the domain on the real PostgreSQL database (never
mocked), the private Redis of the run, and real `manage.py qcluster` subprocesses.

The servers are the run's own (config/settings/test.py): an embedded PostgreSQL unless DATABASE_URL
is set, and always a private Redis-compatible server, one database per pytest-xdist worker."""

import contextlib
import itertools
import os
import shutil
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.test import TransactionTestCase
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from bagtracker.models import Chain, Price, Token, Transaction, Wallet
from bagtracker.services.transactions import save_transaction
from tests.browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, unavailable
from tests.jobs_support import QCluster, flush_test_redis, redis_test_url

_counter = itertools.count(1)

# Property runs (tests/test_ledger_property.py): each draws 25 histories per cost-basis method in the
# suite; `--hypothesis-profile deep` draws 75 (CI runs the property tests so too: .ci/run).
hypothesis_settings.register_profile("suite", max_examples=25)
hypothesis_settings.register_profile("deep", max_examples=75)
hypothesis_settings.load_profile("suite")  # before the plugin applies --hypothesis-profile, if given

# Longest first, so that the long files start at once and the short ones fill in around them
# (pytest-xdist hands out whole files as workers free up: `--dist loadfile`, dev.py) instead of a long
# file starting last and running alone at the end: the files measured longest (`--durations`), in
# that order; then the other files of long in-process runs (markers bench, slow), then those of
# real-process tests (e2e, faults), then the rest, each in the usual order.
LONGEST_FILES = (
    "test_bench.py",  # a dozen real commands, each in its own process
    "test_e2e_jobs.py",  # the one test that waits for real scheduler ticks: 35 s of them
    "faults/test_worker_killed.py",  # three boundaries of 100,000 rows
    "test_embedded_servers.py",
    "test_browser_csp.py",
    "faults/test_bad_input.py",
    "test_admin_permissions.py",
    "test_ledger_property.py",
    "test_snapshot_ledger.py",
    "faults/test_environment.py",
    "test_clean_stops.py",
    "test_e2e_replica.py",
)
_FIRST_MARKERS = (("bench", "slow"), ("e2e", "faults"))


def _rank(item):
    path = item.path.as_posix()
    for index, name in enumerate(LONGEST_FILES):
        if path.endswith("/tests/" + name):
            return (0, index)
    markers = {mark.name for mark in item.iter_markers()}
    return (1 + next((i for i, names in enumerate(_FIRST_MARKERS) if markers & set(names)), len(_FIRST_MARKERS)), 0)


# What a transactional test committed is removed after it (Django's TransactionTestCase). Django
# truncates every table and re-runs post_migrate; here the tables are emptied by DELETE, and only the
# job schedules are installed again. Same state after, at about a third of the cost (0.05-0.14 s
# instead of 0.31-0.46 s a test, measured under load): a TRUNCATE gives every table, partition and
# index new files, and post_migrate re-checks every permission. Kept: the rows post_migrate installs
# that no test changes (content types and permissions; the migration history).
KEPT_TABLES = {"django_content_type", "auth_permission", "django_migrations"}


def _empty_tables(self):
    from snapshots.schedules import install_schedules

    for alias in self._databases_names(include_mirrors=False):
        connection = connections[alias]
        tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
        tables = sorted(set(tables) - KEPT_TABLES)
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            # No triggers (foreign keys, the snapshot rows' delete triggers): every table is emptied anyway.
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql.SQL("; ").join(sql.SQL("DELETE FROM {}").format(sql.Identifier(t)) for t in tables))
    install_schedules()


TransactionTestCase._fixture_teardown = _empty_tables


def pytest_collection_modifyitems(items):
    rank = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, _rank(item)), _rank(item))
    items.sort(key=lambda item: rank[item.path])  # stable: the usual order inside each group and file


@pytest.fixture(autouse=True)
def _empty_queue():
    """Every test starts with an empty queue on the private Redis (the ORM broker's queue is a table,
    rolled back with the test; this one is not)."""
    flush_test_redis()


@pytest.fixture
def redis_url():
    """The private Redis database of this test process, empty before and after the test."""
    flush_test_redis()
    yield redis_test_url()
    flush_test_redis()


@pytest.fixture
def qcluster(tmp_path):
    """start(env) -> a running QCluster; every cluster started is stopped at teardown."""
    started = []

    def start(env, name="qcluster"):
        cluster = QCluster(env, tmp_path / f"{name}-{len(started)}.log")
        started.append(cluster)
        return cluster.start().wait_ready()

    yield start
    for cluster in started:
        cluster.stop()


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def chain(db):
    return Chain.objects.create(slug="ethereum", name="Ethereum")


@pytest.fixture
def make_token(db, chain):
    def make(symbol="ETH", decimals=18, on_chain=None, contract_address=""):
        return Token.objects.create(
            chain=on_chain or chain, symbol=symbol, decimals=decimals, contract_address=contract_address
        )

    return make


@pytest.fixture
def token(make_token):
    return make_token()


@pytest.fixture
def make_wallet(db, chain):
    # Decimal digits only: an EVM address without letters reads the same in its EIP-55 checksummed
    # form, so an import naming it finds this wallet whatever the counter has reached.
    def make(address=None, on_chain=None, **fields):
        return Wallet.objects.create(chain=on_chain or chain, address=address or f"0x{next(_counter):040d}", **fields)

    return make


@pytest.fixture
def wallet(make_wallet):
    return make_wallet(name="main")


@pytest.fixture
def make_tx(db, wallet, token):
    """Record a transaction through the service (balances updated in the same transaction). Without
    ``at``, each transaction of a test is one second after the one before (from 2026-01-01 00:00:01),
    so the order they were made in is their ledger order."""
    seconds = itertools.count(1)

    def make(kind, amount, price=None, at=None, status="confirmed", on_wallet=None, of_token=None, tx_hash=None):
        tx = Transaction(
            wallet=on_wallet or wallet,
            token=of_token or token,
            kind=kind,
            status=status,
            amount=Decimal(str(amount)),
            price_usd=None if price is None else Decimal(str(price)),
            timestamp=at or utc(2026, 1, 1) + timedelta(seconds=next(seconds)),
            tx_hash=tx_hash,
        )
        return save_transaction(tx)

    return make


@pytest.fixture
def make_price(db, token):
    def make(price, at, of_token=None, source="test"):
        return Price.objects.create(token=of_token or token, as_of=at, price_usd=Decimal(str(price)), source=source)

    return make


@pytest.fixture
def refuse_snapshot_rows(db):
    """Make the database refuse snapshot rows from an instant on (a trigger on the taken boundaries,
    which every boundary write inserts into, as a full disk or a
    failing constraint would): refuse(since) to start, refuse(None) to stop. Rolled back with the test."""
    from django.db import connection

    def refuse(since):
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_snapshot ON snapshots_boundary")
            if since is None:
                return
            cursor.execute(
                "CREATE OR REPLACE FUNCTION test_refuse_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF NEW.as_of >= '{since.isoformat()}' THEN "
                "RAISE EXCEPTION 'could not extend file (simulated disk full)'; END IF; RETURN NEW; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse_snapshot BEFORE INSERT ON snapshots_boundary "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_snapshot()"
            )

    return refuse


@pytest.fixture
def settings_for_method(settings):
    """settings_for_method("fifo"): compute cost basis with that method (BALANCE_COST_BASIS) in this test."""

    def use(method):
        settings.BALANCE_COST_BASIS = method

    return use


@pytest.fixture
def no_other_transaction(db):
    """Wait (60 s at most) until no other backend of the test database has a transaction open.

    A new newest boundary treats every Balance rewritten since the previous one's horizon as moved,
    and that horizon is the start of the oldest transaction open in the database when it was taken
    (snapshot_sql.HORIZON_SQL, client backends only): a transaction left running by an earlier test
    in this worker (a killed process's backend finishing its statement) makes a test see more
    wallets move than its own writes moved. The results stay exact; only which wallets are written in full changes."""
    from tests.jobs_support import wait_until

    def others():
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pid, state, backend_start, xact_start, left(query, 200) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                "AND backend_type = 'client backend'"  # as HORIZON_SQL: autovacuum never writes the ledger
            )
            return cursor.fetchall()

    found = others()
    if not found:
        return
    started = time.monotonic()
    try:
        wait_until(lambda: not others(), timeout=60, what="the other transactions of the test database to end")
    except AssertionError as error:
        raise AssertionError(f"{error}: {others()}") from None
    warnings.warn(
        f"waited {time.monotonic() - started:.1f} s for a transaction left by an earlier test: {found}", stacklevel=2
    )


@contextlib.contextmanager
def plans_of(marker):
    """Collect the plan (EXPLAIN, not run) of every statement containing ``marker`` that this
    connection executes inside the block, as the server would run it at that moment; the
    statements themselves still run. Yields the list the plans are appended to."""
    plans = []

    def explain(execute, sql, params, many, context):
        raw = context["cursor"].cursor
        text = sql if isinstance(sql, str) else sql.as_string(raw)
        if marker in text:
            raw.execute("EXPLAIN " + text, params)
            plans.append("\n".join(row[0] for row in raw.fetchall()))
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(explain):
        yield plans


def index_columns(table, where="true"):
    """The column lists of ``table``'s indexes matching ``where`` (over pg_index ``i``), sorted."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            f" WHERE i.indrelid = %s::regclass AND {where} GROUP BY i.indexrelid",
            [table],
        )
        return sorted(row[0] for row in cursor.fetchall())


# --- The browser tests (tests/browser_support.py) ------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -r requirements-dev.txt)")
    # Playwright's sync API keeps an event loop running in this thread while the browser is open;
    # the tests' own ORM calls (and the database flush between tests) are still plain synchronous
    # code, which Django's async-safety check would refuse.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield instance
            instance.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    # Every Content-Security-Policy violation, whichever page and however reported: the
    # securitypolicyviolation event (sent to the test through an exposed function) and the
    # console message Chromium writes for it.
    violations = []
    context.expose_function("reportCspViolation", lambda text: violations.append(text))
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => window.reportCspViolation("
        "`${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`))"
    )
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))
    yield tab
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=ARTIFACTS / f"{request.node.name}-last.png", full_page=True)
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
    assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)
