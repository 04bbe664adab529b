"""The fake OpenAI server's run-time outages: for N requests, for T seconds, and hung requests."""

from __future__ import annotations

import time

import httpx
import pytest

from spanlake.demo.fake_openai import FakeOpenAI

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_outage_for_seconds_then_recovery_and_hung_requests_released() -> None:
    with FakeOpenAI() as fake, httpx.Client(base_url=fake.base_url, timeout=5) as http:
        fake.outage("503", seconds=0.5, retry_after_s=2)
        down = http.post("/chat/completions", json=BODY)
        assert (down.status_code, down.headers["retry-after"]) == (503, "2")
        assert http.post("/embeddings", json={"model": "text-embedding-3-small", "input": "x"}).status_code == 503
        time.sleep(0.6)
        assert http.post("/chat/completions", json=BODY).status_code == 200
        fake.outage("hang", requests=1)
        with pytest.raises(httpx.ReadTimeout):
            http.post("/chat/completions", json=BODY, timeout=0.3)
        assert http.post("/chat/completions", json=BODY).status_code == 200  # only one request hung
        assert fake.requests == 5
        with pytest.raises(ValueError, match="outage kind"):
            fake.outage("500")
