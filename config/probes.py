"""Health checks and Prometheus scrapes answer whatever Host header they bring.

An operator sets DJANGO_ALLOWED_HOSTS to the public name (`bags.example.com`), but the probes do not
use it: compose's health check asks `http://127.0.0.1:8000/health`, Prometheus scrapes the service
by its network name (`Host: web:8000`). Django would answer both with 400 DisallowedHost, so the
web container is never healthy and qcluster (`depends_on: web: service_healthy`) never starts.

Sending the "right" Host from each probe is fragile (the first allowed host may be a wildcard like
`.example.com`, Prometheus is configured elsewhere). Host validation protects what is built from
the Host header — absolute URLs, redirects, password-reset links, cached pages. /health and
/metrics build none and are never cached, so for exactly these two paths the raw Host is accepted;
every other request, the admin included, is still validated and a foreign Host is still a 400.

The rest of the middleware chain runs as usual (sessions and auth included, so staff can still be
recognised). A probe's error answer (503 while a dependency is down, 404 for an unauthorised
scrape) is the answer, not an incident: it is not logged at ERROR, so with SENTRY_DSN set a probe
every 15 s does not become an event every 15 s.
"""

PROBE_PATHS = frozenset({"/health", "/metrics"})


class ProbeHostMiddleware:
    """First in MIDDLEWARE: exempts GET/HEAD of PROBE_PATHS from ALLOWED_HOSTS, nothing else."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = request.path_info in PROBE_PATHS and request.method in ("GET", "HEAD")
        if probe:
            # An instance attribute shadows HttpRequest.get_host for this request only.
            request.get_host = request._get_raw_host
        response = self.get_response(request)
        if probe:
            response._has_been_logged = True  # django.utils.log.log_response skips it
        return response
