"""Least privilege (issue 11, item 2): every admin URL the URL resolver knows and every action the
admin registers, tried by an anonymous visitor, a user who is not staff (holding every
permission), staff without permissions, view-only staff and a superuser — GET, and the POST that
would perform it. Refused means refused and nothing written. A page or action added later that
is not in the tables below fails the test until it is added here and to README "Security"."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_q.brokers.orm import ORM as OrmBroker
from django_q.models import Failure, OrmQ, Schedule, Success
from django_q.tasks import async_task
from psycopg import sql

from snapshots.models import BalanceSnapshot, SnapshotRun
from snapshots.tasks import create_daily_snapshots
from tests.conftest import utc
from tests.jobs_support import queued_payloads

pytestmark = pytest.mark.django_db

# --- The table (README "Security") ----------------------------------------------------------------
# The console's pages: the permissions they need, all of them.
PAGES = {
    "overview": {"snapshots.view_balancesnapshot", "django_q.view_schedule"},
    "bagtracker_wallet_portfolio": {"bagtracker.view_wallet", "snapshots.view_balancesnapshot"},
    "bagtracker_wallet_backfill": {"bagtracker.change_wallet"},
    "auth_user_password_change": {"auth.change_user"},
    "autocomplete": {"bagtracker.view_wallet"},  # asked for the transaction form's wallet field
}
# The actions: the permissions any one of which allows it.
ACTIONS = {
    ("django_q", "schedule", "run_now"): {"django_q.change_schedule"},
    ("django_q", "schedule", "pause"): {"django_q.change_schedule"},
    ("django_q", "schedule", "resume"): {"django_q.change_schedule"},
    ("django_q", "failure", "resubmit_failures"): {"django_q.change_failure", "django_q.delete_failure"},
    ("django_q", "success", "resubmit_successes"): {"django_q.change_success"},
    ("bagtracker", "wallet", "recalculate_selected_wallets"): {"bagtracker.change_wallet"},
}
# Django's own model pages: the model permission they need.
MODEL_PAGES = {"changelist": "view", "change": "view", "history": "view", "add": "add", "delete": "delete"}
STAFF_PAGES = {"index", "password_change", "password_change_done", "jsi18n"}  # any staff user
NOT_CHECKED = {"login", "logout", "view_on_site"}  # the login itself; logout; Django's public redirect

ROLES = ["anonymous", "member", "staff", "viewer", "superuser"]


@pytest.fixture
def objects(make_tx, make_price, wallet, token):
    """One object of every model the admin shows."""
    make_tx("buy", "2", price="10", at=utc(2026, 1, 1))
    make_price("11", utc(2026, 1, 2))
    create_daily_snapshots(at=utc(2026, 1, 3).isoformat())
    assert BalanceSnapshot.objects.exists() and SnapshotRun.objects.exists()
    now = timezone.now()
    task = {"func": "snapshots.tasks.cleanup_old_snapshots", "started": now, "stopped": now}
    Success.objects.create(id="a" * 32, name="ok", success=True, result={"status": "success"}, **task)
    Failure.objects.create(id="b" * 32, name="failed", success=False, result="boom", **task)
    async_task("snapshots.tasks.cleanup_old_snapshots", broker=OrmBroker())  # an OrmQ row (admin "Queued tasks")
    Group.objects.create(name="operators")


@pytest.fixture
def users(objects):
    User = get_user_model()
    everything = Permission.objects.all()
    member = User.objects.create_user("member")  # every permission, but not staff
    member.user_permissions.set(everything)
    User.objects.create_user("staff", is_staff=True)
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.set(everything.filter(codename__startswith="view_"))
    User.objects.create_superuser("superuser")
    missing = [model for model in admin.site._registry if not model.objects.exists()]
    assert not missing, f"add an object of {missing} to the fixture"
    return {name: None if name == "anonymous" else User.objects.get(username=name) for name in ROLES}


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def fingerprint():
    """A digest of every table but the sessions, and the length of the run's Redis queue (where the
    admin queues jobs): equal before and after means nothing was written."""
    tables = sorted({model._meta.db_table for model in apps.get_models()} - {"django_session"})
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL(
            "SELECT {name}, md5(coalesce(string_agg(row::text, '|' ORDER BY row::text), '')) FROM {table} row"
        ).format(name=sql.Literal(table), table=sql.Identifier(table))
        for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(query.as_string(connection.connection))
        return {**dict(cursor.fetchall()), "(queued tasks)": len(queued_payloads())}


# --- Every admin URL, from the resolver -----------------------------------------------------------


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def admin_patterns():
    [site] = [p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and p.namespace == "admin"]
    return list(_walk(site.url_patterns))


def _model_of(name):
    for model in admin.site._registry:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if name and name.startswith(prefix) and name[len(prefix) :] in MODEL_PAGES:
            return model, name[len(prefix) :]
    return None, None


def admin_urls():
    """(url, label, requirement) for every admin URL; requirement is a set of permissions, "staff",
    "app:<label>", "nobody", or a (model, kind) pair for Django's model pages."""
    urls = []
    for route, name in admin_patterns():
        model, kind = _model_of(name)
        if name in NOT_CHECKED:
            continue
        if model is not None:
            args = [] if kind in ("changelist", "add") else [model.objects.order_by("pk").first().pk]
            urls.append((reverse(f"admin:{name}", args=args), name, (model, kind)))
        elif name in PAGES:
            if name == "autocomplete":
                url = reverse("admin:autocomplete") + "?app_label=bagtracker&model_name=transaction&field_name=wallet"
            elif name == "overview":
                url = reverse("admin:overview")
            else:
                model = get_user_model() if name.startswith("auth_user") else apps.get_model("bagtracker", "wallet")
                url = reverse(f"admin:{name}", args=[model.objects.order_by("pk").first().pk])
            urls.append((url, name, PAGES[name]))
        elif name in STAFF_PAGES:
            urls.append((reverse(f"admin:{name}"), name, "staff"))
        elif name == "app_list":
            for label in {model._meta.app_label for model in admin.site._registry}:
                urls.append((reverse("admin:app_list", args=[label]), f"app_list {label}", f"app:{label}"))
        elif name is None and route.endswith("<path:object_id>/"):
            model = next(
                m for m in admin.site._registry if route.startswith(f"{m._meta.app_label}/{m._meta.model_name}/")
            )
            pk = model.objects.order_by("pk").first().pk
            urls.append((f"/admin/{model._meta.app_label}/{model._meta.model_name}/{pk}/", route, "staff"))
        elif name is None and route.endswith("(?P<url>.*)$"):
            urls.append(("/admin/no-such-page/", "catch-all", "nobody"))
        else:
            pytest.fail(f"admin URL {route} ({name}) is in no table: add what it needs here and to README 'Security'")
    return urls


