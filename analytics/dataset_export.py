"""Write a frozen dataset version in the formats eval tools read.

Every format is a pure function of the version's examples (storage.datasets.EXAMPLE_SCHEMA)
and its manifest, so exporting the same version twice gives the same bytes.

Formats needing a reference answer (openai-evals, promptfoo assertions, pytest) use the
example's expected output, else its actual output when the latest reviewer verdict is
`pass` (a passing answer is an acceptable one); examples with neither are skipped
(openai-evals), left without an assertion (promptfoo) or skipped at run time (pytest).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

FORMATS: dict[str, tuple[str, str]] = {  # name -> (file suffix, media type)
    "jsonl": (".jsonl", "application/x-ndjson"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "parquet": (".parquet", "application/vnd.apache.parquet"),
    "openai-evals": (".jsonl", "application/x-ndjson"),
    "promptfoo": (".yaml", "application/yaml; charset=utf-8"),
    "pytest": (".py", "text/x-python; charset=utf-8"),
    "deepeval": (".json", "application/json"),
    "ragas": (".jsonl", "application/x-ndjson"),
}
MATCHES = ("exact", "contains")
CALLS = ("text", "messages", "variables")
TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_]\w*)*$")
JSON_COLUMNS = ("input_messages", "prompt_variables", "context_documents", "labels", "metadata")
CSV_COLUMNS = (
    "example_id", "trace_id", "span_id", "input", "actual_output", "expected_output", "verdict", "failure_mode",
    "score", "comment", "model", "prompt_name", "prompt_version", "service_name", "trace_start", "trace_url",
    "context", "input_messages", "prompt_variables", "labels",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHAT_ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True)
class ExportOptions:
    """`target` (pytest: `module:function`), `call` (what the function receives), `match`
    (how outputs compare), `csv_formula_guard` (prefix cells a spreadsheet would run as a
    formula with `'`), `promptfoo_json` (JSON instead of YAML)."""

    target: str | None = None
    call: str = "text"
    match: str = "exact"
    csv_formula_guard: bool = True
    promptfoo_json: bool = False

    def __post_init__(self) -> None:
        if self.target is not None and not TARGET_RE.match(self.target):
            raise ValueError(f"target must look like package.module:function, got {self.target!r}")
        if self.call not in CALLS:
            raise ValueError(f"call must be one of {', '.join(CALLS)}")
        if self.match not in MATCHES:
            raise ValueError(f"match must be one of {', '.join(MATCHES)}")


def _dumps(v: Any, indent: bool = False) -> bytes:
    opt = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(v, option=opt, default=str)


def rows(examples: pa.Table) -> list[dict[str, Any]]:
    """Examples as dicts with the JSON columns parsed."""
    out = examples.to_pylist()
    for r in out:
        for col in JSON_COLUMNS:
            r[col] = orjson.loads(r[col]) if r.get(col) else None
    return out


def reference(r: Mapping[str, Any]) -> str | None:
    """The answer an output is checked against (see the module docstring)."""
    if r.get("expected_output") is not None:
        return r["expected_output"]
    return r.get("actual_output") if r.get("verdict") == "pass" else None


def full_example(r: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The JSONL shape: everything an example holds, grouped."""
    meta = {k: r[k] for k in ("model", "prompt_name", "prompt_version", "service_name", "trace_start", "trace_url")}
    meta |= {"added_at": r["added_at"], "added_by": r["added_by"], **(r["metadata"] or {})}
    return {
        "id": r["example_id"],
        "dataset": r["dataset"],
        "version": manifest.get("version"),
        "project": r["project"],
        "trace_id": r["trace_id"],
        "span_id": r["span_id"],
        "input": {
            "text": r["input"],
            "messages": r["input_messages"] or [],
            "prompt_template": r["prompt_template"],
            "prompt_variables": r["prompt_variables"],
            "context": r["context"] or [],
            "context_documents": r["context_documents"] or [],
        },
        "actual_output": r["actual_output"],
        "expected_output": r["expected_output"],
        "label": {k: r[k] for k in ("verdict", "failure_mode", "score", "comment")},
        "labels": r["labels"] or [],
        "metadata": meta,
    }


def _jsonl(items: list[Any]) -> bytes:
    return b"".join(_dumps(i) + b"\n" for i in items)


