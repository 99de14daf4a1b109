"""Random histories against a reference ledger written here, in plain Python Decimal.

Each example starts from an empty wallet pair and a few tokens of random decimals, then applies a
random sequence of adds, edits and deletes through the write service (what the admin and the
importer call). After every step the database must hold exactly the balances the reference
computes from the transactions it believes exist; a step the reference says must be refused
(a running amount below zero in (timestamp, id) order) must raise LedgerError and change nothing.
Every example runs in a savepoint that is rolled back, so examples don't see each other.

Random draws almost never land on a quotient within 10^-36 of a rounding half; that case (the one
where rounding twice goes wrong) is pinned by hand in tests/test_ledger.py.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext
from functools import partial

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bagtracker.models import Chain, Token, Transaction, Wallet
from bagtracker.services.transactions import delete_transactions, save_transaction
from snapshots.models import Balance
from snapshots.services.ledger import LedgerError, recalculate_all_wallets, recalculate_wallet

ACQUISITIONS = ("buy", "transfer_in")
KINDS = ("buy", "sell", "transfer_in", "transfer_out")
STATUSES = ("confirmed", "confirmed", "confirmed", "confirmed", "pending", "failed", "cancelled")
START = datetime(2026, 1, 1, tzinfo=UTC)
PLACES_18 = Decimal("1e-18")

# Sizes: unpriced amounts reach 40 integer digits (NUMERIC(78,18) holds 60); priced ones stay below
# 10^12 at prices below 10^6, so Σ qty of priced disposals × price difference fits the 20 integer
# digits of a USD value (NUMERIC(38,18)).
UNPRICED_DIGITS = 40
PRICED_DIGITS = 12
PRICE_DIGITS = 6


# --- The reference model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tx:
    id: int
    wallet: int
    token: int
    kind: str
    status: str
    amount: Decimal
    price: Decimal | None
    timestamp: datetime


def _average(value, qty):
    # 400 significant digits: the exact quotient of these sums is never within 10^-400 of a
    # rounding half (its denominator has fewer than 100 digits), so rounding it once more to 18
    # places half-up gives the exactly rounded average.
    with localcontext() as ctx:
        ctx.prec = 400
        return (value / qty).quantize(PLACES_18, rounding=ROUND_HALF_UP)


def _round(value):
    return value.quantize(PLACES_18, rounding=ROUND_HALF_UP)


def ledger_order(tx):
    """timestamp, then acquisitions before disposals at the same instant, then id."""
    return (tx.timestamp, tx.kind not in ACQUISITIONS, tx.id)


def reference_cost_basis(history, method):
    """The walk of docs/ledger.md over one (wallet, token)'s confirmed history in ledger order:
    {cost_basis_usd, avg_cost_usd, realized_pnl_usd, cost_basis_complete, realized_pnl_complete}."""
    amount, cost, realized, realized_complete = Decimal(0), Decimal(0), Decimal(0), True
    unknown_held = False  # average: an unknown-cost acquisition since the amount was last 0
    lots = []  # fifo: [qty, unit cost or None], oldest first
    for tx in history:
        if tx.kind in ACQUISITIONS:
            amount += tx.amount
            if method == "fifo":
                lots.append([tx.amount, tx.price])
                cost = _round(sum((q * (p or 0) for q, p in lots), Decimal(0)))
            elif tx.price is None:
                unknown_held = True
            else:
                cost += _round(tx.amount * tx.price)
            continue
        sells = tx.kind == "sell"
        if sells and tx.price is None:
            realized_complete = False
        if method == "fifo":
            need = tx.amount
            while need > 0:
                lot = lots[0]
                if lot[1] is None and sells:
                    realized_complete = False
                taken = min(need, lot[0])
                lot[0] -= taken
                need -= taken
                if lot[0] == 0:
                    lots.pop(0)
            taken_cost = cost - _round(sum((q * (p or 0) for q, p in lots), Decimal(0)))
        else:
            if unknown_held and sells:
                realized_complete = False
            taken_cost = cost if tx.amount == amount else _round(cost * tx.amount / amount)
        cost -= taken_cost
        amount -= tx.amount
        if amount == 0:
            unknown_held = False
        if sells and tx.price is not None:
            realized += _round(tx.amount * tx.price) - taken_cost
    complete = all(p is not None for _, p in lots) if method == "fifo" else not unknown_held
    return {
        "cost_basis_usd": cost,
        "avg_cost_usd": _round(cost / amount) if amount else None,
        "realized_pnl_usd": realized,
        "cost_basis_complete": complete,
        "realized_pnl_complete": realized_complete,
        "cost_basis_method": method,
    }


def reference_balances(txs, method="average"):
    """docs/ledger.md: ({(wallet, token): fields}, []) or (None, [first tx below zero per key])."""
    with localcontext() as ctx:
        ctx.prec = 400
        ctx.rounding = ROUND_HALF_UP
        by_key = {}
        for tx in sorted((t for t in txs if t.status == "confirmed"), key=ledger_order):
            by_key.setdefault((tx.wallet, tx.token), []).append(tx)
        balances, negatives = {}, []
        for key, history in sorted(by_key.items()):
            running = Decimal(0)
            for tx in history:
                running += tx.amount if tx.kind in ACQUISITIONS else -tx.amount
                if running < 0:
                    negatives.append(tx)
                    break
            if negatives:
                continue
            ins = [t for t in history if t.kind in ACQUISITIONS]
            outs = [t for t in history if t.kind not in ACQUISITIONS]
            priced_ins = [t for t in ins if t.price is not None]
            priced_outs = [t for t in outs if t.price is not None]
            avg_buy = (
                _average(sum(t.amount * t.price for t in priced_ins), sum(t.amount for t in priced_ins))
                if priced_ins
                else None
            )
            avg_sell = (
                _average(sum(t.amount * t.price for t in priced_outs), sum(t.amount for t in priced_outs))
                if priced_outs
                else None
            )
            total_in = sum((t.amount for t in ins), Decimal(0))
            total_out = sum((t.amount for t in outs), Decimal(0))
            balances[key] = {
                "amount": total_in - total_out,
                "total_in": total_in,
                "total_out": total_out,
                "avg_buy_price_usd": avg_buy,
                "avg_sell_price_usd": avg_sell,
                **reference_cost_basis(history, method),
            }
        return (None, negatives) if negatives else (balances, [])


# --- What the database holds -----------------------------------------------------------------------


def stored_balances():
    fields = [
        "amount",
        "total_in",
        "total_out",
        "avg_buy_price_usd",
        "avg_sell_price_usd",
        "cost_basis_usd",
        "avg_cost_usd",
        "realized_pnl_usd",
        "cost_basis_complete",
        "realized_pnl_complete",
        "cost_basis_method",
    ]
    return {
        (row["wallet_id"], row["token_id"]): {f: row[f] for f in fields}
        for row in Balance.objects.values("wallet_id", "token_id", *fields)
    }


def stored_state():
    """Every column of every transaction and balance: what a refused write must leave alone."""
    return (
        list(Transaction.objects.order_by("id").values()),
        list(Balance.objects.order_by("wallet_id", "token_id").values()),
    )


def assert_same_balances(stored, expected):
    assert stored.keys() == expected.keys()
    for key, fields in expected.items():
        for name, value in fields.items():
            got = stored[key][name]
            # Exact: equal as numbers, and None only where the reference has None.
            assert (got is None) == (value is None) and (value is None or got == value), (key, name, got, value)


# --- Random histories ------------------------------------------------------------------------------


def amounts(decimals, digits):
    """Positive amounts with at most `decimals` places and up to `digits` integer digits."""
    magnitude = st.integers(min_value=1, max_value=digits + decimals)
    return magnitude.flatmap(
        lambda m: st.integers(min_value=1, max_value=10**m - 1).map(lambda units: Decimal(f"{units}e-{decimals}"))
    )


prices = st.one_of(
    st.just(Decimal(0)),
    st.integers(min_value=1, max_value=10**18).map(lambda u: Decimal(f"{u}e-18")),  # up to 1, all 18 places
    st.decimals(min_value=0, max_value=10**PRICE_DIGITS - 1, places=18, allow_nan=False, allow_infinity=False),
)


def draw_fields(data, world, current=None):
    """Fields of a transaction: kind, status, amount, price, timestamp on one of the world's tokens."""
    kind = data.draw(st.sampled_from(KINDS))
    status = data.draw(st.sampled_from(STATUSES))
    priced = data.draw(st.sampled_from([True, True, False]))
    price = data.draw(prices) if priced else None
    digits = PRICED_DIGITS if priced else UNPRICED_DIGITS
    holdings = sorted(key for key, amount in world["held"].items() if amount > 0)
    # Often a disposal of at most what is held, so that histories grow past their first sell (and
    # deleting or editing the acquisitions under it is refused).
    from_holdings = kind not in ACQUISITIONS and holdings and data.draw(st.sampled_from([True, True, True, False]))
    if from_holdings:
        wallet, token_id = data.draw(st.sampled_from(holdings))
        token = next(t for t in world["tokens"] if t.id == token_id)
    else:
        wallet = data.draw(st.sampled_from(world["wallets"]))
        token = data.draw(st.sampled_from(world["tokens"]))
    held = world["held"].get((wallet, token.id), Decimal(0))
    if from_holdings:
        fraction = data.draw(
            st.sampled_from([Decimal(1), Decimal(1), Decimal("0.5"), Decimal("0.333"), Decimal("1e-9")])
        )
        amount = (held * fraction).quantize(Decimal(1).scaleb(-token.decimals), rounding=ROUND_DOWN)
        if amount <= 0 or (priced and amount >= 10**PRICED_DIGITS):
            amount = Decimal(1).scaleb(-token.decimals)
    else:
        amount = data.draw(amounts(token.decimals, digits))
    # Few distinct instants, so equal timestamps (ordered by id) are common.
    timestamp = START + timedelta(minutes=data.draw(st.integers(min_value=0, max_value=4)))
    return {
        "wallet_id": wallet,
        "token_id": token.id,
        "kind": kind,
        "status": status,
        "amount": amount,
        "price_usd": price,
        "timestamp": timestamp,
    }


