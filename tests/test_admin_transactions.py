"""The admin, through Django's test client as a superuser: transactions keep balances current,
a change that would drive a running amount negative is refused with the reason, and every model
has a working changelist with search and filters."""

import re
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from bagtracker.models import Chain, Price, Token, Transaction, Wallet
from snapshots.models import Balance
from tests.conftest import utc

D = Decimal


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # admin_client creates a superuser per test; the production hasher costs ~0.4 s each time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def form_data(tx=None, **fields):
    """The POST of the transaction form: the fields of ``tx`` (if any) with ``fields`` over them."""
    data = {}
    if tx is not None:
        data = {
            "wallet": tx.wallet_id,
            "token": tx.token_id,
            "kind": tx.kind,
            "status": tx.status,
            "amount": tx.amount,
            "price_usd": "" if tx.price_usd is None else tx.price_usd,
            "at": tx.timestamp,
            "tx_hash": tx.tx_hash or "",
        }
    data.update(fields)
    at = data.pop("at", utc(2026, 1, 1))
    data["timestamp_0"], data["timestamp_1"] = at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S")
    data.setdefault("status", "confirmed")
    data.setdefault("price_usd", "")
    data.setdefault("tx_hash", "")
    data["_save"] = "Save"
    return data


def state():
    return list(Transaction.objects.order_by("id").values()), list(Balance.objects.order_by("id").values())


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_errors(response):
    return [str(e) for e in response.context["adminform"].form.non_field_errors()]


ADD_URL = reverse("admin:bagtracker_transaction_add")
CHANGELIST_URL = reverse("admin:bagtracker_transaction_changelist")


def change_url(tx):
    return reverse("admin:bagtracker_transaction_change", args=[tx.pk])


def delete_url(tx):
    return reverse("admin:bagtracker_transaction_delete", args=[tx.pk])


# --- Add, edit, delete keep balances current ------------------------------------------------------


def test_adding_a_transaction_updates_the_balance(admin_client, wallet, token):
    response = admin_client.post(
        ADD_URL, form_data(wallet=wallet.pk, token=token.pk, kind="buy", amount="1.5", price_usd="2000")
    )
    assert response.status_code == 302, form_errors(response)
    b = Balance.objects.get(wallet=wallet, token=token)
    assert (b.amount, b.total_in, b.avg_buy_price_usd) == (D("1.5"), D("1.5"), D(2000))


def test_editing_a_transaction_updates_the_balance(admin_client, make_tx, wallet, token):
    buy = make_tx("buy", "1", price="100")
    response = admin_client.post(change_url(buy), form_data(buy, amount="4", price_usd="250"))
    assert response.status_code == 302, form_errors(response)
    b = Balance.objects.get(wallet=wallet, token=token)
    assert (b.amount, b.avg_buy_price_usd) == (D(4), D(250))


def test_editing_a_transaction_to_pending_removes_its_balance(admin_client, make_tx, wallet, token):
    buy = make_tx("buy", "1")
    response = admin_client.post(change_url(buy), form_data(buy, status="pending"))
    assert response.status_code == 302, form_errors(response)
    assert not Balance.objects.exists()


def test_deleting_a_transaction_updates_the_balance(admin_client, make_tx, wallet, token):
    make_tx("buy", "3", at=utc(2026, 1, 1))
    second = make_tx("buy", "2", at=utc(2026, 1, 2))
    response = admin_client.post(delete_url(second), {"post": "yes"})
    assert response.status_code == 302
    assert Balance.objects.get(wallet=wallet, token=token).amount == 3


def test_deleting_the_last_transaction_removes_the_balance(admin_client, make_tx):
    buy = make_tx("buy", "1")
    admin_client.post(delete_url(buy), {"post": "yes"})
    assert not Transaction.objects.exists()
    assert not Balance.objects.exists()


# --- Refusals: the reason on screen, nothing changed ----------------------------------------------


def test_an_add_that_would_go_negative_is_refused_with_the_reason(admin_client, make_tx, wallet, token):
    make_tx("buy", "1", at=utc(2026, 1, 2))
    before = state()
    response = admin_client.post(
        ADD_URL, form_data(wallet=wallet.pk, token=token.pk, kind="sell", amount="1", at=utc(2026, 1, 1))
    )
    assert response.status_code == 200
    [error] = form_errors(response)
    assert error == (
        f"wallet {wallet.pk} ({wallet.address} on ethereum), ETH: the new transaction (sell of 1 at "
        "2026-01-01T00:00:00+00:00) would make the running amount negative (-1)"
    )
    assert state() == before


def test_an_edit_that_would_go_negative_is_refused_naming_the_transaction(admin_client, make_tx, wallet):
    buy = make_tx("buy", "1", at=utc(2026, 1, 1))
    sell = make_tx("sell", "0.75", at=utc(2026, 1, 2))
    before = state()
    response = admin_client.post(change_url(buy), form_data(buy, amount="0.5"))
    assert response.status_code == 200
    [error] = form_errors(response)
    assert f"wallet {wallet.pk} (" in error and ", ETH: " in error
    assert f"transaction {sell.pk} (sell of 0.75 at 2026-01-02T00:00:00+00:00)" in error
    assert error.endswith("would make the running amount negative (-0.25)")
    assert state() == before


