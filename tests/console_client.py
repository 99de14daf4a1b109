"""Drive the console and the commands from a process of their own, configured by its environment
(DATABASE_URL, DATABASE_REPLICA_URL, …) like the web server: requests go through Django's whole
middleware stack with a browser's cookies, logged in as USER (commands need no login). Used by
tests/test_e2e_replica.py.

    python -m tests.console_client '[["get", "/admin/overview/"], ["post", "/admin/…", {"name": "x"}],
        ["command", "export_balances", "--format", "json"]]'

Prints a JSON list, one entry per step: a page's status and <h1>, or a command's output.
"""

import io
import json
import os
import re
import sys

USER = "admin"


def main(steps):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    browser = None
    results = []
    for kind, *args in steps:
        if kind == "command":
            out = io.StringIO()
            call_command(*args, stdout=out)
            results.append({"output": out.getvalue()})
            continue
        if browser is None:
            browser = Client(HTTP_HOST="localhost")
            browser.force_login(get_user_model().objects.get(username=USER))
        response = browser.get(args[0]) if kind == "get" else browser.post(args[0], args[1])
        page = response.content.decode()
        heading = re.search(r"<h1>(.*?)</h1>", page, re.DOTALL)
        results.append({"status": response.status_code, "h1": heading and heading.group(1).strip()})
    print(json.dumps(results))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