def draw_target(data, believed):
    """An existing transaction to edit or delete; often a confirmed acquisition, whose removal can
    leave a later disposal without cover."""
    acquisitions = [k for k, t in believed.items() if t.status == "confirmed" and t.kind in ACQUISITIONS]
    pool = acquisitions if acquisitions and data.draw(st.booleans()) else believed
    return believed[data.draw(st.sampled_from(sorted(pool)))]


def as_reference(tx_row):
    return Tx(
        id=tx_row.id,
        wallet=tx_row.wallet_id,
        token=tx_row.token_id,
        kind=tx_row.kind,
        status=tx_row.status,
        amount=Decimal(tx_row.amount),
        price=tx_row.price_usd,
        timestamp=tx_row.timestamp,
    )


def refresh_held(world, believed):
    balances, _ = reference_balances(believed.values())
    world["held"] = {key: fields["amount"] for key, fields in balances.items()}


def make_world(data):
    chain = Chain.objects.create(slug="prop", name="Property chain")
    other_chain = Chain.objects.create(slug="prop-other", name="Another chain")
    wallets = [Wallet.objects.create(chain=chain, address=f"0xprop{i}") for i in range(2)]
    # A wallet elsewhere, with a balance no write of this example may touch.
    bystander = Wallet.objects.create(chain=other_chain, address="0xbystander")
    far_token = Token.objects.create(chain=other_chain, symbol="FAR", decimals=18)
    save_transaction(
        Transaction(
            wallet=bystander, token=far_token, kind="buy", amount=Decimal("7.5"), price_usd=Decimal(2), timestamp=START
        )
    )
    decimals = data.draw(st.lists(st.integers(min_value=0, max_value=18), min_size=1, max_size=2), label="decimals")
    tokens = [Token.objects.create(chain=chain, symbol=f"T{i}", decimals=d) for i, d in enumerate(decimals)]
    return {"wallets": [w.id for w in wallets], "tokens": tokens, "held": {}}


