"""Operations endpoints: /health (for load balancers and container health checks) and /metrics
(Prometheus, not public: see METRICS_TOKEN and METRICS_ALLOWED_IPS in settings)."""

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from snapshots import metrics
from snapshots.services import monitoring

HEALTH_CHECKS = {
    "database": monitoring.check_database,
    "broker": monitoring.check_broker,
    "snapshots": monitoring.check_snapshots,
}


@never_cache
@require_GET
def health(request):
    """200 when every check passes, 503 otherwise; `?only=database,broker` narrows the checks.

    "snapshots" fails when an enabled period's newest snapshot is older than two periods. Anyone
    gets the status; the checks' details (server versions, queue length, what failed) only staff
    logged in to the admin and a caller bearing METRICS_TOKEN: they map the infrastructure."""
    wanted = [name for name in request.GET.get("only", "").split(",") if name] or list(HEALTH_CHECKS)
    unknown = sorted(set(wanted) - set(HEALTH_CHECKS))
    if unknown:
        return JsonResponse({"error": f"unknown check(s): {', '.join(unknown)}"}, status=400)
    checks = {name: HEALTH_CHECKS[name]() for name in wanted}
    ok = all(check.ok for check in checks.values())
    body = {"status": "ok" if ok else "error"}
    if health_details_allowed(request):
        body["checks"] = {name: c.as_dict() for name, c in checks.items()}
        # Never changes the status: how many numbers carry another cost-basis method (docs/ledger.md).
        body["details"] = {"cost_basis": monitoring.cost_basis_report().as_dict()}
    return JsonResponse(body, status=200 if ok else 503)


def bearer_token_ok(request):
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    return bool(
        token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode())
    )


def health_details_allowed(request):
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff) or bearer_token_ok(request)


def metrics_allowed(request):
    if bearer_token_ok(request):
        return True
    address = request.META.get("REMOTE_ADDR", "")
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(entry, strict=False) for entry in settings.METRICS_ALLOWED_IPS)


@never_cache
@require_GET
def prometheus_metrics(request):
    # 404, not 403: an endpoint that is not meant for the caller does not exist for them.
    if not metrics_allowed(request):
        raise Http404()
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)
