"""Signals the domain sends; other apps listen (the domain imports nothing from them for this)."""

from django.dispatch import Signal

# Sent inside the database transaction of every write of transactions or prices made through the
# domain's services (admin, importers). The snapshots app queues its refresh of the snapshots the
# write made stale for when that transaction commits.
history_written = Signal()
