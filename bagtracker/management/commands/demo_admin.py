from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from command_line import BaseCommand

USERNAME, PASSWORD = "admin", "admin"


class Command(BaseCommand):
    help = "Local only (DEBUG): create the demo superuser admin/admin if no user exists; print the login."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_admin refuses to run with DEBUG off: create users with createsuperuser")
        User = get_user_model()
        if not User.objects.exists():
            User.objects.create_superuser(USERNAME, "admin@localhost", PASSWORD)
            self.stdout.write(f"{USERNAME} / {PASSWORD}")
        elif User.objects.filter(username=USERNAME).exists():
            self.stdout.write(f"{USERNAME} / (the password you set; the demo one was {PASSWORD})")
        else:
            self.stdout.write("an existing superuser (this database already had users)")
