"""What the dashboard shows, as plain functions over the lake: trace lists, one trace in
full, sessions and the overview. Values reach DuckDB as bound parameters only."""
