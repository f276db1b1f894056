"""Many clients at once get the answers they would get alone; clients that leave early get
their requests aborted and their KV blocks freed."""
import asyncio
import time

import httpx
import openai

from tests.server.conftest import TINY_NAME
from tests.server.launcher import metric, wait_for_no_blocks

NUM_CLIENTS = 64


def conversation(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Request number {i}: say something about the number {i * 7}."}]


def test_64_concurrent_streaming_chats_match_each_alone(tiny_server):
    async def one(client, i, stream):
        kwargs = dict(model=TINY_NAME, messages=conversation(i), max_tokens=12 + i % 5, temperature=0,
                      extra_body={"ignore_eos": True})
        if not stream:
            return (await client.chat.completions.create(**kwargs)).choices[0].message.content
        text, finish = "", None
        async for chunk in await client.chat.completions.create(stream=True, **kwargs):
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "length"
        return text

    async def run():
        async with openai.AsyncOpenAI(base_url=tiny_server.url + "/v1", api_key="EMPTY", max_retries=0,
                                      timeout=120) as client:
            together = await asyncio.gather(*(one(client, i, True) for i in range(NUM_CLIENTS)))
            alone = [await one(client, i, False) for i in range(NUM_CLIENTS)]
        return together, alone

    together, alone = asyncio.run(run())
    assert together == alone
    assert len(set(together)) > NUM_CLIENTS // 2  # independent requests, not one answer copied


def test_disconnect_mid_stream_frees_every_block(tiny_server):
    body = {"model": TINY_NAME, "messages": conversation(1), "max_tokens": 450, "temperature": 0,
            "ignore_eos": True, "stream": True}
    finished_before = metric(tiny_server.url, "ember:request_success_total")
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", tiny_server.url + "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            for _ in range(6):
                next(lines)
            assert metric(tiny_server.url, "ember:kv_cache_used_blocks") > 0
    # Leaving the with-blocks closed the connection mid-stream.
    wait_for_no_blocks(tiny_server.url, finished_before)


def test_abandoned_non_streaming_request_is_aborted(tiny_server):
    body = {"model": TINY_NAME, "prompt": "Once upon a time", "max_tokens": 480, "temperature": 0,
            "ignore_eos": True, "n": 4}
    finished_before = metric(tiny_server.url, "ember:request_success_total")

    async def abandon() -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            request = asyncio.create_task(http.post(tiny_server.url + "/v1/completions", json=body))
            # The client leaves once the server runs its request, whatever this machine's speed.
            deadline = time.monotonic() + 30
            while metric(tiny_server.url, "ember:num_requests_running") == 0:
                assert time.monotonic() < deadline and not request.done(), "the request never ran"
                await asyncio.sleep(0.02)
            request.cancel()

    asyncio.run(abandon())
    wait_for_no_blocks(tiny_server.url, finished_before)
