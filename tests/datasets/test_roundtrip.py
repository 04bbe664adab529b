"""Label through the API, build a dataset with the CLI, export every format, and run each
export through the tool that consumes it (pytest, promptfoo, deepeval, ragas) or check it
against the tool's published structure.

Items of dataset `support` (project shop), and what the fake model ("Fake reply: <input>")
does against each one's reference:
  A       ana: fail/hallucination, expected "Fake reply: What is the refund window?" → passes
  B       bo: fail/hallucination, expected "Paris"                                     → fails
  B:span  bo on the model call: fail, expected "Paris"                                 → fails
  C       ana: pass (no expected: the actual answer is the reference)                  → fails
  E       a judge's score only: no reference                                           → skipped
  D       unlabelled: added by id, then removed                                        → not a member
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.demo.fake_openai import FakeOpenAI
from spanlake.storage.datasets import EXAMPLE_SCHEMA
from tests.conftest import RunningCollector, start_collector
from tests.datasets.helpers import PROJECT, Sent, api, label, qa_trace, send

DATASET = "support"
FORMATS = ("jsonl", "csv", "parquet", "openai-evals", "promptfoo", "pytest", "deepeval", "ragas")
TARGET = '''
def answer(text):
    """The app under test: the same answer the fake model gives."""
    return "Fake reply: " + text


ORACLE = {}


def oracle(text):
    """Knows every reference (filled in by the test)."""
    return ORACLE[text]
'''


@dataclass
class Lab:
    collector: RunningCollector
    sent: dict[str, Sent]
    out: Path
    files: dict[str, Path]

    def cli(self, *args: str) -> str:
        """`spanlake dataset ARGS` (--data-dir for the commands that read the lake)."""
        common = ["--project", PROJECT]
        if args[0] not in ("create", "remove"):
            common += ["--data-dir", str(self.collector.data_dir)]
        result = CliRunner().invoke(cli, ["dataset", *args, *common])
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("roundtrip")
    collector, stop = start_collector(root / "data")
    try:
        sent: dict[str, Sent] = {}
        docs = ("Refunds are accepted within 30 days.", "Shipping takes 5 days.")
        for key, q, a, kw in (
            (
                "A",
                "What is the refund window?",
                "60 days",
                {"docs": docs, "variables": {"question": "refunds", "tier": "gold"}},
            ),
            ("B", "Capital of France?", "Lyon", {}),
            ("C", "How do I reset my password?", "Use the reset link.", {"prompt_version": "v1"}),
            ("D", "Unlabelled question", "whatever", {}),
            ("E", "Judge only", "meh", {}),
        ):
            spans, s = qa_trace(q, a, **kw)
            send(collector, spans)
            sent[key] = s
        label(
            collector,
            sent["A"].trace_id,
            "ana",
            verdict="fail",
            failure_mode="hallucination",
            expected_output="Fake reply: What is the refund window?",
            comment="made up 60 days",
        )
        label(
            collector, sent["B"].trace_id, "bo", verdict="fail", failure_mode="hallucination", expected_output="Paris"
        )
        label(
            collector, sent["B"].trace_id, "bo", span_id=sent["B"].llm_span_id, verdict="fail", expected_output="Paris"
        )
        label(collector, sent["C"].trace_id, "ana", verdict="pass", score=0.9)
        r = api(
            collector,
            "POST",
            "/labels",
            {
                "trace_id": sent["E"].trace_id,
                "source": "judge",
                "author": "gpt-judge",
                "score": 0.3,
                "project": PROJECT,
            },
        )
        assert r.status_code == 200
        api(collector, "POST", "/feedback", {"trace_id": sent["A"].trace_id, "value": "down", "project": PROJECT})
        collector.flush()
        lab = Lab(collector, sent, root / "out", {})
        lab.out.mkdir()
        (lab.out / "evaltarget.py").write_text(TARGET)
        yield lab
    finally:
        stop()


def test_build_with_the_cli(lab: Lab) -> None:
    url = ["--url", lab.collector.http]
    assert "created dataset support" in lab.cli("create", DATASET, "--description", "failed answers <b>", *url)
    dry = lab.cli("add", DATASET, "--since", "2h", "--labelled", "--dry-run", *url)
    assert "4 item(s) would be added" in dry and lab.sent["D"].trace_id not in dry
    assert "added 4 item(s)" in lab.cli("add", DATASET, "--since", "2h", "--labelled", *url)
    b = lab.sent["B"]
    lab.cli("add", DATASET, f"{b.trace_id}:{b.llm_span_id}", lab.sent["D"].trace_id, *url)
    lab.cli("remove", DATASET, lab.sent["D"].trace_id, *url)
    refused = CliRunner().invoke(
        cli, ["dataset", "add", DATASET, "f" * 32, *url, "--data-dir", str(lab.collector.data_dir)]
    )
    assert refused.exit_code != 0 and "not in the lake" in refused.output
    lab.collector.flush()
    listed = json.loads(lab.cli("list", "--format", "json"))
    assert [(d["dataset"], d["examples"], d["description"]) for d in listed] == [(DATASET, 5, "failed answers <b>")]
    shown = json.loads(lab.cli("show", DATASET, "--format", "json"))
    members = {(i["trace_id"], i["span_id"]) for i in shown["items"]}
    assert members == {(lab.sent[k].trace_id, None) for k in "ABCE"} | {(b.trace_id, b.llm_span_id)}
    assert shown["versions"] == []
    filters = [json.loads(i["metadata"])["filter"] for i in shown["items"] if i["metadata"]]
    assert filters and filters[0]["labelled"] is True

    for fmt in FORMATS:
        extra = ["--target", "evaltarget:answer"] if fmt == "pytest" else []
        path = lab.out / f"export-{fmt}"
        result = CliRunner().invoke(
            cli,
            [
                "dataset",
                "export",
                DATASET,
                "--format",
                fmt,
                "-o",
                str(path),
                *extra,
                "--project",
                PROJECT,
                "--data-dir",
                str(lab.collector.data_dir),
            ],
        )
        assert result.exit_code == 0, result.output
        assert ("froze new version v1" if fmt == "jsonl" else "unchanged since v1") in result.output
        lab.files[fmt] = path
    assert json.loads(lab.cli("show", DATASET, "--format", "json"))["versions"][0]["examples"] == 5


def examples(lab: Lab) -> dict[str, dict]:
    lines = lab.files["jsonl"].read_text().splitlines()
    out = {}
    for line in lines:
        e = json.loads(line)
        key = next(k for k, s in lab.sent.items() if s.trace_id == e["trace_id"])
        out[key + (":span" if e["span_id"] else "")] = e
    return out


def test_jsonl_holds_the_full_example(lab: Lab) -> None:
    ex = examples(lab)
    assert set(ex) == {"A", "B", "B:span", "C", "E"}
    a = ex["A"]
    assert a["input"]["text"] == "What is the refund window?"
    assert [m["role"] for m in a["input"]["messages"]] == ["system", "user"]
    assert a["input"]["context"] == ["Refunds are accepted within 30 days.", "Shipping takes 5 days."]
    assert a["input"]["prompt_variables"] == {"question": "refunds", "tier": "gold"}
    assert a["input"]["prompt_template"] == "Q: {question}"
    assert (a["actual_output"], a["expected_output"]) == ("60 days", "Fake reply: What is the refund window?")
    assert a["label"] == {
        "verdict": "fail",
        "failure_mode": "hallucination",
        "score": None,
        "comment": "made up 60 days",
    }
    assert {lb["source"] for lb in a["labels"]} == {"human", "user_feedback"}
    meta = a["metadata"]
    assert (meta["model"], meta["prompt_name"], meta["prompt_version"], meta["service_name"]) == (
        "gpt-4o-mini",
        "qa",
        "v2",
        "support-bot",
    )
    assert f"trace={a['trace_id']}" in meta["trace_url"] and "project=shop" in meta["trace_url"]
    assert a["version"] == 1 and a["dataset"] == DATASET and a["project"] == PROJECT
    span = ex["B:span"]
    assert span["span_id"] == lab.sent["B"].llm_span_id and span["input"]["text"] == "Capital of France?"
    assert span["actual_output"] == "Lyon" and span["metadata"]["span_name"] == "chat gpt-4o-mini"
    assert len(span["labels"]) == 1  # only the label on that span
    assert ex["C"]["expected_output"] is None and ex["C"]["label"]["verdict"] == "pass"
    assert ex["E"]["label"]["verdict"] is None and ex["E"]["labels"][0]["source"] == "judge"


def test_api_export_is_the_same_frozen_version(lab: Lab) -> None:
    r = api(lab.collector, "GET", f"/datasets/{DATASET}/export", format="jsonl", project=PROJECT)
    assert r.status_code == 200, r.text
    assert r.headers["x-spanlake-dataset-version"] == "1"
    assert r.headers["content-disposition"] == 'attachment; filename="support-v1.jsonl"'
    assert r.content == lab.files["jsonl"].read_bytes()
    r = api(lab.collector, "GET", f"/datasets/{DATASET}/export", format="csv", project=PROJECT, version=1)
    assert r.content == lab.files["csv"].read_bytes()
    assert (
        api(lab.collector, "GET", f"/datasets/{DATASET}/export", format="csv", project=PROJECT, version=7).status_code
        == 404
    )
    assert api(lab.collector, "GET", f"/datasets/{DATASET}/export", format="xml", project=PROJECT).status_code == 400
    assert api(lab.collector, "GET", "/datasets/nope/export", format="csv", project=PROJECT).status_code == 404
    shown = api(lab.collector, "GET", f"/datasets/{DATASET}", project=PROJECT).json()
    assert shown["versions"] == [1] and len(shown["items"]) == 5


def test_csv_and_parquet(lab: Lab) -> None:
    rows = list(csv.DictReader(io.StringIO(lab.files["csv"].read_text(), newline="")))
    assert len(rows) == 5 and {r["verdict"] for r in rows} == {"fail", "pass", ""}
    a = next(r for r in rows if r["trace_id"] == lab.sent["A"].trace_id)
    assert json.loads(a["context"])[0] == "Refunds are accepted within 30 days." and a["model"] == "gpt-4o-mini"
    table = pq.read_table(lab.files["parquet"])
    assert table.num_rows == 5 and table.schema.names == EXAMPLE_SCHEMA.names
    manifest = json.loads(table.schema.metadata[b"spanlake.dataset.manifest"])
    assert (manifest["dataset"], manifest["version"], manifest["examples"]) == (DATASET, 1, 5)


def test_openai_evals_samples(lab: Lab) -> None:
    samples = [json.loads(line) for line in lab.files["openai-evals"].read_text().splitlines()]
    # openai/evals (Match, Includes, FuzzyMatch): "input" a list of chat messages, "ideal" a string.
    assert len(samples) == 4  # E has no reference
    for s in samples:
        assert set(s) == {"input", "ideal"} and isinstance(s["ideal"], str)
        assert all(set(m) == {"role", "content"} and m["role"] in ("system", "user", "assistant") for m in s["input"])
    assert {s["ideal"] for s in samples} == {"Fake reply: What is the refund window?", "Paris", "Use the reset link."}


def run_pytest(lab: Lab, target: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if target:
        env["SPANLAKE_EVAL_TARGET"] = target
    env["PYTHONPATH"] = str(lab.out)
    test_file = lab.out / "test_support_v1.py"
    test_file.write_bytes(lab.files["pytest"].read_bytes())
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(lab.out), str(test_file)]
    return subprocess.run(cmd, cwd=lab.out, env=env, capture_output=True, text=True, timeout=300)


def test_pytest_module_fails_on_mismatch(lab: Lab) -> None:
    run = run_pytest(lab)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "3 failed, 1 passed, 1 skipped" in run.stdout
    assert "expected 'Paris', got 'Fake reply: Capital of France?'" in run.stdout
    # The same module against a function that gets every answer right passes.
    refs = {
        "What is the refund window?": "Fake reply: What is the refund window?",
        "Capital of France?": "Paris",
        "How do I reset my password?": "Use the reset link.",
    }
    (lab.out / "evaltarget.py").write_text(TARGET + f"\nORACLE.update({refs!r})\n")
    run = run_pytest(lab, "evaltarget:oracle")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed, 1 skipped" in run.stdout


def test_promptfoo_runs_the_test_cases(lab: Lab, promptfoo: str, fake_openai: FakeOpenAI) -> None:
    tests = yaml.safe_load(lab.files["promptfoo"].read_text())
    assert len(tests) == 5 and all({"description", "vars", "metadata"} <= set(t) for t in tests)
    (lab.out / "tests.yaml").write_bytes(lab.files["promptfoo"].read_bytes())
    config = {
        "description": "spanlake export",
        "prompts": ["{{input}}"],
        "providers": [{"id": "openai:chat:gpt-4o-mini", "config": {"apiBaseUrl": fake_openai.base_url, "apiKey": "x"}}],
        "tests": "file://tests.yaml",
    }
    (lab.out / "promptfooconfig.yaml").write_text(yaml.safe_dump(config))
    env = os.environ | {
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_CONFIG_DIR": str(lab.out / ".promptfoo"),
        "OPENAI_API_KEY": "x",
        "NO_COLOR": "1",
    }
    run = lambda *a: subprocess.run([promptfoo, *a], cwd=lab.out, env=env, capture_output=True, text=True, timeout=300)  # noqa: E731
    done = run("validate", "-c", "promptfooconfig.yaml")
    assert done.returncode == 0 and "Configuration is valid" in done.stdout + done.stderr, done.stdout + done.stderr
    started = time.monotonic()
    done = run("eval", "-c", "promptfooconfig.yaml", "-o", "out.json", "--no-cache", "--no-progress-bar")
    assert (lab.out / "out.json").exists(), done.stdout + done.stderr
    stats = json.loads((lab.out / "out.json").read_text())["results"]["stats"]
    assert (stats["successes"], stats["failures"], stats["errors"]) == (2, 3, 0)  # A, E (no assertion) pass
    assert time.monotonic() - started < 120


def test_deepeval_and_ragas_load_the_exports(lab: Lab, eval_python: str) -> None:
    script = f"""