def to_jsonl(data: list[dict[str, Any]], manifest: Mapping[str, Any], _: ExportOptions) -> bytes:
    return _jsonl([full_example(r, manifest) for r in data])


def _guard(v: str, on: bool) -> str:
    return "'" + v if on and v.startswith(_FORMULA_START) else v


def to_csv(data: list[dict[str, Any]], _: Mapping[str, Any], opts: ExportOptions) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in data:
        row = []
        for col in CSV_COLUMNS:
            v = r.get(col)
            if col in ("context", *JSON_COLUMNS):
                v = None if v is None else _dumps(v).decode()
            if isinstance(v, str):
                row.append(_guard(v.replace("\x00", "\ufffd"), opts.csv_formula_guard))
            else:
                row.append("" if v is None else (v.isoformat() if hasattr(v, "isoformat") else v))
        w.writerow(row)
    return buf.getvalue().encode("utf-8")


def to_parquet(examples: pa.Table, manifest: Mapping[str, Any]) -> bytes:
    meta = {b"spanlake.dataset.manifest": _dumps(manifest)}
    table = examples.replace_schema_metadata({**(examples.schema.metadata or {}), **meta})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def chat(r: Mapping[str, Any]) -> list[dict[str, str]]:
    """The input as plain chat messages (role, content): tool calls and results left out."""
    msgs = [
        {"role": m["role"], "content": m["content"]}
        for m in r["input_messages"] or []
        if m.get("role") in CHAT_ROLES and isinstance(m.get("content"), str)
    ]
    if not any(m["role"] == "user" for m in msgs) and r.get("input") is not None:
        msgs.append({"role": "user", "content": r["input"]})
    return msgs


def to_openai_evals(data: list[dict[str, Any]], _: Mapping[str, Any], __: ExportOptions) -> bytes:
    """openai/evals samples: {"input": [chat messages], "ideal": reference}."""
    return _jsonl([{"input": chat(r), "ideal": ref} for r in data if (ref := reference(r)) is not None])


RESERVED_VARS = ("input", "messages", "context", "expected_output")


def promptfoo_tests(data: list[dict[str, Any]], manifest: Mapping[str, Any], opts: ExportOptions) -> list[Any]:
    """promptfoo test cases: vars (input, messages as JSON, context, prompt variables), an
    assertion on the reference, metadata linking back to the trace."""
    tests = []
    for r in data:
        variables = {
            "input": r["input"] or "",
            "messages": _dumps(chat(r)).decode(),
            "context": "\n\n".join(r["context"] or []),
        }
        for k, v in (r["prompt_variables"] or {}).items():
            variables[f"var_{k}" if k in RESERVED_VARS else str(k)] = v if isinstance(v, str) else _dumps(v).decode()
        test: dict[str, Any] = {"description": f"{r['dataset']} v{manifest.get('version')} {r['example_id']}"}
        test["vars"] = variables
        ref = reference(r)
        if ref is not None:
            variables["expected_output"] = ref
            test["assert"] = [{"type": "equals" if opts.match == "exact" else "contains", "value": ref}]
        test["metadata"] = {
            "example_id": r["example_id"],
            "trace_id": r["trace_id"],
            "span_id": r["span_id"] or "",
            "trace_url": r["trace_url"],
            "verdict": r["verdict"] or "",
            "failure_mode": r["failure_mode"] or "",
        }
        tests.append(test)
    return tests


def to_promptfoo(data: list[dict[str, Any]], manifest: Mapping[str, Any], opts: ExportOptions) -> bytes:
    tests = promptfoo_tests(data, manifest, opts)
    if opts.promptfoo_json:
        return _dumps(tests, indent=True)
    return yaml.safe_dump(tests, allow_unicode=False, sort_keys=False, width=120).encode()


def to_deepeval(data: list[dict[str, Any]], _: Mapping[str, Any], __: ExportOptions) -> bytes:
    """DeepEval goldens (EvaluationDataset.add_goldens_from_json_file)."""
    items = []
    for r in data:
        meta = {"example_id": r["example_id"], "trace_id": r["trace_id"], "span_id": r["span_id"]}
        meta |= {"trace_url": r["trace_url"], "verdict": r["verdict"], "failure_mode": r["failure_mode"]}
        items.append(
            {
                "name": r["example_id"],
                "input": r["input"] or "",
                "actual_output": r["actual_output"],
                "expected_output": reference(r),
                "retrieval_context": r["context"] or None,
                "comments": r["comment"],
                "additional_metadata": meta,
            }
        )
    return _dumps(items, indent=True)


