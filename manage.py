#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    if sys.argv[1:2] == ["embedded_db"]:
        # Its status and stop report on the embedded servers; loading the settings must not start them.
        os.environ["BAGTRACKER_START_EMBEDDED"] = "0"
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A misconfigured environment (BALANCE_HOURLY_RETENTION_DAYS=abc, no DJANGO_SECRET_KEY…) is
        # an operator's error: one line naming the variable, not a traceback through importlib.
        if "--traceback" in sys.argv:
            raise
        sys.stderr.write(f"ImproperlyConfigured: {error}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