def test_a_price_that_would_overflow_the_realized_pnl_is_a_form_error(admin_client, make_tx, wallet, token):
    make_tx("buy", "1000000000", price="0", at=utc(2026, 1, 1))
    before = state()
    response = admin_client.post(
        ADD_URL,
        form_data(wallet=wallet.pk, token=token.pk, kind="sell", amount="1000000000", price_usd="1000000000000"),
    )
    assert response.status_code == 200
    [error] = form_errors(response)
    assert error.startswith(f"wallet {wallet.pk}: a balance would not fit its column")
    assert state() == before


def test_deleting_the_buy_under_a_sell_is_refused_with_the_reason(admin_client, make_tx, wallet):
    buy = make_tx("buy", "1", at=utc(2026, 1, 1))
    sell = make_tx("sell", "1", at=utc(2026, 1, 2))
    before = state()
    response = admin_client.post(delete_url(buy), {"post": "yes"})
    assert response.status_code == 302 and response.url == change_url(buy)
    [message] = messages_of(response)
    assert message.startswith(f"Not deleted: wallet {wallet.pk} (")
    assert f"transaction {sell.pk} (sell of 1 at" in message
    assert state() == before


def confirm_bulk_delete(client, transactions):
    """What a browser does: choose the action, then post the confirmation page's own form."""
    selected = [tx.pk for tx in transactions]
    page = client.post(CHANGELIST_URL, {"action": "delete_selected", "_selected_action": selected})
    assert page.status_code == 200 and "Are you sure" in page.content.decode()
    action = re.search(r'name="action" value="([^"]+)"', page.content.decode()).group(1)
    return client.post(CHANGELIST_URL, {"action": action, "_selected_action": selected, "post": "yes"})


def test_bulk_delete_updates_balances(admin_client, make_tx, wallet, token):
    keep = make_tx("buy", "5", at=utc(2026, 1, 1))
    drop = [make_tx("buy", "1", at=utc(2026, 1, 2)), make_tx("sell", "2", at=utc(2026, 1, 3))]
    choices = admin_client.get(CHANGELIST_URL).context["action_form"].fields["action"].choices
    assert [c for c in choices if "delete" in c[0]] == [
        ("delete_selected", "Delete selected transactions (balances are updated)")
    ]
    response = confirm_bulk_delete(admin_client, drop)
    assert response.status_code == 302
    assert messages_of(response) == ["Successfully deleted 2 transactions."]
    assert list(Transaction.objects.values_list("pk", flat=True)) == [keep.pk]
    assert Balance.objects.get(wallet=wallet, token=token).amount == 5


def test_bulk_delete_of_the_buy_under_a_sell_is_refused(admin_client, make_tx, make_wallet, token):
    other = make_wallet()
    buy = make_tx("buy", "1", at=utc(2026, 1, 1))
    sell = make_tx("sell", "1", at=utc(2026, 1, 2))
    elsewhere = make_tx("buy", "7", on_wallet=other)
    before = state()
    response = confirm_bulk_delete(admin_client, [buy, elsewhere])
    [message] = messages_of(response)
    assert message.startswith("Nothing was deleted: wallet ")
    assert f"transaction {sell.pk} (sell of 1 at" in message
    assert state() == before


# --- The model's own rules are form errors, not server errors -------------------------------------