def to_ragas(data: list[dict[str, Any]], _: Mapping[str, Any], __: ExportOptions) -> bytes:
    """Ragas single-turn samples (EvaluationDataset.from_jsonl)."""
    return _jsonl(
        [
            {
                "user_input": r["input"] or "",
                "retrieved_contexts": r["context"] or [],
                "response": r["actual_output"],
                "reference": reference(r),
            }
            for r in data
        ]
    )


PYTEST_TEMPLATE = '''"""Eval tests generated by spanlake: dataset {dataset} version {version} ({count} examples).

Each example's input goes to TARGET and the test fails when the output does not match the
expected output ({match}). Examples without an expected output are skipped.
Run: pytest {filename}    Another function: SPANLAKE_EVAL_TARGET=package.module:function pytest {filename}
"""

from __future__ import annotations

import importlib
import json
import os

import pytest

TARGET = {target!r}
CALL = {call!r}  # text: fn(input text); messages: fn(chat messages); variables: fn(**prompt variables)
MATCH = {match!r}  # exact: equal after trimming whitespace; contains: expected text inside the output
EXAMPLES = json.loads({data!r})


def _load(spec: str):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.fixture(scope="module")
def target():
    spec = os.environ.get("SPANLAKE_EVAL_TARGET") or TARGET
    if not spec:
        pytest.fail("no target function: export with --target or set SPANLAKE_EVAL_TARGET=package.module:function")
    return _load(spec)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["id"] for e in EXAMPLES])
def test_example(target, example):
    expected = example["reference"]
    if expected is None:
        pytest.skip("no expected output for this example")
    if CALL == "variables":
        actual = target(**(example["variables"] or {{}}))
    else:
        actual = target(example["messages"] if CALL == "messages" else example["input"])
    actual = "" if actual is None else str(actual)
    ok = expected.strip() in actual if MATCH == "contains" else actual.strip() == expected.strip()
    assert ok, f"{{example['id']}}: expected {{expected!r}}, got {{actual!r}} (trace: {{example['trace_url']}})"
'''


def to_pytest(data: list[dict[str, Any]], manifest: Mapping[str, Any], opts: ExportOptions) -> bytes:
    cases = [
        {
            "id": r["example_id"],
            "input": r["input"],
            "messages": chat(r),
            "reference": reference(r),
            "variables": r["prompt_variables"],
            "trace_url": r["trace_url"],
        }
        for r in data
    ]
    src = PYTEST_TEMPLATE.format(
        dataset=manifest.get("dataset"),
        version=manifest.get("version"),
        count=len(cases),
        match=opts.match,
        filename=file_name(str(manifest.get("dataset")), int(manifest.get("version") or 0), "pytest"),
        target=opts.target or "",
        call=opts.call,
        data=_dumps(cases).decode(),
    )
    return src.encode("utf-8")


Writer = Callable[[list[dict[str, Any]], Mapping[str, Any], ExportOptions], bytes]
WRITERS: dict[str, Writer] = {
    "jsonl": to_jsonl,
    "csv": to_csv,
    "openai-evals": to_openai_evals,
    "promptfoo": to_promptfoo,
    "pytest": to_pytest,
    "deepeval": to_deepeval,
    "ragas": to_ragas,
}


def export_bytes(examples: pa.Table, manifest: Mapping[str, Any], fmt: str, opts: ExportOptions | None = None) -> bytes:
    """The version's examples in format `fmt` (a key of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    opts = opts or ExportOptions()
    if fmt == "parquet":
        return to_parquet(examples, manifest)
    return WRITERS[fmt](rows(examples), manifest, opts)


def file_name(dataset: str, version: int, fmt: str, opts: ExportOptions | None = None) -> str:
    suffix = ".json" if fmt == "promptfoo" and opts is not None and opts.promptfoo_json else FORMATS[fmt][0]
    stem = (
        f"test_{dataset}_v{version}".replace("-", "_").replace(".", "_") if fmt == "pytest" else f"{dataset}-v{version}"
    )
    return stem + suffix
