"""Print Arrow tables, rows and documents as a terminal table, JSON or CSV."""

from __future__ import annotations

import dataclasses
import decimal
import io
import sys
from datetime import date, datetime
from typing import Any

import click
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


def jsonable(v: Any) -> Any:
    """Plain JSON values from dataclasses, data frames, mappings and times."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if hasattr(v, "to_dicts"):  # a polars DataFrame
        return [jsonable(r) for r in v.to_dicts()]
    if hasattr(v, "as_dict"):
        return jsonable(v.as_dict())
    if isinstance(v, dict) or hasattr(v, "items"):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [jsonable(x) for x in v]
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def dump_json(doc: Any) -> None:
    """Print a document as indented JSON (dataclasses, frames and times made plain)."""
    sys.stdout.write(orjson.dumps(jsonable(doc), option=orjson.OPT_INDENT_2).decode() + "\n")


def cell(v: Any) -> str:
    """A value as a table cell: blank for None, 4 significant digits, JSON for structures."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return orjson.dumps(jsonable(v)).decode()
    return str(v)


def print_rows(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Print dicts as a terminal table, one column per key seen."""
    table = Table(title=title)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    for col in columns:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(cell(r.get(c)) for c in columns))
    Console().print(table)


def print_doc(doc: Any, title: str, name: str = "figure") -> None:
    """A document as tables: its plain figures as name/value rows, each list of rows as a table."""
    doc = jsonable(doc)
    if isinstance(doc, list):
        if doc:
            print_rows(doc, title)
        else:
            click.echo(f"{title}: none")
        return
    plain = [{name: k, "value": v} for k, v in doc.items() if not isinstance(v, list)]
    if plain:
        print_rows(plain, title)
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            print_rows(v, k)
