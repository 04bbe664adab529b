"""Redaction: the rule parser, the builtins, their properties, and a real collector end to end.

The end-to-end tests send spans and log records with the real OpenTelemetry SDK exporters
(gRPC and HTTP) to a collector on loopback, then look for the secrets everywhere they could
have been stored: the lake's views, and every file under the data directory (write-ahead
log segments byte for byte, Parquet files decompressed).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from spanlake.cli.main import cli
from spanlake.collector.redact import RELOAD_INTERVAL_S, RedactionError, Redactor, load_rules
from spanlake.collector.redact_rules import ALL, builtin_rule, luhn_ok, parse_rules
from spanlake.storage.keys import KeyStore, keys_path
from tests.conftest import RunningCollector, start_collector
from tests.examples.helpers import ROOT, clean_env
from tests.factories import make_request, make_span

EMAIL = "jane.doe+billing@example.co.uk"
CARD = "4111 1111 1111 1111"
API_KEY = "sk-proj-Zx81LmQ2vTn5Rk0pWs7Yc3Bd"
ORDER = "ORD-482913"
SECRETS = (EMAIL, CARD, CARD.replace(" ", ""), API_KEY, ORDER)

RULES = f"""
[projects."{ALL}"]
builtin = ["email", "api_key", "card_number"]

