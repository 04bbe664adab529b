"""Reading files written under an older schema version with the current columns.

A schema version step appends columns (storage.schema, `Column.added_in`); the files
already in the lake keep the columns they were written with. Every reader therefore asks
for the current columns and gets NULL where a file lacks one:

- DuckDB's `read_parquet(..., union_by_name = true)` fills a column some of its files lack,
  but fails when *none* of them has it (an hour, or a whole lake, written before the step).
  `parquet_rows` puts an empty relation that declares the appended columns beside the
  files with `UNION ALL BY NAME` (DuckDB's documented way to add a column a Parquet file
  lacks: "Adjusting the Schema on the Fly", duckdb.org/docs/guides/file_formats/parquet_import);
  projections and filters still reach the Parquet scan.
- An Arrow table read by pyarrow is cast column by column (`conform`).
"""

from __future__ import annotations

import pyarrow as pa

from spanlake.storage.schema import Table

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.list_(pa.int64()): "BIGINT[]",
    pa.list_(pa.float64()): "DOUBLE[]",
}


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type of a column's Arrow type."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return _DUCKDB_TYPES[t]


def parquet_rows(table: Table, read_call: str) -> str:
    """A FROM item for `read_call` (a `read_parquet(...)` over files of `table`) that has every
    column of the table, NULL where a file was written before the column was appended."""
    added = [c for c in table.columns if c.added_in > 1]
    if not added:
        return read_call
    declared = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in added)
    return f"(SELECT * FROM {read_call} UNION ALL BY NAME SELECT {declared} WHERE false)"


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a file's rows to `schema`; columns older files lack become NULL."""
    cols = [
        data.column(f.name).cast(f.type) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)
