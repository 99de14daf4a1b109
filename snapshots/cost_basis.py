"""The cost-basis methods of the ledger (docs/ledger.md), defined once.

Settings read ``BALANCE_COST_BASIS`` against METHODS; the ledger's walk, the Balance and snapshot
rows, the exports and the method-switch report all take their names from here. A method is one
more lot order in the walk (docs/ledger.md), so LIFO or HIFO would be added here and there.
"""

AVERAGE = "average"
FIFO = "fifo"
METHODS = (AVERAGE, FIFO)
DEFAULT = AVERAGE


def current_method():
    """The method new computations use (settings.BALANCE_COST_BASIS)."""
    from django.conf import settings

    return getattr(settings, "BALANCE_COST_BASIS", DEFAULT)
