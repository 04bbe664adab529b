"""The dashboard's only door for changes: labels, dataset membership, frozen dataset versions and
saved filters go through the running spanlake's HTTP API, the same write path as
`POST /api/v1/labels` and `spanlake dataset`.

So a label set here is checked against the project's label schema, made durable in the
collector's write-ahead log before the page says "saved", and appended as a new event:
several reviewers (dashboards, API clients, the CLI) can label the same traces at once
without losing each other's work. The dashboard never writes lake files itself; when the
collector cannot be reached, a change is refused with a message and nothing is lost from
the form.

The API address: `--url` after `streamlit run app.py --`, else $SPANLAKE_URL (`spanlake up`
sets it for the dashboard it starts), else http://127.0.0.1:4318. A key in $SPANLAKE_API_KEY
is sent as a bearer key when the collector requires keys (like the CLI).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from spanlake.dashboard.settings import arg

URL_ENV = "SPANLAKE_URL"
API_KEY_ENV = "SPANLAKE_API_KEY"
DEFAULT_URL = "http://127.0.0.1:4318"
TIMEOUT_S = 30
BATCH = 1000  # items per request (the API takes up to 10,000)


class WriteError(Exception):
    """A change the API refused (`status` set) or could not be sent (`status` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_url() -> str:
    """`--url` after `--`, else $SPANLAKE_URL, else the default local collector."""
    return (arg("--url") or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def call(method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None) -> Any:
    """One API call; the parsed JSON answer, or WriteError."""
    base = api_url()
    q = urllib.parse.urlencode({k: v for k, v in (query or {}).items() if v is not None})
    url = f"{base}/api/v1{path}" + (f"?{q}" if q else "")
    headers = {"Content-Type": "application/json"}
    if os.environ.get(API_KEY_ENV):
        headers["Authorization"] = f"Bearer {os.environ[API_KEY_ENV]}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message")
        except (ValueError, AttributeError):
            message = None
        retry = e.headers.get("Retry-After") if e.headers else None
        hint = f" (try again in {retry} s)" if retry else ""
        raise WriteError(f"spanlake refused ({e.code}): {message or e.reason}{hint}", e.code) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise WriteError(
            f"cannot reach spanlake at {base} ({reason}). Changes go through the running collector: "
            f"start it with `spanlake up`, or point the dashboard at it with ${URL_ENV}."
        ) from None


def post_label(
    project: str,
    trace_id: str,
    span_id: str | None,
    author: str,
    fields: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Record a reviewer's label (source `human`); returns its label_id."""
    body: dict[str, Any] = {"trace_id": trace_id, "project": project, "source": "human", "author": author}
    if span_id:
        body["span_id"] = span_id
    body |= {k: v for k, v in fields.items() if v is not None}
    if metadata:
        body["metadata"] = dict(metadata)
    return str(call("POST", "/labels", body)["label_id"])


def create_dataset(project: str, name: str, author: str | None, description: str | None = None) -> None:
    call("POST", "/datasets", {"name": name, "project": project, "description": description, "author": author})


def add_items(
    project: str,
    dataset: str,
    items: Sequence[Mapping[str, Any]],
    author: str | None,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Add items ({trace_id, span_id?, trace_start?}) to a dataset; returns how many were sent."""
    path = f"/datasets/{urllib.parse.quote(dataset, safe='')}/items"
    payload = [
        {
            "trace_id": i["trace_id"],
            "span_id": i.get("span_id"),
            "trace_start": i["trace_start"].isoformat()
            if isinstance(i.get("trace_start"), datetime)
            else i.get("trace_start"),
        }
        for i in items
    ]
    for start in range(0, len(payload), BATCH):
        body = {"items": payload[start : start + BATCH], "project": project, "author": author}
        if metadata:
            body["metadata"] = dict(metadata)
        call("POST", path, body)
    return len(payload)


def freeze_dataset(project: str, dataset: str, author: str | None) -> dict[str, Any]:
    """Freeze the dataset now (a new version unless nothing changed since the latest): the version's
    manifest, with `created` and `missing` (items left out: their traces are not in the lake)."""
    path = f"/datasets/{urllib.parse.quote(dataset, safe='')}/versions"
    return dict(call("POST", path, query={"project": project, "author": author}))


def save_filter(
    project: str, name: str, filters: Mapping[str, Any], range_s: float | None, saved_by: str | None
) -> dict[str, Any]:
    """Save (or replace) a trace filter for labelling queues; returns it as stored."""
    path = f"/saved-filters/{urllib.parse.quote(name, safe='')}"
    body = {"filters": dict(filters), "range_s": range_s, "saved_by": saved_by}
    return dict(call("PUT", path, body, query={"project": project}))
