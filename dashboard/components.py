"""Render helpers shared by the pages. Data from the lake is always shown as text:
`st.text`/`st.code`/`st.json`/dataframes, or markdown with every markup character escaped
(esc) — never as HTML."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<&$:])")
NONE = "-"
ERROR_COLOR = "#d63031"
BAR_WIDTH = 120  # px, a tree row's timeline bar (timeline_bar)
ROLE_AVATARS = {"system": ":material/settings:", "tool": ":material/build:", "developer": ":material/code:"}
CATEGORY_COLORS = {
    "task": "#6c5ce7",
    "llm": "#0984e3",
    "embedding": "#74b9ff",
    "retrieval": "#00b894",
    "rerank": "#55efc4",
    "tool": "#e17055",
    "agent": "#fdcb6e",
    "chain": "#b2bec3",
    "guardrail": "#a29bfe",
    "other": "#636e72",
}


def esc(text: Any) -> str:
    """Text safe to put in markdown: every markup character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", "" if text is None else str(text))


def fmt_ms(v: float | None) -> str:
    if v is None:
        return NONE
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def fmt_cost(v: float | None, unpriced: int = 0) -> str:
    """Dollars with three significant digits for small amounts ($0.000261), cents otherwise."""
    if v is None:
        return "unpriced" if unpriced else NONE
    decimals = 2 if v == 0 else max(2, 2 - math.floor(math.log10(abs(v))))
    text = f"{v:,.{decimals}f}"
    if decimals > 2:
        text = text.rstrip("0")
    text = f"${text}"
    return f"{text} (+{unpriced} unpriced)" if unpriced else text


def fmt_pct(v: float | None) -> str:
    return NONE if v is None else f"{v * 100:.1f}%"


def fmt_int(v: Any) -> str:
    return NONE if v is None else f"{int(v):,}"


