"""The admin as the operator's console: value charts, positions, job health and job controls.

views.py renders the pages, charts.py shapes the data for Chart.js (vendored in
snapshots/static/snapshots/vendor/chartjs), actions.py holds the confirmed operator actions.
"""
