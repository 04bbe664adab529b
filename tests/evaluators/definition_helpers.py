"""What the evaluators.toml tests share (tests/evaluators/test_definition*.py)."""

from __future__ import annotations

import pytest

from spanlake.evaluators.definition import EvaluatorError, parse


def error_of(text: str) -> str:
    """The message of the EvaluatorError that parsing `text` raises."""
    with pytest.raises(EvaluatorError) as e:
        parse(text)
    return str(e.value)