import json
from deepeval.dataset import EvaluationDataset
ds = EvaluationDataset()
ds.add_goldens_from_json_file({str(lab.files["deepeval"])!r})
g = {{x.name: x for x in ds.goldens}}
from ragas import EvaluationDataset as R
rd = R.from_jsonl({str(lab.files["ragas"])!r})
s = [x for x in rd.samples if x.user_input == "What is the refund window?"][0]
print(json.dumps({{"goldens": len(ds.goldens), "refs": sorted(str(x.expected_output) for x in ds.goldens),
  "ctx": g[{lab.sent["A"].trace_id!r}].retrieval_context, "ragas": len(rd.samples), "sample": s.model_dump()}}))
"""
    env = os.environ | {"DEEPEVAL_TELEMETRY_OPT_OUT": "YES", "RAGAS_DO_NOT_TRACK": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([eval_python, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["goldens"] == 5 and got["ragas"] == 5
    assert "Paris" in got["refs"] and got["ctx"] == ["Refunds are accepted within 30 days.", "Shipping takes 5 days."]
    assert got["sample"]["response"] == "60 days" and got["sample"]["reference"].startswith("Fake reply")
    assert got["sample"]["retrieved_contexts"][1] == "Shipping takes 5 days."


def test_deepeval_and_ragas_structure(lab: Lab) -> None:
    """The published shapes, checked without the packages: DeepEval goldens JSON, Ragas SingleTurnSample JSONL."""
    goldens = json.loads(lab.files["deepeval"].read_text())
    keys = {"name", "input", "actual_output", "expected_output", "retrieval_context", "comments", "additional_metadata"}
    assert len(goldens) == 5 and all(set(g) == keys and isinstance(g["input"], str) for g in goldens)
    samples = [json.loads(line) for line in lab.files["ragas"].read_text().splitlines()]
    assert all(set(s) == {"user_input", "retrieved_contexts", "response", "reference"} for s in samples)
    assert all(isinstance(s["retrieved_contexts"], list) for s in samples)