def test_a_token_of_another_chain_is_a_form_error(admin_client, make_token, wallet):
    solana = Chain.objects.create(slug="solana", name="Solana")
    sol = make_token("SOL", on_chain=solana)
    response = admin_client.post(ADD_URL, form_data(wallet=wallet.pk, token=sol.pk, kind="buy", amount="1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["token"] == ["SOL is on solana, the wallet on ethereum"]
    assert not Transaction.objects.exists()


def test_more_places_than_the_token_allows_is_a_form_error(admin_client, make_token, wallet):
    usdc = make_token("USDC", decimals=6)
    response = admin_client.post(ADD_URL, form_data(wallet=wallet.pk, token=usdc.pk, kind="buy", amount="1.0000001"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["amount"] == ["USDC allows at most 6 decimal places"]
    assert not Transaction.objects.exists()


def test_shrinking_token_decimals_below_stored_amounts_is_a_form_error(admin_client, make_token, make_tx):
    usdc = make_token("USDC", decimals=6)
    make_tx("buy", "1.25", of_token=usdc)
    url = reverse("admin:bagtracker_token_change", args=[usdc.pk])
    fields = {"chain": usdc.chain_id, "symbol": "USDC", "name": "", "contract_address": "", "_save": "Save"}
    response = admin_client.post(url, {**fields, "decimals": 1})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["decimals"] == [
        "USDC has transaction amounts with more than 1 decimal places; the fewest it can have is 2"
    ]
    usdc.refresh_from_db()
    assert usdc.decimals == 6
    assert admin_client.post(url, {**fields, "decimals": 2}).status_code == 302
    usdc.refresh_from_db()
    assert usdc.decimals == 2


def test_moving_a_token_with_transactions_to_another_chain_is_a_form_error(admin_client, make_tx, token):
    make_tx("buy", "1")
    solana = Chain.objects.create(slug="solana", name="Solana")
    url = reverse("admin:bagtracker_token_change", args=[token.pk])
    fields = {"chain": solana.pk, "symbol": "ETH", "name": "", "contract_address": "", "decimals": 18, "_save": "Save"}
    response = admin_client.post(url, fields)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["chain"] == ["ETH has transactions; its chain cannot change"]
    token.refresh_from_db()
    assert token.chain.slug == "ethereum"


def test_moving_a_wallet_with_transactions_to_another_chain_is_a_form_error(admin_client, make_tx, wallet):
    make_tx("buy", "1")
    solana = Chain.objects.create(slug="solana", name="Solana")
    url = reverse("admin:bagtracker_wallet_change", args=[wallet.pk])
    fields = {"chain": solana.pk, "address": wallet.address, "name": "main", "is_active": "on", "_save": "Save"}
    response = admin_client.post(url, fields)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["chain"] == [
        f"wallet {wallet.pk} has transactions; its chain cannot change"
    ]
    wallet.refresh_from_db()
    assert wallet.chain.slug == "ethereum"


# --- Every model in the admin ---------------------------------------------------------------------


@pytest.fixture
def portfolio(make_tx, make_price, wallet, token):
    make_tx("buy", "2", price="1000", at=utc(2026, 1, 1), tx_hash="0xfeed")
    make_tx("sell", "1", price="1200", at=utc(2026, 1, 2))
    make_price("1100", utc(2026, 1, 1))
    return {"chain": token.chain, "token": token, "wallet": wallet}


@pytest.mark.parametrize(
    "model, query",
    [
        ("chain", {"q": "ether"}),
        ("token", {"q": "ETH", "chain__id__exact": "{chain}", "decimals": "18"}),
        ("wallet", {"q": "main", "chain__id__exact": "{chain}", "is_active__exact": "1"}),
        ("wallet", {"q": "{wallet}"}),
        (
            "transaction",
            {
                "q": "0xfeed",
                "kind__exact": "buy",
                "status__exact": "confirmed",
                "token__chain__id__exact": "{chain}",
                "token__id__exact": "{token}",
                "timestamp__year": "2026",
            },
        ),
        ("price", {"q": "ETH", "source__exact": "test", "token__chain__id__exact": "{chain}", "as_of__year": "2026"}),
        ("balance", {"q": "main", "token__chain__id__exact": "{chain}", "token__id__exact": "{token}"}),
        ("balance", {"q": "{wallet}"}),
    ],
)
def test_every_changelist_loads_with_search_and_filters(admin_client, portfolio, model, query):
    app = "snapshots" if model == "balance" else "bagtracker"
    url = reverse(f"admin:{app}_{model}_changelist")
    ids = {name: obj.pk for name, obj in portfolio.items()}
    assert admin_client.get(url).status_code == 200
    response = admin_client.get(url, {k: v.format(**ids) for k, v in query.items()})
    assert response.status_code == 200  # an unknown filter would redirect with ?e=1
    assert response.context["cl"].result_count == 1


def test_every_add_and_change_form_loads(admin_client, portfolio):
    for model, obj in [
        (Chain, portfolio["chain"]),
        (Token, portfolio["token"]),
        (Wallet, portfolio["wallet"]),
        (Transaction, Transaction.objects.first()),
        (Price, Price.objects.first()),
    ]:
        name = model._meta.model_name
        assert admin_client.get(reverse(f"admin:bagtracker_{name}_add")).status_code == 200
        assert admin_client.get(reverse(f"admin:bagtracker_{name}_change", args=[obj.pk])).status_code == 200
    # The delete confirmation of a transaction (what precedes the post) renders too.
    assert admin_client.get(delete_url(Transaction.objects.first())).status_code == 200


def test_balances_are_read_only(admin_client, portfolio):
    balance = Balance.objects.get()
    before = state()
    change = reverse("admin:snapshots_balance_change", args=[balance.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(change, {"amount": "999"}).status_code == 403
    assert admin_client.get(reverse("admin:snapshots_balance_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:snapshots_balance_delete", args=[balance.pk]), {"post": "yes"}).status_code
        == 403
    )
    changelist = admin_client.get(reverse("admin:snapshots_balance_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    assert state() == before


def test_the_admin_requires_a_login(client, db):
    for url in [reverse("admin:index"), CHANGELIST_URL, ADD_URL, reverse("admin:snapshots_balance_changelist")]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))
    assert client.post(ADD_URL, form_data(kind="buy", amount="1")).status_code == 302
    assert not Transaction.objects.exists()
