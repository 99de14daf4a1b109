"""Value histories (snapshots.services.portfolio) as the data of the page's Chart.js charts.

The page reads this with json_script and draws it with snapshots/static/snapshots/console.js:
one chart, a tab per period; dataset 0 is the total, then one dataset per token. Numbers become
floats here, for drawing only: tables on the same page show the exact decimals.
"""

from snapshots.periods import PERIODS

_LABEL_FORMAT = {"hourly": "%Y-%m-%d %H:%M"}
DEFAULT_PERIOD = "daily"


def _number(value):
    return None if value is None else float(value)


def chart_data(histories, per_token=True, selected=None):
    """``histories``: {period: ValueHistory}. A period missing from it is a tab that loads its page
    (?period=…) instead of switching in place; ``selected`` is the tab shown first."""
    periods = []
    for period in PERIODS:
        history = histories.get(period)
        if history is None:
            periods.append({"period": period, "loaded": False, "labels": [], "datasets": [], "unpriced_points": 0})
            continue
        label_format = _LABEL_FORMAT.get(period, "%Y-%m-%d")
        datasets = [{"label": "Total (USD)", "data": [_number(v) for v in history.total], "total": True}]
        if per_token:
            datasets += [
                {"label": f"{t.symbol} ({t.chain})", "data": [_number(v) for v in t.values], "total": False}
                for t in history.tokens
            ]
        periods.append(
            {
                "period": period,
                "labels": [t.strftime(label_format) for t in history.as_of],
                "datasets": datasets,
                "unpriced_points": sum(1 for n in history.unpriced if n),
                "loaded": True,
            }
        )
    with_points = [p["period"] for p in periods if p["labels"]]
    if selected:
        return {"periods": periods, "default": selected}
    default = DEFAULT_PERIOD if DEFAULT_PERIOD in with_points else (with_points[0] if with_points else DEFAULT_PERIOD)
    return {"periods": periods, "default": default}


def pnl_chart_data(histories):
    """``histories``: {period: PnlHistory} (the wallet summaries) as the same chart structure:
    dataset 0 the realized PnL (the bold line), then the cost basis."""
    periods = []
    for period in PERIODS:
        history = histories[period]
        label_format = _LABEL_FORMAT.get(period, "%Y-%m-%d")
        periods.append(
            {
                "period": period,
                "labels": [t.strftime(label_format) for t in history.as_of],
                "datasets": [
                    {"label": "Realized PnL (USD)", "data": [_number(v) for v in history.realized_pnl], "total": True},
                    {"label": "Cost basis (USD)", "data": [_number(v) for v in history.cost_basis], "total": False},
                ],
                "unpriced_points": 0,
                "loaded": True,
            }
        )
    with_points = [p["period"] for p in periods if p["labels"]]
    default = DEFAULT_PERIOD if DEFAULT_PERIOD in with_points else (with_points[0] if with_points else DEFAULT_PERIOD)
    return {"periods": periods, "default": default}
