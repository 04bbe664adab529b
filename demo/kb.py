"""The demo's help center: a few articles and a small keyword search over them (no model, no index)."""

from __future__ import annotations

import math
import re
from typing import Any

DATA_SOURCE = "help-center"

ARTICLES: list[dict[str, str]] = [
    {
        "id": "kb-101",
        "title": "Where is my order?",
        "content": "Track an order under Account > Orders. Orders ship within 2 business days; "
        "standard delivery takes 3-5 business days after shipping. The tracking link appears once "
        "the courier scans the parcel.",
    },
    {
        "id": "kb-102",
        "title": "Delivery delays and weather",
        "content": "Severe weather, strikes or holidays can delay delivery by 1-3 days. If a delivery "
        "is late by more than 5 business days, contact us and we resend the parcel or refund it.",
    },
    {
        "id": "kb-201",
        "title": "Refunds and returns",
        "content": "Return an item within 30 days for a full refund. Damaged or broken items are "
        "refunded without a return. Refunds over $150 are reviewed by the billing team within 2 days.",
    },
    {
        "id": "kb-202",
        "title": "Invoices and billing",
        "content": "Invoices are in Account > Billing. A charge appears twice only while the bank "
        "holds the payment; the hold disappears within 5 days. VAT numbers can be added to an invoice.",
    },
    {
        "id": "kb-301",
        "title": "Reset your password",
        "content": "Choose 'Forgot password' on the sign-in page and enter your login email; the reset "
        "link is valid for 1 hour. If no email arrives, check the spam folder.",
    },
    {
        "id": "kb-302",
        "title": "Change your email or delete your account",
        "content": "Change the login email under Account > Security. Deleting an account removes "
        "orders and invoices after 30 days, as the privacy policy describes.",
    },
    {
        "id": "kb-401",
        "title": "Courier did not come",
        "content": "If the courier missed a delivery, the parcel is retried the next business day. "
        "You can pick a new delivery slot from the tracking link; we do not call customers back by phone.",
    },
]

_STOP = "a an and are be by can do does for from how i if in is it its me my of on or our the this to was we what"
STOPWORDS = frozenset((_STOP + " when where which who will with you your").split(" "))
_WORD = re.compile(r"[a-z0-9]+")


def terms(text: str) -> list[str]:
    """Lowercase word tokens without stopwords, with a crude plural strip."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in STOPWORDS or len(w) < 2:
            continue
        out.append(w[:-1] if len(w) > 4 and w.endswith("s") else w)
    return out


def _idf() -> dict[str, float]:
    df: dict[str, int] = {}
    for a in ARTICLES:
        for t in set(terms(a["title"] + " " + a["content"])):
            df[t] = df.get(t, 0) + 1
    n = len(ARTICLES)
    return {t: math.log(1 + n / c) for t, c in df.items()}


IDF = _idf()


def search(query: str, k: int = 3, min_score: float = 0.2) -> list[dict[str, Any]]:
    """The best `k` articles for `query`, scored in [0, 1] (idf-weighted share of query terms,
    title matches count double); articles under `min_score` are left out."""
    q = set(terms(query))
    norm = sum(IDF.get(t, 0.0) for t in q)
    if not norm:
        return []
    scored = []
    for a in ARTICLES:
        title, body = set(terms(a["title"])), set(terms(a["content"]))
        s = sum(IDF.get(t, 0.0) * (2.0 if t in title else 1.0 if t in body else 0.0) for t in q) / (2 * norm)
        if s >= min_score:
            scored.append((round(min(1.0, s), 3), a))
    scored.sort(key=lambda x: (-x[0], x[1]["id"]))
    return [
        {"id": a["id"], "score": s, "content": a["content"], "metadata": {"title": a["title"]}} for s, a in scored[:k]
    ]
