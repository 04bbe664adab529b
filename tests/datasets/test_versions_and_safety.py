"""Frozen versions never change; names cannot escape the lake; hostile text survives every format."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from spanlake.analytics.dataset_export import FORMATS, ExportOptions, export_bytes
from spanlake.analytics.datasets import freeze_dataset
from spanlake.analytics.runner import Analytics
from spanlake.cli.main import cli
from spanlake.storage.datasets import EXAMPLE_SCHEMA, check_names, freeze, read_examples, read_version, versions
from spanlake.storage.layout import DataDir
from tests.conftest import RunningCollector
from tests.datasets.helpers import PROJECT, api, label, qa_trace, send

HOSTILE = (
    "=HYPERLINK(\"http://x\")<script>alert('x')</script><img src=x onerror=alert(1)>\x00\x07\x1b[31m\u202e"
    "'''\"\"\"\\ {{ x }} ${x} %s\r\n--- !!python/object:os.system\n"
)
HUGE = "é" * 300_000  # 600 KB of UTF-8


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def items(collector: RunningCollector, name: str, *trace_ids: str, op: str = "add") -> None:
    body = {"items": [{"trace_id": t} for t in trace_ids], "project": PROJECT, "op": op}
    r = api(collector, "POST", f"/datasets/{name}/items", body)
    assert r.status_code == 200, r.text


def test_versions_are_frozen(collector: RunningCollector) -> None:
    sent = []
    for q in ("one?", "two?"):
        spans, s = qa_trace(q, "answer")
        send(collector, spans)
        sent.append(s)
        label(collector, s.trace_id, "ana", verdict="fail", failure_mode="format_error", expected_output=f"{q} right")
    items(collector, "ds", *(s.trace_id for s in sent))
    collector.flush()
    an = Analytics(collector.lake)
    dd = collector.lake.data_dir
    first = freeze_dataset(an, PROJECT, "ds", author="ana")
    assert (first.version.version, first.created, first.version.manifest["examples"]) == (1, True, 2)
    v1_file = dd.lake / first.version.examples_rel
    v1_hash = sha(v1_file)
    assert not freeze_dataset(an, PROJECT, "ds").created  # nothing changed: still v1

    label(collector, sent[0].trace_id, "bo", verdict="pass", expected_output="corrected")
    collector.flush()
    second = freeze_dataset(an, PROJECT, "ds")
    assert (second.version.version, second.created) == (2, True)
    assert read_examples(dd, second.version).column("expected_output").to_pylist()[0] == "corrected"
    items(collector, "ds", sent[1].trace_id, op="remove")
    collector.flush()
    third = freeze_dataset(an, PROJECT, "ds")
    assert third.version.version == 3 and third.version.manifest["examples"] == 1
    assert sha(v1_file) == v1_hash and versions(dd, PROJECT, "ds") == [1, 2, 3]
    v1 = read_version(dd, PROJECT, "ds", 1)
    assert v1 is not None and read_examples(dd, v1).column("expected_output").to_pylist() == [
        "one? right",
        "two? right",
    ]

    # The traces leave the lake (retention): the next build keeps the rows the last version had.
    for f in (dd.lake / "spans").rglob("*.parquet"):
        f.unlink()
    again = freeze_dataset(an, PROJECT, "ds")
    assert (again.version.version, again.created, again.carried, again.missing) == (3, False, 1, [])
    with pytest.raises(LookupError):
        freeze_dataset(an, PROJECT, "never-made")


FREEZER = """
import sys
import pyarrow as pa
from spanlake.storage.datasets import EXAMPLE_SCHEMA, freeze
from spanlake.storage.layout import DataDir
table = pa.Table.from_pylist([{"example_id": sys.argv[2], "project": "shop", "dataset": "race"}], schema=EXAMPLE_SCHEMA)
for i in range(6):
    v, created = freeze(DataDir(sys.argv[1]), "shop", "race", table, author=sys.argv[2], force=True)
    print(v.version)
