"""Hourly rollups: each report's figures per UTC hour, kept up to date with the lake, so a
report over a long window reads hours instead of spans.

- tables: what a rollup table is and where its files live (tables are declared with the
  report that reads them, analytics/reports/<name>.py);
- trace_index: the trace-id index (which hours each trace has spans in);
- state: what the rollups know of the lake, and which hours are up to date;
- materialize: bring every table up to date (`spanlake analytics run`);
- read: rows of a window (fresh hours from files, the rest from raw spans) and their sums;
- schedule: the server's periodic run, in a low-priority child process.

Each row is what the raw report computes for that hour, so the rows of a window's hours add
up to the raw answer (percentiles within analytics.sketch.ALPHA).
"""
