"""Print Arrow tables as a terminal table, JSON or CSV."""

from __future__ import annotations

import decimal
import io
import sys

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table


def _json_default(v: object) -> object:
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def print_table(result: pa.Table, fmt: str, max_rows: int = 100) -> None:
    if fmt == "json":
        rows = result.to_pylist()
        opts = orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC
        sys.stdout.write(orjson.dumps(rows, option=opts, default=_json_default).decode() + "\n")
    elif fmt == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(result, buf)
        sys.stdout.write(buf.getvalue().decode())
    else:
        table = Table(show_lines=False)
        for name in result.column_names:
            table.add_column(name, overflow="fold")
        for row in result.slice(0, max_rows).to_pylist():
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        console = Console()
        console.print(table)
        if result.num_rows > max_rows:
            console.print(f"({result.num_rows} rows, {max_rows} shown; use --max-rows or --format csv)")
        else:
            console.print(f"({result.num_rows} rows)")
