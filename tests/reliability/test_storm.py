"""A storm: 200 concurrent streaming requests (chat and completions), a random fifth of whose
clients hang up mid-stream. The others finish with exactly the greedy output each gets alone;
afterwards no KV block is in use and no aborted request counts as finished."""
import asyncio
import json
import random
import time

import httpx

from tests.reliability.conftest import NAME
from tests.server.launcher import metric

NUM_REQUESTS = 200
NUM_DISCONNECTS = NUM_REQUESTS // 5
SEED = 12


def body(i: int, stream: bool, leaves: bool) -> tuple[str, dict]:
    # Leavers ask for many tokens so that they are surely mid-stream when they hang up.
    common = {"model": NAME, "temperature": 0, "ignore_eos": True, "stream": stream,
              "max_tokens": 400 if leaves else 3 + i % 4}
    if i % 2:
        return "/v1/completions", {**common, "prompt": f"Storm request {i}: the number {i * 13} is"}
    return "/v1/chat/completions", {**common, "messages": [{"role": "user", "content": f"Storm {i}: {i * 7}?"}]}


def text_of(path: str, payload: dict) -> str:
    choice = payload["choices"][0]
    if path == "/v1/completions":
        return choice["text"]
    return choice.get("message", {}).get("content") or choice.get("delta", {}).get("content") or ""


async def one(http: httpx.AsyncClient, i: int, leaves: bool) -> dict:
    path, payload = body(i, True, leaves)
    text, finish, statuses, errors = "", None, [], []
    async with http.stream("POST", path, json=payload) as response:
        statuses.append(response.status_code)
        if response.status_code != 200:
            return {"status": response.status_code, "left": False}
        events = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                errors.append(event["error"])
                continue
            events += 1
            if event["choices"]:
                text += text_of(path, event)
                finish = event["choices"][0].get("finish_reason") or finish
            if leaves and events >= 3:
                break  # leaving the block closes the connection mid-stream
    return {"status": 200, "text": text, "finish": finish, "errors": errors, "left": leaves}


def test_storm_with_disconnects(storm_server, report):
    url = storm_server.url
    leavers = set(random.Random(SEED).sample(range(NUM_REQUESTS), NUM_DISCONNECTS))
    finished_before = metric(url, "ember:request_success_total")

    async def storm():
        limits = httpx.Limits(max_connections=NUM_REQUESTS + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
            return await asyncio.gather(*(one(http, i, i in leavers) for i in range(NUM_REQUESTS)))

    start = time.monotonic()
    results = asyncio.run(storm())
    storm_seconds = time.monotonic() - start
    server_errors = [r for r in results if r["status"] >= 500 or any(e["code"] >= 500 for e in r.get("errors", []))]
    assert not server_errors, server_errors[:3]
    assert all(r["status"] == 200 for r in results)
    stayed = [i for i in range(NUM_REQUESTS) if i not in leavers]
    assert all(results[i]["finish"] == "length" for i in stayed)

    # Aborted within a step of the hang-up: blocks back, nothing running, no leaver finished.
    deadline = time.monotonic() + 10
    while metric(url, "ember:kv_cache_used_blocks") or metric(url, "ember:num_requests_running"):
        assert time.monotonic() < deadline, "KV blocks still in use after the storm"
        time.sleep(0.05)
    finished = metric(url, "ember:request_success_total") - finished_before
    assert finished == len(stayed)

    # Each survivor's greedy output equals what it gets alone (non-streaming, one at a time).
    mismatches = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in stayed:
            path, payload = body(i, False, False)
            alone = http.post(path, json=payload)
            assert alone.status_code == 200, alone.text
            if text_of(path, alone.json()) != results[i]["text"]:
                mismatches.append(i)
    assert not mismatches, mismatches
    blocks_after = metric(url, "ember:kv_cache_used_blocks")
    assert blocks_after == 0
    assert httpx.get(url + "/health").status_code == 200
    report("storm", requests=NUM_REQUESTS, disconnects=NUM_DISCONNECTS, finished=len(stayed),
           identical_to_alone=len(stayed) - len(mismatches), server_errors=len(server_errors),
           blocks_leaked=int(blocks_after), storm_seconds=round(storm_seconds, 1))
