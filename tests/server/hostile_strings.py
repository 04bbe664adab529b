"""Hypothesis strategies for hostile text: SQL and JSON-path metacharacters, quotes, backslashes,
NUL and other control characters, bidi marks, 5,000-character strings and the empty string
(tests/server/test_api_hostile_strings.py and the schemathesis run)."""

from __future__ import annotations

from hypothesis import strategies as st

# Characters that mean something to SQL, JSON, JSON paths and pointers, URLs, CSV, shells and
# terminals; bidi controls (RLO, RLM, LRI, PDI) and a zero-width joiner.
METACHARACTERS = "'\"\\`;%_*?$.[](){}/~=,:@#&|<>!^+- \t\n\r\x00\x07\x1b\u202e\u200f\u2066\u2069\u200d"
KNOWN = [
    "",
    "' OR '1'='1",
    '"; DROP TABLE spans; --',
    "x%' UNION SELECT * FROM spans_raw --",
    '$."a"',
    "$[0]",
    "$..*",
    "/a~1b",
    "~0",
    "\\",
    '\\"',
    "a\x00b",
    "\u202eevil",
    "attr:x",
    "a=b",
    "a,b",
    " padded ",
    "🦆 ünïcödé",
]
LONG = 5000


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text made to break parsers: metacharacters, any Unicode (no lone surrogates), known
    attack strings and 5,000-character runs."""
    return st.one_of(
        st.sampled_from(KNOWN),
        st.text(alphabet=st.sampled_from(METACHARACTERS + "aZ0"), max_size=max_size),
        st.text(max_size=max_size),
        st.builds(lambda c: c * LONG, st.sampled_from(METACHARACTERS + "x")),
    )


PRINTABLE = "".join(c for c in METACHARACTERS if c >= " " or c == "\t")


def hostile_key() -> st.SearchStrategy[str]:
    """Attribute keys as a span may carry them: any of the above, and often printable
    metacharacters only (what a key in the wild holds)."""
    return st.one_of(st.text(alphabet=st.sampled_from(PRINTABLE + "aZ0"), min_size=1, max_size=12), hostile_text(24))
