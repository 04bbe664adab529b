"""JSONObject: a span's attributes kept as JSON text until read, reading exactly as the parsed dict."""

from __future__ import annotations

import copy
import pickle

import orjson
from hypothesis import given
from hypothesis import strategies as st

from spanlake.analytics.traces.lazy_json import JSONObject

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_reads_as_the_parsed_object(obj):
    text = orjson.dumps(obj).decode()
    lazy = JSONObject(text)
    assert lazy == obj and dict(lazy) == obj and len(lazy) == len(obj) and list(lazy) == list(obj)
    for key, value in obj.items():
        assert key in lazy and lazy[key] == value and lazy.get(key) == value
    assert lazy.get("\x00missing") is None and lazy.get("\x00missing", 7) == 7 and "\x00missing" not in lazy
    assert pickle.loads(pickle.dumps(lazy)) == obj and copy.deepcopy(lazy) == obj


def test_empty_or_non_object_text_reads_as_empty():
    for text in (None, "", "[1, 2]", '"x"', "3"):
        lazy = JSONObject(text)
        assert dict(lazy) == {} and len(lazy) == 0 and lazy.get("a") is None
    assert repr(JSONObject('{"a": 1}')) == "{'a': 1}"
