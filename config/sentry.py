"""Optional error reporting to Sentry, switched on by SENTRY_DSN.

The Django integration reports unhandled errors of web requests; the logging integration (on by
default) turns every ERROR log line into an event, which covers the job cluster: django-q2's
monitor logs each failed task at ERROR ("Failed 'snapshots.tasks.…' - <error>"), and so do our
tasks for a wallet that could not be recalculated.
"""

from django.core.exceptions import ImproperlyConfigured


def init_sentry(dsn, environment):
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.django import DjangoIntegration
    except ImportError:  # pragma: no cover - sentry-sdk is in requirements.txt
        raise ImproperlyConfigured("SENTRY_DSN is set but sentry-sdk is not installed") from None
    try:
        sentry_sdk.init(
            dsn=dsn,
            environment=environment,
            integrations=[DjangoIntegration()],
            traces_sample_rate=0.0,
        )
    except Exception as error:  # sentry_sdk raises BadDsn for a malformed value
        raise ImproperlyConfigured(f"SENTRY_DSN is not a valid Sentry DSN: {error}") from None
    return True
