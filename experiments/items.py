"""What an experiment runs over: the examples of one frozen dataset version, as `DatasetItem`s.

An app (`--app module:function`) receives `item.input` and, if it takes a second argument,
the `DatasetItem` itself (docs/experiments.md, "Writing the app").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from spanlake.storage.datasets import Version, check_names, read_examples, read_version, versions
from spanlake.storage.layout import DataDir

_REF = re.compile(r"^(?P<name>[^@]+?)(?:@(?:v?(?P<version>\d+)|(?P<latest>latest)))?$")


@dataclass(frozen=True)
class DatasetItem:
    """One example of a frozen dataset version, as the app sees it.

    `id` is the example id (trace_id, or trace_id:span_id); `input` the user's input text;
    `messages` the first model call's input messages (`[{role, content}]`); `variables` the
    prompt variables; `context` the retrieved documents' text; `expected_output` the reviewer's
    correction (None when there is none: checks are then not applicable); `verdict`,
    `failure_mode` the production trace's label; `metadata` model, prompt version, trace link...
    """

    id: str
    input: str | None
    messages: Sequence[Mapping[str, Any]] = ()
    variables: Mapping[str, Any] | None = None
    context: Sequence[str] = ()
    expected_output: str | None = None
    verdict: str | None = None
    failure_mode: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """What `--app http://...` receives as its JSON body."""
        return {
            "id": self.id,
            "input": self.input,
            "messages": list(self.messages),
            "variables": self.variables,
            "context": list(self.context),
            "expected_output": self.expected_output,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class DatasetRef:
    """`NAME@VERSION` (`NAME` or `NAME@latest`: the latest frozen version)."""

    name: str
    version: int | None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        m = _REF.match(text.strip())
        if not m:
            raise ValueError(f"{text!r}: use NAME@VERSION (e.g. refunds@3) or NAME@latest")
        return cls(m.group("name"), int(m.group("version")) if m.group("version") else None)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def resolve(data_dir: DataDir, project: str, ref: DatasetRef) -> Version:
    """The frozen version `ref` names; LookupError (saying which exist) when there is none."""
    check_names(project, ref.name)
    found = read_version(data_dir, project, ref.name, ref.version)
    if found is not None:
        return found
    have = versions(data_dir, project, ref.name)
    if not have:
        raise LookupError(
            f"dataset {ref.name!r} in project {project!r} has no frozen version "
            f"(freeze one with `spanlake dataset export {ref.name} --project {project} --format jsonl`)"
        )
    listed = ", ".join(str(v) for v in have)
    raise LookupError(f"dataset {ref.name!r} in project {project!r} has no version {ref.version} (it has {listed})")


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def load_items(data_dir: DataDir, version: Version) -> list[DatasetItem]:
    """The version's examples, in their stored order."""
    items = []
    for row in read_examples(data_dir, version).to_pylist():
        meta = _loads(row.get("metadata")) or {}
        meta = meta if isinstance(meta, dict) else {"value": meta}
        for k in ("model", "prompt_name", "prompt_version", "service_name", "trace_url", "trace_id"):
            if row.get(k) is not None:
                meta.setdefault(k, row[k])
        messages = _loads(row.get("input_messages")) or []
        variables = _loads(row.get("prompt_variables"))
        items.append(
            DatasetItem(
                id=row["example_id"],
                input=row.get("input"),
                messages=messages if isinstance(messages, list) else [],
                variables=variables if isinstance(variables, dict) else None,
                context=list(row.get("context") or []),
                expected_output=row.get("expected_output"),
                verdict=row.get("verdict"),
                failure_mode=row.get("failure_mode"),
                metadata=meta,
            )
        )
    return items
