from django.conf import settings
from django.core.management.base import CommandError

from command_line import BaseCommand
from config import embedded_postgres, embedded_redis


class Command(BaseCommand):
    help = (
        "Status or stop of the embedded servers: PostgreSQL (without DATABASE_URL) and the Redis-compatible "
        "broker (without REDIS_URL / REDIS_HOST). Neither action starts them."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action, **options):
        database = getattr(settings, "EMBEDDED_DATABASE", False)
        broker = getattr(settings, "EMBEDDED_BROKER", False)
        if not (database or broker):
            raise CommandError("DATABASE_URL and a Redis are set: there is no embedded server to manage")
        directory = settings.DATA_DIR
        if action == "stop":
            from django.db import connections

            connections.close_all()
        for name, managed, running, stop, where in (
            (
                "PostgreSQL",
                database,
                lambda: embedded_postgres.running(directory) is not None,
                lambda: embedded_postgres.stop(directory),
                lambda: f"socket in {settings.DATABASES['default']['HOST']}",
            ),
            (
                "Redis-compatible broker (Valkey)",
                broker,
                lambda: embedded_redis.answers(directory),
                lambda: embedded_redis.stop(directory),
                lambda: f"socket {embedded_redis.socket_path(directory)}",
            ),
        ):
            if not managed:
                continue
            if action == "status":
                state = f"running ({where()})" if running() else "stopped"
            else:
                state = "stopped" if stop() else "was not running"
            self.stdout.write(f"embedded {name} in {directory}: {state}")
