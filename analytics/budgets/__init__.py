"""Budgets: limits on a project's latency, cost, success and traffic, declared once in
`<data-dir>/budgets.toml` (definition), the metrics they watch (metrics), and their figures
read from the reports (measure). The server evaluates them on a schedule and alerts
(spanlake.server.alerts)."""