_factory = RequestFactory()


def may(user, requirement):
    """Whether the user may open a page with this requirement (None: anonymous)."""
    if user is None or not (user.is_active and user.is_staff):
        return False
    if requirement == "staff":
        return True
    if requirement == "nobody":
        return False
    if isinstance(requirement, str) and requirement.startswith("app:"):
        return user.has_module_perms(requirement[4:])
    if isinstance(requirement, tuple):
        model, kind = requirement
        perm = MODEL_PAGES[kind]
        request = _factory.get("/")
        request.user = user
        model_admin = admin.site._registry[model]
        if perm == "view":
            return model_admin.has_view_or_change_permission(request)
        return getattr(model_admin, f"has_{perm}_permission")(request)
    return user.has_perms(requirement)


def assert_refused(response, user, url):
    if user is None or not user.is_staff:
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login")), url
    else:
        assert response.status_code in (403, 404, 405), (url, response.status_code)


def test_every_admin_url_answers_only_those_the_table_allows(users):
    urls = admin_urls()
    assert len(urls) > 60  # every registered model's pages, the console's, the site's
    backfill = {"period": "daily", "since": "2026-01-01", "until": "2026-01-02", "confirmed": "yes"}
    for role, user in users.items():
        client = client_for(user)
        before = fingerprint()
        for url, label, requirement in urls:
            response = client.get(url)
            if may(user, requirement):
                assert response.status_code in (200, 302), (role, label, response.status_code)
                if response.status_code == 302:
                    assert not response.url.startswith(reverse("admin:login")), (role, label)
                continue
            assert_refused(response, user, (role, label))
            response = client.post(url, backfill if "backfill" in label else {"post": "yes", "confirmed": "yes"})
            assert_refused(response, user, (role, label, "POST"))
        assert fingerprint() == before, f"a refused POST of {role} wrote something"


# --- Every registered action ----------------------------------------------------------------------


def registered_actions():
    """(model, action name, the permissions any one of which allows it) for every admin action."""
    found = []
    for model, model_admin in admin.site._registry.items():
        key = (model._meta.app_label, model._meta.model_name)
        for func, name, _ in model_admin._get_base_actions():
            if name == "delete_selected":
                needed = {f"{key[0]}.delete_{key[1]}"}
            else:
                needed = ACTIONS.get((*key, name))
                assert needed is not None, f"action {name} of {key} is in no table: add it here and to README"
                declared = {f"{key[0]}.{perm}_{key[1]}" for perm in getattr(func, "allowed_permissions", ())}
                assert declared == needed, f"action {name} of {key} declares {declared}, the table says {needed}"
            found.append((model, name, needed))
    return found