[projects.support]
builtin = ["card_number"]
patterns = [{{ name = "order", regex = "ORD-[0-9]{{6}}", replacement = "[ORDER]" }}]
"""
ALL_BUILTINS = parse_rules(f'[projects."{ALL}"]\nbuiltin = ["email", "api_key", "card_number"]\n')


def redact(text: str) -> str:
    return ALL_BUILTINS.redact(text, "any")


# --- the rule file ----------------------------------------------------------------------------

PARSE_ERRORS = [
    ("projects = 3", '`projects` must be a table of sections: [projects."*"], [projects.<name>]'),
    ("[rules]\nx = 1", "unknown top-level key 'rules': rules go in [projects.<name>] sections"),
    ("[projects.a]\nbuiltin = email", "not valid TOML: Invalid value (at line 2, column 11)"),
    ('[projects."a/b"]\nbuiltin = []', 'projects."a/b": not a project name (letters, digits, \'_\', \'.\', \'-\'; '
     'at most 64) nor "*"'),
    ("[projects]\na = 1", "projects.a must be a table ([projects.a])"),
    ("[projects.a]\nbuiltins = []", "projects.a: unknown key 'builtins' (expected builtin, patterns)"),
    ('[projects.a]\nbuiltin = "email"',
     'projects.a.builtin must be a list of rule names, e.g. ["email", "card_number"]'),
    ('[projects.a]\nbuiltin = ["phone"]',
     "projects.a.builtin: unknown rule 'phone' (known: api_key, card_number, email)"),
    ('[projects.a]\nbuiltin = ["email", "email"]', "projects.a.builtin: 'email' is listed twice"),
    ("[projects.a]\npatterns = 1", "projects.a.patterns must be a list of tables ([[projects.a.patterns]])"),
    ('[projects.a]\npatterns = ["x"]',
     'projects.a.patterns[0] must be a table like { name = "order", regex = "ORD-[0-9]+" }'),
    ('[projects.a]\npatterns = [{ regex = "x" }]', "projects.a.patterns[0]: `name` must be a non-empty string"),
    ('[projects.a]\npatterns = [{ name = "o" }]', "projects.a.patterns[0] ('o'): `regex` must be a string"),
    ('[projects.a]\npatterns = [{ name = "o", regex = "(x" }]',
     "projects.a.patterns[0] ('o'): invalid regex: missing ), unterminated subpattern at position 0"),
    ('[projects.a]\npatterns = [{ name = "o", regex = "x*" }]',
     "projects.a.patterns[0] ('o'): regex 'x*' matches the empty string"),
    ('[projects.a]\npatterns = [{ name = "o", regex = "x", replacment = "y" }]',
     "projects.a.patterns[0] ('o'): unknown key 'replacment' (expected name, regex, replacement)"),
    ('[projects.a]\npatterns = [{ name = "o", regex = "x", replacement = 1 }]',
     "projects.a.patterns[0] ('o'): `replacement` must be a string"),
    ('[projects."*"]\nbuiltin = ["email"]\n[[projects.b.patterns]]\nname = "ok"\nregex = "a"\n'
     '[[projects.b.patterns]]\nname = "bad"\nregex = "[a"',
     "projects.b.patterns[1] ('bad'): invalid regex: unterminated character set at position 0"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS, ids=[m[:40] for _, m in PARSE_ERRORS])
def test_parse_errors_are_precise(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_rules(text)
    assert str(e.value) == message


def test_broken_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "redaction.toml"
    path.write_text('[projects.a]\nbuiltin = ["phone"]\n')
    with pytest.raises(RedactionError) as e:
        Redactor(path)
    assert str(e.value) == f"redaction rules {path}: projects.a.builtin: unknown rule 'phone' " + (
        "(known: api_key, card_number, email)"
    )
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(RedactionError, match=f"redaction rules {re.escape(str(path))}: cannot read: "):
        load_rules(path)
    assert not load_rules(tmp_path / "missing.toml")  # no file: no rules


def test_project_sections_and_fallback() -> None:
    rules = parse_rules(RULES + "\n[projects.open]\n")
    text = f"{EMAIL} {CARD} {ORDER}"
    assert rules.redact(text, "anything") == "[REDACTED:email] [REDACTED:card_number] ORD-482913"
    assert rules.redact(text, "support") == f"{EMAIL} [REDACTED:card_number] [ORDER]"
    assert rules.redact(text, "open") == text  # an empty section: this project opts out of "*"
    assert parse_rules("[projects.a]\nbuiltin = ['email']").redact(text, "b") == text  # no "*": b has no rules


# --- the builtins -----------------------------------------------------------------------------

REDACTED = [
    ("write to Jane.Doe@Example.COM today", "write to [REDACTED:email] today"),
    ("a@b.com.x@c.com", "[REDACTED:email][REDACTED:email]"),  # the second starts inside the first's tail
    ("<a!#$%&'*+/=?^_`{|}~-b@mail-1.example.xn--p1ai>", "<[REDACTED:email]>"),
    ("key=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "key=[REDACTED:api_key]"),
    ("AKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36, "[REDACTED:api_key] and [REDACTED:api_key]"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: Bearer [REDACTED:api_key]"),
    ("slk_" + "Q" * 43, "[REDACTED:api_key]"),
    ("card 4111111111111111.", "card [REDACTED:card_number]."),
    ("amex 3782-822463-10005 ok", "amex [REDACTED:card_number] ok"),
    ("call 555 1234 4111 1111 1111 1111 now", "call 555 1234 [REDACTED:card_number] now"),
    ("4111 1111 1111 1111 12", "[REDACTED:card_number] 12"),
]
KEPT = [
    "no at sign here",
    "user@localhost",  # no dot in the host
    "task-abcdefghijklmnopqrstuvwxyz",  # `sk-` inside a word
    "the bearer of this letter",  # Bearer needs a token of 16+ characters
    "order 4111 1111 1111 1112",  # Luhn fails
    "2024-01-15 12:30:00, ids 1234567 7654321",
    "٤١١١١١١١١١١١١١١١",  # not ASCII digits
    "[REDACTED:email]",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_builtins_replace(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_builtins_leave_alone(text: str) -> None:
    assert redact(text) == text


def test_builtins_are_linear_time() -> None:
    """Megabyte strings built to defeat naive regexes take well under a second each."""
    for text in ("a" * 1_000_000 + "@", "a." * 500_000 + "@x", "1 " * 500_000, "x@" * 500_000):
        start = time.process_time()
        redact(text)
        assert time.process_time() - start < 2.0, text[:10]


# --- properties -------------------------------------------------------------------------------


@st.composite
def cards(draw: st.DrawFn) -> str:
    """A Luhn-valid number of 13-19 digits, written whole or in groups of four."""
    body = draw(st.text("0123456789", min_size=12, max_size=18))
    check = next(str(d) for d in range(10) if luhn_ok(body + str(d)))
    digits = body + check
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


BOUNDARY = st.sampled_from([" ", "\n", ", ", "\t", " (", ": "])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_and_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
    assert parse_rules(RULES).redact(text, "support") is not None


@settings(max_examples=300, deadline=None)
@given(st.text(), st.emails(), cards(), st.text(), BOUNDARY, BOUNDARY)
def test_embedded_email_and_card_are_removed(before: str, email: str, card: str, after: str, b1: str, b2: str) -> None:
    for secret in (email, card):
        out = redact(f"{before}{b1}{secret}{b2}{after}")
        assert secret not in out
        assert redact(out) == out
    out = redact(f"{before}{b1}{email}{b2}{card}{b1}{after}")
    assert email not in out and card not in out


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005") and not luhn_ok("4111111111111112")
    assert builtin_rule("card_number").apply("4012888888881881") == "[REDACTED:card_number]"


# --- a real collector -------------------------------------------------------------------------


def stored_text(data_dir: Path) -> str:
    """Everything under the data directory as text: raw bytes, Parquet files decompressed."""
    parts = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            parts.append(repr(pq.read_table(path).to_pylist()))
        else:
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def wal_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((data_dir / "wal").rglob("*")) if p.is_file())


@pytest.fixture
def redacting(tmp_path: Path) -> Iterator[RunningCollector]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "redaction.toml").write_text(RULES)
    running, stop = start_collector(data_dir, segment_max_age_s=30.0)  # keep segments until flush()
    try:
        yield running
    finally:
        stop()


def send_with_sdk(c: RunningCollector, transport: str, project: str, tag: str) -> None:
    """One span (attributes, event, status, link-free) and one log record, via the real exporters."""
    resource = Resource.create({"service.name": "svc", "spanlake.project": project, "owner": EMAIL})
    memory = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    with tracer_provider.get_tracer("test").start_as_current_span(f"{tag} for {EMAIL}") as span:
        span.set_attribute("gen_ai.input.messages", f'[{{"role":"user","content":"I am {EMAIL}, card {CARD}"}}]')
        span.set_attribute("app.order", f"order {ORDER}")
        span.set_attribute("app.contacts", ["ops@example.org", EMAIL])
        span.set_attribute("app.card_as_int", int(CARD.replace(" ", "")))
        span.set_attribute("gen_ai.usage.input_tokens", 1234)
        span.add_event("auth", {"header": f"Bearer {API_KEY}"})
        span.set_status(Status(StatusCode.ERROR, f"payment failed for {EMAIL}"))
    tracer_provider.shutdown()
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger_provider.get_logger("test").emit(
        body={"message": f"{tag}: customer {EMAIL} paid with {CARD}", "order": ORDER},
        attributes={"api_key": API_KEY, "tag": tag},
    )
    logger_provider.shutdown()

    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        span_exporter: Any = OTLPSpanExporter(endpoint=c.grpc, insecure=True)
        log_exporter: Any = OTLPLogExporter(endpoint=c.grpc, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        span_exporter = HttpSpanExporter(endpoint=f"{c.http}/v1/traces")
        log_exporter = HttpLogExporter(endpoint=f"{c.http}/v1/logs")
    try:
        assert span_exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
        assert log_exporter.export(logs.get_finished_logs()) == LogRecordExportResult.SUCCESS
    finally:
        span_exporter.shutdown()
        log_exporter.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_spans_and_logs_are_redacted_before_storage(redacting: RunningCollector, transport: str) -> None:
    c = redacting
    send_with_sdk(c, transport, "shop", "default-rules")
    send_with_sdk(c, transport, "support", "support-rules")
    wal = wal_bytes(c.data_dir)  # acknowledged = in the write-ahead log, already redacted there
    assert b"[REDACTED:email]" in wal and b"[ORDER]" in wal and b"[REDACTED:card_number]" in wal
    assert CARD.encode() not in wal and CARD.replace(" ", "").encode() not in wal  # both projects redact cards
    c.flush()

    shop = c.query("SELECT * FROM spans WHERE project = 'shop'")
    assert len(shop) == 1
    row = {k: v for k, v in shop[0].items() if isinstance(v, str)}
    text = repr(row)
    for secret in SECRETS[:-1]:
        assert secret not in text
    assert row["name"] == "default-rules for [REDACTED:email]"
    assert row["status_message"] == "payment failed for [REDACTED:email]"
    assert '"app.contacts":["[REDACTED:email]","[REDACTED:email]"]' in row["attributes"]
    assert '"app.card_as_int":"[REDACTED:card_number]"' in row["attributes"]
    assert '"gen_ai.usage.input_tokens":1234' in row["attributes"]
    assert ORDER in row["attributes"]  # "*" has no order pattern
    assert "Bearer [REDACTED:api_key]" in row["events"]
    assert '"owner":"[REDACTED:email]"' in row["resource_attributes"]
    assert '"spanlake.project":"shop"' in row["resource_attributes"]
    assert shop[0]["input_tokens"] == 1234 and len(shop[0]["trace_id"]) == 32 and len(shop[0]["span_id"]) == 16
    assert "[REDACTED:card_number]" in row["content"] and "[REDACTED:email]" in row["content"]

    support = repr(c.query("SELECT * FROM spans WHERE project = 'support'"))
    assert EMAIL in support and "[ORDER]" in support and ORDER not in support
    assert CARD not in support and "[REDACTED:card_number]" in support

    logs = {r["project"]: r for r in c.query("SELECT project, body, attributes FROM logs")}
    assert logs["shop"]["body"] == (
        '{"message":"default-rules: customer [REDACTED:email] paid with [REDACTED:card_number]","order":"ORD-482913"}'
    )
    assert '"api_key":"[REDACTED:api_key]"' in logs["shop"]["attributes"]
    assert logs["support"]["body"] == (
        f'{{"message":"support-rules: customer {EMAIL} paid with [REDACTED:card_number]","order":"[ORDER]"}}'
    )
    assert API_KEY in logs["support"]["attributes"]  # support's rules have no api_key

    # Nothing stored anywhere (WAL, staging, Parquet) holds what the rules redact.
    everything = stored_text(c.data_dir)
    assert CARD not in everything and CARD.replace(" ", "") not in everything
    assert EMAIL in everything and API_KEY in everything  # support's rules keep them
    shop = stored_text(c.data_dir / "lake" / "spans" / "project=shop") + stored_text(
        c.data_dir / "lake" / "logs" / "project=shop"
    )
    assert "[REDACTED:email]" in shop and "[REDACTED:api_key]" in shop
    assert EMAIL not in shop and API_KEY not in shop


def test_key_pins_the_rules_project(tmp_path: Path) -> None:
    """With authentication on, the key's project (not what the resource says) picks the rules."""
    data_dir = tmp_path / "data"
    _, token = KeyStore(keys_path(data_dir)).create("support", "write")
    data_dir.joinpath("redaction.toml").write_text(RULES)
    c, stop = start_collector(data_dir, auth="on")
    try:
        body = make_request(
            [make_span("pinned", attributes={"note": f"{EMAIL} {ORDER}"})],
            resource={"service.name": "svc", "spanlake.project": "shop"},
        ).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"}
        assert httpx.post(f"{c.http}/v1/traces", content=body, headers=headers, timeout=10).status_code == 200
        c.flush()
        [row] = c.query("SELECT project, attributes FROM spans")
        assert row == {"project": "support", "attributes": f'{{"note":"{EMAIL} [ORDER]"}}'}
    finally:
        stop()