# --- The property ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("method", ["average", "fifo"])
@settings(  # examples per method: the profile's (tests/conftest.py)
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_histories_match_the_reference_ledger(method, settings_for_method, data):
    settings_for_method(method)
    # Arithmetic on amounts of 58 digits: the default 28-digit context would round them.
    with localcontext() as ctx, transaction.atomic():
        ctx.prec = 400
        world = make_world(data)
        bystander_balances = {k: v for k, v in stored_balances().items() if k[0] not in world["wallets"]}
        believed = {}  # id -> Tx: what the reference says the database holds
        steps = data.draw(st.integers(min_value=1, max_value=12), label="steps")
        for _ in range(steps):
            op = data.draw(st.sampled_from(["add", "add", "edit", "delete"]) if believed else st.just("add"))
            before = stored_state()
            if op == "add":
                fields = draw_fields(data, world)
                candidate = Transaction(**fields)
                # Its id will be larger than every id so far: a placeholder does for the ordering.
                proposed = {**believed, None: Tx(id=float("inf"), **_tx_fields(fields))}
                write = partial(save_transaction, candidate)
            elif op == "edit":
                target = draw_target(data, believed)
                fields = draw_fields(data, world)
                # Edit a few fields at a time; keep the others.
                kept = data.draw(st.sets(st.sampled_from(sorted(fields)), max_size=len(fields) - 1), label="kept")
                candidate = Transaction.objects.get(pk=target.id)
                for name, value in fields.items():
                    if name not in kept:
                        setattr(candidate, name, value)
                if Decimal(candidate.amount) != Decimal(candidate.amount).quantize(
                    Decimal(1).scaleb(-Token.objects.get(pk=candidate.token_id).decimals), rounding=ROUND_DOWN
                ):
                    candidate.amount = fields["amount"]  # kept an amount the new token can't hold
                    candidate.token_id = fields["token_id"]
                if candidate.price_usd is not None and candidate.amount >= 10**PRICED_DIGITS:
                    candidate.price_usd = None  # keep priced amounts within the size bounds above
                proposed = {**believed, target.id: as_reference(candidate)}
                write = partial(save_transaction, candidate)
            else:
                target = draw_target(data, believed)
                proposed = {k: v for k, v in believed.items() if k != target.id}
                write = partial(delete_transactions, Transaction.objects.filter(pk=target.id))

            expected, negatives = reference_balances(proposed.values(), method)
            event(f"{op} {'refused' if negatives else 'accepted'}")
            if not negatives:
                write()
                if op == "add":
                    proposed[candidate.pk] = replace(proposed.pop(None), id=candidate.pk)
                    expected, _ = reference_balances(proposed.values(), method)
                believed = proposed
                refresh_held(world, believed)
            else:
                with pytest.raises(LedgerError) as refused:
                    write()
                error = refused.value
                # It names a (wallet, token) that goes below zero and the transaction where it does;
                # an added transaction's id is one that was never committed.
                named = (error.wallet_id, error.token_id, error.transaction_id)
                if error.is_new_transaction:
                    assert op == "add" and proposed[None] in negatives and candidate.pk is None
                    named = (*named[:2], float("inf"))
                    assert "the new transaction" in str(error)
                else:
                    assert f"transaction {error.transaction_id} (" in str(error)
                assert named in {(t.wallet, t.token, t.id) for t in negatives}, (named, negatives)
                assert f"wallet {error.wallet_id} (" in str(error)
                assert Token.objects.get(pk=error.token_id).symbol in str(error)
                assert stored_state() == before, "a refused write changed something"
                expected, _ = reference_balances(believed.values(), method)

            stored = stored_balances()
            assert_same_balances({k: v for k, v in stored.items() if k[0] in world["wallets"]}, expected)
            assert {k: v for k, v in stored.items() if k[0] not in world["wallets"]} == bystander_balances

        # A repair finds nothing to repair: recalculation agrees with the incremental writes.
        for wallet_id in world["wallets"]:
            assert recalculate_wallet(wallet_id).status == "success"
        assert recalculate_all_wallets(batch_size=1).status == "success"
        expected, _ = reference_balances(believed.values(), method)
        assert_same_balances({k: v for k, v in stored_balances().items() if k[0] in world["wallets"]}, expected)
        transaction.set_rollback(True)


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("method", ["average", "fifo"])
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_priced_histories_match_the_reference_averages_and_pnl(method, settings_for_method, data):
    """Every example has priced acquisitions and priced disposals, so both averages and the PnL are
    exercised at full precision (the mixed histories above reach them less often)."""
    settings_for_method(method)
    with localcontext() as ctx, transaction.atomic():
        ctx.prec = 400
        chain = Chain.objects.create(slug="priced", name="Priced")
        wallet = Wallet.objects.create(chain=chain, address="0xpriced")
        decimals = data.draw(st.integers(min_value=0, max_value=18), label="decimals")
        token = Token.objects.create(chain=chain, symbol="PX", decimals=decimals)
        unit = Decimal(f"1e-{decimals}")
        buys = data.draw(st.lists(st.tuples(amounts(decimals, PRICED_DIGITS), prices), min_size=1, max_size=5))
        held = sum(a for a, _ in buys)
        sells = []
        for fraction in data.draw(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=4)):
            amount = (held * fraction / 10**6 / 4).quantize(unit, rounding=ROUND_DOWN)  # 4 sells <= held
            if amount > 0:
                sells.append((amount, data.draw(prices)))
        if not sells:
            sells = [(unit, data.draw(prices))]
        rows = [("buy", a, p) for a, p in buys] + [("sell", a, p) for a, p in sells]
        created = Transaction.objects.bulk_create(
            Transaction(wallet=wallet, token=token, kind=kind, amount=a, price_usd=p, timestamp=START + timedelta(i))
            for i, (kind, a, p) in enumerate(rows)
        )
        result = recalculate_wallet(wallet.id)
        assert result.status == "success", result.failures
        expected, negatives = reference_balances([as_reference(tx) for tx in created], method)
        assert negatives == []
        assert_same_balances(stored_balances(), expected)
        transaction.set_rollback(True)


