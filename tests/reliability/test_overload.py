"""Overload: with 2 running and a queue of 4, a burst of 24 requests gets its surplus refused at
once with 503 + Retry-After (counted on /metrics), while every admitted request finishes."""
import asyncio
import time

import httpx

from tests.reliability.conftest import NAME
from tests.server.launcher import metric

BURST = 24
MAX_TOKENS = 48
QUEUE = 4  # the overload server's --max-queued-requests


def test_burst_beyond_the_queue(overload_server, report):
    url = overload_server.url
    rejected_before = metric(url, 'ember:num_requests_rejected_total{model_name="tiny",reason="queue_full"}')

    async def one(http: httpx.AsyncClient, i: int):
        start = time.monotonic()
        r = await http.post("/v1/completions", json={"model": NAME, "prompt": f"Burst {i}", "max_tokens": MAX_TOKENS,
                                                     "temperature": 0, "ignore_eos": True})
        return r, time.monotonic() - start

    async def burst():
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=BURST)) as http:
            return await asyncio.gather(*(one(http, i) for i in range(BURST)))

    results = asyncio.run(burst())
    ok = [(r, t) for r, t in results if r.status_code == 200]
    refused = [(r, t) for r, t in results if r.status_code == 503]
    assert len(ok) + len(refused) == BURST, [r.status_code for r, _ in results]
    # A burst can land before the engine loop starts any of it: then only the queue's worth
    # (4) is admitted; more when some reached the 2 running slots first.
    assert refused and len(ok) >= QUEUE
    for r, _ in refused:
        assert r.headers["retry-after"] == "1"
        assert "overloaded" in r.json()["error"]["message"]
    for r, _ in ok:
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "length" and r.json()["usage"]["completion_tokens"] == MAX_TOKENS
    # Refused at once: faster than any admitted request took.
    assert max(t for _, t in refused) < min(t for _, t in ok)
    rejected = metric(url, 'ember:num_requests_rejected_total{model_name="tiny",reason="queue_full"}')
    assert rejected - rejected_before == len(refused)
    after = httpx.post(url + "/v1/completions", json={"model": NAME, "prompt": "After", "max_tokens": 2}, timeout=30)
    assert after.status_code == 200
    report("overload", sent=BURST, admitted=len(ok), rejected_503=len(refused),
           slowest_rejection_ms=round(1000 * max(t for _, t in refused)),
           fastest_admitted_ms=round(1000 * min(t for _, t in ok)))