def post_span(c: RunningCollector, name: str, note: str) -> None:
    body = make_request([make_span(name, attributes={"note": note})]).SerializeToString()
    r = httpx.post(f"{c.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200


def replace_file(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_rule_file_changes_are_picked_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rules = data_dir / "redaction.toml"
    c, stop = start_collector(data_dir)
    wait = RELOAD_INTERVAL_S + 0.5
    try:
        post_span(c, "before", f"mail {EMAIL}")  # no file: stored as sent
        replace_file(rules, '[projects."*"]\nbuiltin = ["email"]\n')
        time.sleep(wait)
        post_span(c, "added", f"mail {EMAIL}")
        replace_file(rules, '[projects."*"]\nbuiltin = ["nope"]\n')  # broken: the previous rules stay
        time.sleep(wait)
        post_span(c, "broken", f"mail {EMAIL}")
        replace_file(rules, '[projects."*"]\npatterns = [{ name = "order", regex = "ORD-[0-9]+" }]\n')
        time.sleep(wait)
        post_span(c, "changed", f"mail {EMAIL} {ORDER}")
        rules.unlink()
        time.sleep(wait)
        post_span(c, "removed", f"mail {EMAIL} {ORDER}")
        c.flush()
        got = {r["name"]: r["attributes"] for r in c.query("SELECT name, attributes FROM spans")}
    finally:
        stop()
    assert got == {
        "before": f'{{"note":"mail {EMAIL}"}}',
        "added": '{"note":"mail [REDACTED:email]"}',
        "broken": '{"note":"mail [REDACTED:email]"}',
        "changed": f'{{"note":"mail {EMAIL} [REDACTED:order]"}}',
        "removed": f'{{"note":"mail {EMAIL} {ORDER}"}}',
    }


def test_no_rules_store_the_bytes_as_sent(tmp_path: Path) -> None:
    """Without a rule file the request is not rewritten: the WAL holds the exact bytes sent."""
    c, stop = start_collector(tmp_path / "data", segment_max_age_s=30.0)
    try:
        body = make_request([make_span("as-sent", attributes={"note": EMAIL})]).SerializeToString()
        r = httpx.post(f"{c.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200
        assert c.collector.redactor.current() is None
        assert body in wal_bytes(c.data_dir)
    finally:
        stop()


# --- the command line -------------------------------------------------------------------------


def up(data_dir: Path, timeout: float = 60) -> tuple[int | None, str]:
    """Run `spanlake up`; return its exit code (None if it started, then stop it) and output."""
    out = data_dir.parent / f"up-{time.monotonic_ns()}.out"
    cmd = [sys.executable, "-m", "spanlake.cli.main", "up", "--data-dir", str(data_dir), "--grpc-port", "0",
           "--http-port", "0", "--no-dashboard", "--no-demo"]  # fmt: skip
    with open(out, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while "Press Ctrl+C" not in out.read_text() and proc.poll() is None:
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.1)
            code = proc.poll()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait(30)
    return code, out.read_text()


def test_up_refuses_a_broken_rule_file_and_reports_rules(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rules = data_dir / "redaction.toml"
    rules.write_text('[projects."*"]\nbuiltin = ["email"]\npatterns = [{ name = "order", regex = "ORD-(" }]\n')
    code, out = up(data_dir)
    assert code == 1, out
    assert f"Error: redaction rules {rules}: projects.\"*\".patterns[0] ('order'): invalid regex: " in out
    assert "Traceback" not in out and not (data_dir / "wal").exists()  # refused before anything started

    rules.write_text(RULES)
    code, out = up(data_dir)
    assert code is None, out
    assert f"redaction is on ({rules}): *: email, api_key, card_number; support: card_number, order" in out


def test_redaction_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    dd = ["--data-dir", str(tmp_path)]
    r = runner.invoke(cli, ["redaction", "check", *dd])
    assert r.exit_code == 0 and "no such file, nothing is redacted" in r.output
    (tmp_path / "redaction.toml").write_text(RULES)
    r = runner.invoke(cli, ["redaction", "check", *dd])
    assert r.exit_code == 0, r.output
    assert "ok, *: email, api_key, card_number; support: card_number, order" in r.output
    r = runner.invoke(cli, ["redaction", "test", f"hi {EMAIL} {ORDER}", "--project", "support", *dd])
    assert (r.exit_code, r.output) == (0, f"hi {EMAIL} [ORDER]\n")
    r = runner.invoke(cli, ["redaction", "test", "-", *dd], input=f"{CARD}\n")
    assert (r.exit_code, r.output) == (0, "[REDACTED:card_number]\n\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[projects.a]\nbuiltin = 'email'\n")
    r = runner.invoke(cli, ["redaction", "check", "--file", str(bad)])
    assert r.exit_code == 1
    assert f"Error: redaction rules {bad}: projects.a.builtin must be a list of rule names" in r.output
    only = tmp_path / "only.toml"
    only.write_text("[projects.a]\nbuiltin = ['email']\n")
    r = runner.invoke(cli, ["redaction", "check", "--file", str(only)])
    assert r.exit_code == 0 and "projects without a section are not redacted" in r.output