def pretty(value: Any) -> str:
    """JSON text indented when `value` is (or holds) JSON, else the text itself."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def chat(messages: Iterable[Mapping[str, Any]]) -> None:
    """Messages as chat bubbles; content, tool calls and tool results as plain text."""
    for m in messages:
        role = str(m.get("role") or "user")
        with st.chat_message(role, avatar=ROLE_AVATARS.get(role)):
            head = [role]
            if m.get("direction") == "output":
                head.append("output")
            if m.get("finish_reason"):
                head.append(f"finish: {m['finish_reason']}")
            if m.get("tool_call_id"):
                head.append(f"result of {m['tool_call_id']}")
            st.caption(esc(" · ".join(head)))
            if m.get("content"):
                if role == "tool":
                    st.code(pretty(m["content"]), language="json", wrap_lines=True)
                else:
                    st.text(m["content"])
            for call in m.get("tool_calls") or []:
                st.caption(esc(f"tool call: {call.get('name')} ({call.get('id')})"))
                st.code(pretty(call.get("arguments") or ""), language="json", wrap_lines=True)


PICK = "pick"  # the timelines' point selection: a click picks a span (its `span_id`)


def waterfall(spans: list[Mapping[str, Any]]) -> alt.Chart:
    """A timeline of the spans (tree order top to bottom), coloured by category; a click picks
    a span (PICK)."""
    rows = []
    total = max((s["offset_ms"] + s["duration_ms"] for s in spans), default=1.0)
    min_width = max(total * 0.004, 0.001)  # so instant spans stay visible
    for i, s in enumerate(spans):
        label = f"{i + 1:>2}. {chr(0xA0) * 2 * s['depth']}{s['name']}"
        rows.append(
            {
                "span": label,
                "start_ms": round(s["offset_ms"], 3),
                "end_ms": round(s["offset_ms"] + max(s["duration_ms"], min_width), 3),
                "duration_ms": round(s["duration_ms"], 3),
                "category": s["category"],
                "status": s["status_code"],
                "model": s.get("response_model") or s.get("request_model") or "",
                "tokens": s.get("total_tokens") or 0,
                "span_id": s["span_id"],
            }
        )
    order = [r["span"] for r in rows]
    cats = sorted({r["category"] for r in rows})
    return (
        alt.Chart(alt.Data(values=rows))
        .mark_bar(cornerRadius=2)
        .encode(
            x=alt.X("start_ms:Q", title="ms since the trace started"),
            x2="end_ms:Q",
            y=alt.Y(
                "span:N",
                sort=order,
                title=None,
                scale=alt.Scale(paddingInner=0.25),
                axis=alt.Axis(labelLimit=360, labelOverlap=False),
            ),
            color=alt.Color(
                "category:N",
                scale=alt.Scale(domain=cats, range=[CATEGORY_COLORS.get(c, "#636e72") for c in cats]),
                legend=alt.Legend(orient="top", title=None),
            ),
            stroke=alt.condition(alt.datum.status == "ERROR", alt.value("#d63031"), alt.value(None)),
            strokeWidth=alt.condition(alt.datum.status == "ERROR", alt.value(2), alt.value(0)),
            tooltip=["span:N", "category:N", "model:N", "tokens:Q", "duration_ms:Q", "status:N"],
        )
        .add_params(alt.selection_point(name=PICK, fields=["span_id"]))
        .properties(height=alt.Step(24))
    )


def lanes(spans: list[Mapping[str, Any]]) -> alt.Chart:
    """A timeline of a big trace in one lane per depth (children lie within their parent's
    time, so a lane rarely overlaps itself), coloured by category, errors outlined; a click
    picks a span (PICK)."""
    rows = []
    total = max((s["offset_ms"] + s["duration_ms"] for s in spans), default=1.0)
    min_width = max(total * 0.002, 0.001)
    for s in spans:
        rows.append(
            {
                "depth": s["depth"],
                "span": s["name"],
                "start_ms": round(s["offset_ms"], 3),
                "end_ms": round(s["offset_ms"] + max(s["duration_ms"], min_width), 3),
                "duration_ms": round(s["duration_ms"], 3),
                "category": s["category"],
                "status": s["status_code"],
                "span_id": s["span_id"],
            }
        )
    cats = sorted({r["category"] for r in rows})
    depths = max((r["depth"] for r in rows), default=0) + 1
    # a frame, not inline values: Altair validates inline rows one by one (0.8 s for 2,000 spans)
    return (
        alt.Chart(pl.DataFrame(rows))
        .mark_bar(cornerRadius=1)
        .encode(
            x=alt.X("start_ms:Q", title="ms since the trace started"),
            x2="end_ms:Q",
            y=alt.Y("depth:O", title="depth", scale=alt.Scale(paddingInner=0.2)),
            color=alt.Color(
                "category:N",
                scale=alt.Scale(domain=cats, range=[CATEGORY_COLORS.get(c, "#636e72") for c in cats]),
                legend=alt.Legend(orient="top", title=None),
            ),
            stroke=alt.condition(alt.datum.status == "ERROR", alt.value(ERROR_COLOR), alt.value("white")),
            strokeWidth=alt.condition(alt.datum.status == "ERROR", alt.value(2), alt.value(0.5)),
            tooltip=["span:N", "category:N", "depth:O", "duration_ms:Q", "status:N"],
        )
        .add_params(alt.selection_point(name=PICK, fields=["span_id"]))
        .properties(height=alt.Step(22) if depths > 3 else 80)
    )


def timeline_bar(offset_ms: float, duration_ms: float, total_ms: float, category: str, error: bool) -> str:
    """One span's place on the trace's time axis, as a small SVG image (a data URL) for a
    tree row; made of numbers and colours only, never of span text."""
    total = total_ms if total_ms > 0 else 1.0
    w = max(min(duration_ms / total, 1.0) * BAR_WIDTH, 2.0)
    x = min(max(offset_ms / total, 0.0) * BAR_WIDTH, BAR_WIDTH - w)
    color = CATEGORY_COLORS.get(category, CATEGORY_COLORS["other"])
    edge = f' stroke="{ERROR_COLOR}" stroke-width="2"' if error else ""
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH}" height="16">'
        f'<rect y="7.5" width="{BAR_WIDTH}" height="1" fill="#dfe6e9"/>'
        f'<rect x="{x:.1f}" y="3" width="{w:.1f}" height="10" rx="2" fill="{color}"{edge}/></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def trend_chart(df: pl.DataFrame, column: str, title: str, fmt: str = ",.0f") -> alt.Chart:
    """A line over time buckets for one overview metric."""
    values = [{"bucket": r["bucket"].isoformat(), column: r[column]} for r in df.select("bucket", column).to_dicts()]
    return (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title=None),
            y=alt.Y(f"{column}:Q", title=None, axis=alt.Axis(format=fmt)),
            tooltip=[alt.Tooltip("bucket:T"), alt.Tooltip(f"{column}:Q", format=fmt)],
        )
        .properties(height=180)
    )


def table(df: pl.DataFrame) -> pl.DataFrame:
    """A frame ready for st.dataframe: lists joined as text."""
    return df.with_columns(
        pl.col(c).list.join(", ") for c, t in df.schema.items() if isinstance(t, pl.List) and t.inner == pl.String
    )


def fmt_figure(column: str, v: Any) -> str:
    """A report figure as text, by what its column holds: `*_ms` in milliseconds, costs in
    dollars, rates and shares in percent, counts with separators; blank when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if column.endswith("_ms"):
        digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
        return f"{v:,.{digits}f} ms"
    if "cost" in column and not column.endswith("_calls"):
        return ("-" if v < 0 else "") + fmt_cost(abs(v))
    if "_rate" in column or column.endswith("_share") or column.startswith("precision_at"):
        return f"{v * 100:.1f}%"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"


def formatted(df: pl.DataFrame) -> pl.DataFrame:
    """The report as shown in a table: its numeric columns as text (`fmt_figure`)."""
    return df.with_columns(
        pl.col(c).map_elements(lambda v, c=c: fmt_figure(c, v), return_dtype=pl.String, skip_nulls=False)
        for c, dtype in df.schema.items()
        if dtype.is_numeric()
    )


def figure_columns(df: pl.DataFrame) -> dict[str, Any]:
    """st.dataframe column formats for a report kept numeric (the compare table, whose `b - a`
    row holds differences): milliseconds, dollars to three significant digits, percentages."""
    out: dict[str, Any] = {}
    for c, dtype in df.schema.items():
        if not dtype.is_numeric():
            continue
        if c.endswith("_ms"):
            out[c] = st.column_config.NumberColumn(format="%,.0f ms")
        elif "cost" in c and not c.endswith("_calls"):
            small = df[c].abs().filter(df[c].abs() > 0).min()
            digits = max(2, 2 - math.floor(math.log10(small))) if isinstance(small, int | float) else 2
            out[c] = st.column_config.NumberColumn(format=f"$%.{min(digits, 8)}f")
        elif "_rate" in c or c.endswith("_share") or c.startswith("precision_at"):
            out[c] = st.column_config.NumberColumn(format="percent")
    return out
