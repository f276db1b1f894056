"""Graceful shutdown. SIGTERM under load: admission stops (503, /health 503), the requests in
flight finish in full, and the process exits 0 with every block free and its children gone.
SIGINT with a 1 s --shutdown-timeout: the requests still running after it are aborted with a
503 error in their streams, and the process still exits 0, promptly."""
import asyncio
import json
import os
import signal
import time

import httpx

from tests.processes import alive
from tests.reliability.conftest import NAME, SIGINT_SHUTDOWN_TIMEOUT_S, workers_of

ENGINE_STOPPED_CLEAN = "Engine stopped: 0 requests left, 0 KV cache blocks in use"


async def stream(http: httpx.AsyncClient, i: int, max_tokens: int, started: asyncio.Event, counter: list):
    body = {"model": NAME, "prompt": f"Shutdown {i}", "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True, "stream": True}
    tokens, finish, error, first = 0, None, None, True
    async with http.stream("POST", "/v1/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if "error" in event:
                error = event["error"]
                continue
            if first:
                first = False
                counter.append(i)
                if len(counter) == counter[0]:  # counter[0]: how many must start first
                    started.set()
            tokens += 1
            finish = event["choices"][0]["finish_reason"] or finish
    return {"status": response.status_code, "tokens": tokens, "finish": finish, "error": error}


async def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def health_is(http: httpx.AsyncClient, status: int) -> bool:
    return (await http.get("/health")).status_code == status


def test_sigterm_under_load_finishes_in_flight_and_exits_0(sigterm_server, report):
    server, n, max_tokens = sigterm_server, 8, 64
    assert workers_of(server)["rank"]  # tensor-parallel rank 1 runs in a worker process
    children = server.children()

    async def scenario():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            started, counter = asyncio.Event(), [n + 1]
            tasks = [asyncio.create_task(stream(http, i, max_tokens, started, counter)) for i in range(n)]
            await asyncio.wait_for(started.wait(), 30)
            signalled = time.monotonic()
            os.kill(server.proc.pid, signal.SIGTERM)
            await wait_for(lambda: health_is(http, 503), 5)
            late = await http.post("/v1/completions", json={"model": NAME, "prompt": "late", "max_tokens": 2})
            results = await asyncio.gather(*tasks)
            return signalled, late, results

    signalled, late, results = asyncio.run(scenario())
    assert late.status_code == 503 and late.headers.get("retry-after") == "1"
    assert "shutting down" in late.json()["error"]["message"]
    for r in results:
        assert r["status"] == 200 and r["error"] is None, r
        assert r["finish"] == "length" and r["tokens"] == max_tokens
    code = server.wait_exit(30)
    shutdown_seconds = time.monotonic() - signalled
    assert code == 0, server.log()[-3000:]
    assert ENGINE_STOPPED_CLEAN in server.log()
    assert not [pid for pid in children if alive(pid)]
    report("sigterm", in_flight=n, finished=sum(r["finish"] == "length" for r in results), aborted=0,
           refused_503=1, exit_code=code, shutdown_seconds=round(shutdown_seconds, 2),
           child_processes=len(children), children_left=0)


def test_sigint_aborts_what_outlasts_the_timeout_and_exits_0(sigint_server, report):
    server, n = sigint_server, 4
    children = server.children()

    async def scenario():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            started, counter = asyncio.Event(), [n + 1]
            # ~3,500 tokens each: far longer than the 1 s shutdown timeout.
            tasks = [asyncio.create_task(stream(http, i, 3500, started, counter)) for i in range(n)]
            await asyncio.wait_for(started.wait(), 30)
            signalled = time.monotonic()
            os.kill(server.proc.pid, signal.SIGINT)
            return signalled, await asyncio.gather(*tasks)

    signalled, results = asyncio.run(scenario())
    for r in results:
        assert r["status"] == 200 and r["finish"] is None, r
        assert r["error"]["code"] == 503 and "shutting down" in r["error"]["message"]
    code = server.wait_exit(30)
    shutdown_seconds = time.monotonic() - signalled
    assert code == 0, server.log()[-3000:]
    assert shutdown_seconds < SIGINT_SHUTDOWN_TIMEOUT_S + 5
    assert ENGINE_STOPPED_CLEAN in server.log()
    assert not [pid for pid in children if alive(pid)]
    report("sigint_timeout", in_flight=n, finished=0, aborted=n, exit_code=code,
           shutdown_seconds=round(shutdown_seconds, 2))


def test_sigkill_leaves_no_worker_behind(sigkill_server, report):
    """Even a server killed outright (no cleanup of its own) takes its engine core, the core's
    tensor-parallel worker and its template sandbox with it."""
    server = sigkill_server
    workers = workers_of(server)
    assert workers["core"] and workers["sandbox"] and workers["rank"], workers
    r = httpx.post(server.url + "/v1/completions", json={"model": NAME, "prompt": "Hi", "max_tokens": 4}, timeout=30)
    assert r.status_code == 200
    children = server.children()
    killed = time.monotonic()
    os.kill(server.proc.pid, signal.SIGKILL)
    server.wait_exit(10)
    deadline = time.monotonic() + 15
    while [pid for pid in children if alive(pid)]:
        assert time.monotonic() < deadline, [cmdline for cmdline in children if alive(cmdline)]
        time.sleep(0.1)
    report("sigkill", child_processes=len(children), children_left=0,
           children_gone_seconds=round(time.monotonic() - killed, 1))
