"""`--app http://...`: each item POSTed as JSON to a real loopback server, with the item's trace
context; the response body is the output, an error status is the item's error."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.experiments.store import Store
from tests.conftest import start_collector
from tests.experiments.helpers import DATASET, PROJECT, freeze_items

RECEIVED: list[tuple[dict[str, Any], str | None]] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RECEIVED.append((body, self.headers.get("traceparent")))
        i = int(body["input"].rsplit(" ", 1)[-1])
        if i == 6:
            status, payload, ctype = 503, b"overloaded", "text/plain"
        elif i % 2:
            status, payload, ctype = 200, json.dumps(f"answer {i}").encode(), "application/json"  # a JSON string
        else:
            status, payload, ctype = 200, f"answer {i}".encode(), "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/answer"
    finally:
        server.shutdown()
        server.server_close()


def test_http_app(tmp_path: Path, http_app: str) -> None:
    c, stop = start_collector(tmp_path / "data")
    try:
        freeze_items(c.data_dir)
        args = ["experiment", "run", "--dataset", f"{DATASET}@1", "--dataset-project", PROJECT, "--app", http_app]
        args += ["--check", "exact", "--endpoint", c.http, "--data-dir", str(c.data_dir), "--quiet", "--wait", "20"]
        r = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "10 item(s) run, 0 done before, 1 error(s), 0 timeout(s); success 90.0% (9/10)" in r.output
        exp_id = re.search(r"exp-\d{8}-\d{6}-[0-9a-f]{4}", r.output).group(0)  # type: ignore[union-attr]
        results = Store(c.data_dir).get(exp_id).results()
        assert results["item-3"]["output"] == "answer 3"  # a JSON string body is unwrapped
        assert results["item-4"]["output"] == "answer 4"
        assert results["item-6"]["status"] == "error" and results["item-6"]["error"] == "AppError: HTTP 503: overloaded"
        bodies = {b["id"]: (b, tp) for b, tp in RECEIVED}
        body, traceparent = bodies["item-2"]
        assert body["input"] == "question 2" and body["expected_output"] == "answer 2"
        assert body["messages"] == [{"role": "user", "content": "question 2"}]
        # W3C traceparent: version-traceid-spanid-flags, the item's task span (sampled)
        assert traceparent is not None
        assert traceparent[:-3] == f"00-{results['item-2']['trace_id']}-{results['item-2']['span_id']}"
        assert int(traceparent[-2:], 16) & 1 == 1
    finally:
        stop()