"""


def test_two_processes_freezing_at_once_never_share_a_version(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "data").create()
    procs = [
        subprocess.Popen([sys.executable, "-c", FREEZER, str(dd.root), who], stdout=subprocess.PIPE, text=True)
        for who in ("p1", "p2")
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(int(v) for out in outs for v in out) == list(range(1, 13))
    assert versions(dd, "shop", "race") == list(range(1, 13))
    for n in range(1, 13):
        v = read_version(dd, "shop", "race", n)
        assert v is not None and v.manifest["version"] == n
        assert read_examples(dd, v).column("example_id").to_pylist() == [v.manifest["frozen_by"]]


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", ".hidden", "x" * 200, "a\x00b", "", "é"])
def test_names_cannot_escape(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        check_names(PROJECT, name)
    with pytest.raises(ValueError):
        freeze(DataDir(tmp_path), PROJECT, name, EXAMPLE_SCHEMA.empty_table())
    out = CliRunner().invoke(cli, ["dataset", "export", name, "--format", "csv", "--data-dir", str(tmp_path)])
    assert out.exit_code != 0
    assert not any(tmp_path.rglob("*.parquet"))


def test_api_refuses_traversal(collector: RunningCollector) -> None:
    for path in (
        "/datasets/..%2F..%2Fetc/export",
        "/datasets/%2E%2E/export",
        "/datasets/.env/export",
        "/datasets/a%00b",
    ):
        r = api(collector, "GET", path, format="csv", project=PROJECT)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert "root:" not in r.text
    assert api(collector, "POST", "/datasets", {"name": "../x", "project": PROJECT}).status_code == 400
    assert (
        api(collector, "POST", "/datasets/ok/items", {"items": [{"trace_id": "a" * 32}], "project": "../p"}).status_code
        == 400
    )
    assert api(collector, "GET", "/datasets", project="..").status_code == 400
    assert api(collector, "GET", "/datasets/ok/export", format="pytest", target="os:system; rm").status_code == 400


def test_hostile_content_is_stored_and_exported_safely(collector: RunningCollector, tmp_path: Path) -> None:
    spans, s = qa_trace(HOSTILE, HOSTILE, docs=(HOSTILE,), variables={"q": HOSTILE, "</script>": 1})
    send(collector, spans)
    expected = HOSTILE + HUGE
    label(
        collector,
        s.trace_id,
        "<b>ana</b>",
        verdict="fail",
        failure_mode="policy_violation",
        comment=HOSTILE,
        expected_output=expected,
    )
    r = api(collector, "POST", "/datasets", {"name": "hostile", "project": PROJECT, "description": HOSTILE})
    assert r.status_code == 200
    items(collector, "hostile", s.trace_id)
    collector.flush()
    stored = api(collector, "GET", "/labels", trace_id=s.trace_id, project=PROJECT).json()["current"][0]
    assert stored["comment"] == HOSTILE and stored["expected_output"] == expected

    exports = {}
    for fmt in FORMATS:
        r = api(collector, "GET", "/datasets/hostile/export", format=fmt, project=PROJECT, target="evaltarget:answer")
        assert r.status_code == 200, r.text
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["content-type"].startswith(
            FORMATS[fmt][1].split(";")[0]
        )
        exports[fmt] = r.content

    line = exports["jsonl"].decode()
    assert line.count("\n") == 1 and not any(ord(c) < 0x20 for c in line[:-1])  # control characters escaped
    ex = json.loads(line)
    assert ex["expected_output"] == expected and ex["input"]["text"] == HOSTILE and ex["actual_output"] == HOSTILE
    assert ex["label"]["comment"] == HOSTILE and ex["input"]["context"] == [HOSTILE]
    assert ex["input"]["prompt_variables"] == {"q": HOSTILE, "</script>": 1}

    csv.field_size_limit(16 * 1024 * 1024)  # Python's reader stops at 128 KB a field by default
    row = next(csv.DictReader(io.StringIO(exports["csv"].decode(), newline="")))
    assert row["expected_output"] == "'" + expected.replace("\x00", "\ufffd")  # formula guard, no NUL
    assert row["input"].startswith("'=HYPERLINK")
    raw = export_bytes(pq.read_table(io.BytesIO(exports["parquet"])), {}, "csv", ExportOptions(csv_formula_guard=False))
    assert next(csv.DictReader(io.StringIO(raw.decode(), newline="")))["input"] == HOSTILE.replace("\x00", "\ufffd")

    table = pq.read_table(io.BytesIO(exports["parquet"]))
    assert table.column("expected_output").to_pylist() == [expected]
    (test,) = yaml.safe_load(exports["promptfoo"])
    assert test["vars"]["input"] == HOSTILE and test["assert"][0]["value"] == expected
    assert test["vars"]["</script>"] == "1" and test["vars"]["q"] == HOSTILE
    assert json.loads(exports["openai-evals"])["ideal"] == expected
    assert json.loads(exports["deepeval"])[0]["expected_output"] == expected
    assert json.loads(exports["ragas"])["user_input"] == HOSTILE

    module = tmp_path / "test_hostile_v1.py"
    module.write_bytes(exports["pytest"])
    compile(exports["pytest"], str(module), "exec")
    spec = importlib.util.spec_from_file_location("hostile_export", module)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    assert mod.TARGET == "evaltarget:answer"
    assert mod.EXAMPLES[0]["reference"] == expected and mod.EXAMPLES[0]["input"] == HOSTILE


def test_every_format_of_an_empty_dataset(tmp_path: Path) -> None:
    manifest = {"dataset": "empty", "version": 1}
    empty = pa.Table.from_pylist([], schema=EXAMPLE_SCHEMA)
    for fmt in FORMATS:
        data = export_bytes(empty, manifest, fmt, ExportOptions(target="m:f"))
        assert isinstance(data, bytes)
    compile(export_bytes(empty, manifest, "pytest"), "t.py", "exec")
