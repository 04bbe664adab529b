"""Alerting on budgets: each budget's alert state (state), the durable states, events and
outbox (store), what a notification says (message) and links to (links), how each kind of
destination is sent to (destinations), delivery with retries (deliver), and the engine that
ties them together for the server's evaluation job (engine). docs/alerts.md for users."""
