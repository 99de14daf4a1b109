"""What each operator page and action needs, beyond being staff (README "Security", the table;
tests/test_admin_permissions.py checks every admin URL and action against it).

Model pages and actions follow Django's own permissions (view, add, change, delete of the model);
the console's pages, which read or act across models, need these:
"""

# A wallet's portfolio page: the wallet, and its snapshots.
PORTFOLIO = ("bagtracker.view_wallet", "snapshots.view_balancesnapshot")
# The overview: the fleet's value (snapshots) and every job's health (schedules, last errors).
OVERVIEW = ("snapshots.view_balancesnapshot", "django_q.view_schedule")
# Backfill a wallet's snapshots (form) and recalculate wallets (action): change the wallet.
BACKFILL = ("bagtracker.change_wallet",)


def can(request, permissions):
    return request.user.is_active and request.user.is_staff and request.user.has_perms(permissions)