def _tx_fields(fields):
    return {
        "wallet": fields["wallet_id"],
        "token": fields["token_id"],
        "kind": fields["kind"],
        "status": fields["status"],
        "amount": fields["amount"],
        "price": fields["price_usd"],
        "timestamp": fields["timestamp"],
    }


def test_the_reference_model_agrees_with_the_hand_computed_case():
    """The reference itself, on the case of tests/test_ledger.py (so a wrong reference can't pass)."""
    rows = [
        ("buy", "2", "100"),
        ("buy", "1", "130"),
        ("transfer_in", "0.5", None),
        ("sell", "1.5", "150"),
        ("transfer_out", "0.25", "90"),
    ]
    txs = [
        Tx(i, 1, 1, kind, "confirmed", Decimal(a), None if p is None else Decimal(p), START + timedelta(days=i))
        for i, (kind, a, p) in enumerate(rows)
    ]
    balances, negative = reference_balances(txs)
    assert negative == []
    assert balances[(1, 1)] == {
        "amount": Decimal("1.75"),
        "total_in": Decimal("3.5"),
        "total_out": Decimal("1.75"),
        "avg_buy_price_usd": Decimal("110"),
        "avg_sell_price_usd": Decimal("141.428571428571428571"),
        # C = 330 over 3.5 (the unpriced 0.5 at cost 0); the sell takes round(330 × 1.5 / 3.5)
        # = 141.428571428571428571, the transfer_out round(188.571428571428571429 × 0.25 / 2)
        # = 23.571428571428571429.
        "cost_basis_usd": Decimal("165.000000000000000000"),
        "avg_cost_usd": Decimal("94.285714285714285714"),
        "realized_pnl_usd": Decimal("83.571428571428571429"),
        "cost_basis_complete": False,
        "realized_pnl_complete": False,  # sold while units of unknown cost were held
        "cost_basis_method": "average",
    }
    # FIFO: the sell takes 1.5 of the 2 @100 (150), the transfer_out 0.25 more (25): 0.25 @100,
    # 1 @130 and the unknown 0.5 stay.
    fifo, _ = reference_balances(txs, "fifo")
    assert {k: fifo[(1, 1)][k] for k in ("cost_basis_usd", "realized_pnl_usd", "realized_pnl_complete")} == {
        "cost_basis_usd": Decimal(155),
        "realized_pnl_usd": Decimal(75),
        "realized_pnl_complete": True,
    }
    early_sell = Tx(99, 1, 1, "sell", "confirmed", Decimal("0.1"), None, START - timedelta(days=1))
    assert reference_balances([*txs, early_sell]) == (None, [early_sell])
