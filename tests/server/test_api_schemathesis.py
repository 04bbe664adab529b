"""schemathesis against the published OpenAPI document of a running collector (authentication
off on loopback, seeded over OTLP): no 5xx, and every status code, content type and body as
the spec declares. Besides schemathesis' positive and negative cases, a third mode takes
positive cases and puts hostile text (tests/server/hostile_strings.py: SQL and JSON-path
metacharacters, quotes, backslashes, NUL, bidi marks, 5,000 characters, empty) into one of
their string query parameters or JSON body fields. Bounded: MAX_EXAMPLES cases per operation
and mode (HOSTILE_EXAMPLES for the third), derandomized (the same cases every run), no
shrinking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from spanlake.server.api.limits import ENV_RATE
from tests.conftest import start_collector
from tests.server.api_helpers import PRICES, alpha_requests, seed_experiments, send
from tests.server.hostile_strings import hostile_text

MAX_EXAMPLES = 15  # per operation and mode (positive, negative)
HOSTILE_EXAMPLES = 5  # per operation with a string to replace
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.schemas.BaseSchema]:
    data_dir = tmp_path_factory.mktemp("schemathesis") / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "prices.toml").write_text(PRICES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_RATE, "0")
        running, stop = start_collector(data_dir, auth="off")
    try:
        for req in alpha_requests():
            send(running.http, req, None)
        running.flush()
        seed_experiments(data_dir)
        yield schemathesis.openapi.from_url(f"{running.http}/api/v1/openapi.json")
    finally:
        stop()


def test_api_conforms_to_its_spec(published: schemathesis.schemas.BaseSchema) -> None:
    """Every operation, with data that fits the spec and data that does not."""
    failures: list[str] = []
    operations = [result.ok() for result in published.get_all_operations()]
    assert len(operations) > 30
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                derandomize=True,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS, timeout=60)

            try:
                run()
            except Unsatisfiable:  # nothing to get wrong: no parameters and no body
                assert mode == GenerationMode.NEGATIVE, op.label
            except Exception as e:  # one report listing every operation that broke its spec
                failures.append(f"{op.label} ({mode}): {str(e)[:1500]}")
        failures += _hostile_strings(op)
    assert not failures, "\n\n".join(failures)


def _string_slots(case: schemathesis.Case) -> list[tuple[str, str]]:
    """Where a case holds a string of its own: ('query', name) and ('body', field)."""
    slots = [("query", k) for k, v in (case.query or {}).items() if isinstance(v, str | list)]
    if isinstance(case.body, dict):
        slots += [("body", k) for k, v in case.body.items() if isinstance(v, str)]
    return slots


def _hostile_strings(op: Any) -> list[str]:
    """Positive cases of `op` with hostile text in one string parameter or body field."""

    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE), data=st.data())
    @settings(
        max_examples=HOSTILE_EXAMPLES,
        derandomize=True,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        slots = _string_slots(case)
        if slots:
            where, name = data.draw(st.sampled_from(slots), label="slot")
            value = data.draw(hostile_text(), label=f"{where}.{name}")
            if where == "query":
                case.query[name] = [value] if isinstance(case.query[name], list) else value
            else:
                case.body[name] = value
        case.call_and_validate(checks=CHECKS, timeout=60)

    try:
        run()
    except Unsatisfiable:
        pass
    except Exception as e:
        return [f"{op.label} (hostile strings): {str(e)[:1500]}"]
    return []