def run_action(client, model, name):
    """POST the action on the model's first object, confirmed; return whether anything was written.
    Rolled back afterwards, so each attempt starts from the same data."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    selected = model.objects.order_by("pk").first().pk
    data = {"action": name, "_selected_action": [selected], "confirmed": "yes", "post": "yes"}
    if model is Schedule and name == "resume":
        Schedule.objects.filter(pk=selected).update(next_run=None)
    savepoint = transaction.savepoint()
    try:
        before = fingerprint()
        client.post(url, data)
        return fingerprint() != before
    finally:
        transaction.savepoint_rollback(savepoint)


def test_every_action_is_refused_without_its_permission_and_does_its_work_with_it(users):
    actions = registered_actions()
    assert {name for _, name, _ in actions} >= {name for _, _, name in ACTIONS}
    User = get_user_model()
    for model, name, needed in actions:
        for role, user in users.items():
            wrote = run_action(client_for(user), model, name)
            allowed = user is not None and user.is_staff and any(user.has_perm(p) for p in needed)
            model_admin = admin.site._registry[model]
            if name == "delete_selected" and not model_admin.has_delete_permission(_request(users["superuser"])):
                allowed = False  # a read-only admin offers no delete to anyone
            if user is not None and user.is_staff:  # (the others never reach a changelist)
                offered = name in model_admin.get_actions(_request(user))
                assert offered == allowed, (model.__name__, name, role, "offered" if offered else "not offered")
            if not allowed:
                assert not wrote, (model.__name__, name, role, "wrote")
            elif name != "delete_selected":  # (deleting may be refused for related rows; offered is enough)
                assert wrote, (model.__name__, name, role, "did nothing")

        if name == "delete_selected":
            continue
        # Staff with exactly the table's permission (and the view permission to reach the list) may.
        for permission in needed:
            holder = User.objects.create_user(f"holder-{name}-{permission}", is_staff=True)
            view = f"view_{model._meta.model_name}"
            holder.user_permissions.set(
                Permission.objects.filter(
                    codename__in=[view, permission.split(".")[1]], content_type__app_label=model._meta.app_label
                )
            )
            holder = User.objects.get(pk=holder.pk)
            assert run_action(client_for(holder), model, name), (model.__name__, name, permission)


def queued_count():
    """Tasks waiting on either broker: the run's Redis (what the admin queues on) and the ORM's table."""
    return OrmQ.objects.count() + len(queued_payloads())


def _request(user):
    request = _factory.get("/")
    request.user = user
    return request


def test_view_only_staff_cannot_run_pause_resume_or_resubmit(users, client):
    """The cases the issue found: each a 302 back to the list, and nothing queued or changed."""
    client.force_login(users["viewer"])
    hourly = Schedule.objects.get(name="hourly_balance_snapshots")
    queued = queued_count()
    for action in ("run_now", "pause"):
        client.post(
            reverse("admin:django_q_schedule_changelist"),
            {"action": action, "_selected_action": [hourly.pk], "confirmed": "yes"},
        )
    assert queued_count() == queued
    assert Schedule.objects.get(pk=hourly.pk).next_run == hourly.next_run
    client.post(
        reverse("admin:django_q_failure_changelist"), {"action": "resubmit_failures", "_selected_action": ["b" * 32]}
    )
    assert Failure.objects.filter(pk="b" * 32).exists() and queued_count() == queued


def test_staff_without_permissions_sees_no_console_links_and_no_overview(users, client):
    client.force_login(users["staff"])
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:overview") not in index and "console-module" not in index
    assert client.get(reverse("admin:overview")).status_code == 403
    client.force_login(users["viewer"])
    assert reverse("admin:overview") in client.get(reverse("admin:index")).content.decode()


def test_a_resubmitted_failure_naming_a_refused_function_is_not_queued(users, client):
    now = timezone.now() - timedelta(minutes=1)
    Failure.objects.create(
        id="c" * 32, name="evil", func="os.system", args=("id",), started=now, stopped=now, success=False
    )
    queued = queued_count()
    client.force_login(users["superuser"])
    response = client.post(
        reverse("admin:django_q_failure_changelist"),
        {"action": "resubmit_failures", "_selected_action": ["c" * 32]},
        follow=True,
    )
    assert "Not resubmitted: evil: function &#x27;os.system&#x27; is not allowed" in response.content.decode()
    assert queued_count() == queued and Failure.objects.filter(pk="c" * 32).exists()


def test_a_wallet_is_deleted_with_its_derived_rows_by_whoever_may_delete_wallets_and_transactions(users, wallet):
    """Balances, summaries and snapshot rows are read-only to everyone in the admin: they go with
    their wallet instead of stopping its deletion ("Cannot delete wallet … balance")."""
    url = reverse("admin:bagtracker_wallet_delete", args=[wallet.pk])
    clerk = get_user_model().objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.set(
        Permission.objects.filter(codename__in=["view_wallet", "delete_wallet", "view_transaction"])
    )
    for user in (users["viewer"], clerk):  # no delete_wallet; no delete_transaction for its transaction
        page = client_for(user).get(url)
        assert page.status_code == 403 or "Cannot delete wallet" in page.content.decode(), user
        client_for(user).post(url, {"post": "yes"})
        assert type(wallet).objects.filter(pk=wallet.pk).exists()

    superuser = client_for(users["superuser"])
    assert "Are you sure" in superuser.get(url).content.decode()
    assert superuser.post(url, {"post": "yes"}).status_code == 302
    assert not type(wallet).objects.filter(pk=wallet.pk).exists()
    assert not BalanceSnapshot.objects.filter(wallet_id=wallet.pk).exists()
    with connection.cursor() as cursor:
        for table in ("snapshots_balance", "snapshots_walletsnapshot", "snapshots_balancestate"):
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE wallet_id = %s").format(sql.Identifier(table)), [wallet.pk]
            )
            assert cursor.fetchone()[0] == 0, table
