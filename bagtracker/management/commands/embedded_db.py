from django.conf import settings
from django.core.management.base import CommandError

from command_line import BaseCommand
from config import embedded_postgres


class Command(BaseCommand):
    help = "Status or stop of the embedded PostgreSQL (the default when DATABASE_URL is unset)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action, **options):
        if not settings.EMBEDDED_DATABASE:
            raise CommandError("DATABASE_URL is set: there is no embedded PostgreSQL to manage")
        directory = embedded_postgres.data_dir(settings.BASE_DIR)
        if action == "status":
            self.stdout.write(
                f"embedded PostgreSQL running in {directory} (socket {settings.DATABASES['default']['HOST']})"
            )
            return
        from django.db import connections

        connections.close_all()
        stopped = embedded_postgres.stop(settings.BASE_DIR)
        self.stdout.write(f"embedded PostgreSQL in {directory} " + ("stopped" if stopped else "was not running"))
