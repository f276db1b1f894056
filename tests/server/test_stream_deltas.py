"""Streams carry each token exactly once: the engine sends a stream only what is new each step
(delta outputs), and 64 concurrent streams with stop strings and logprobs still add up to what
each request gets alone, unstreamed."""
import asyncio

import openai

from tests.server.conftest import TINY_NAME

NUM_STREAMS = 64


def test_64_concurrent_streams_with_stop_strings_and_logprobs_carry_each_token_once(tiny_server):
    def body(i: int) -> dict:
        return dict(model=TINY_NAME, prompt=f"Stream {i} tells a story about {i * 3}", max_tokens=20 + i % 7,
                    temperature=0, logprobs=1, extra_body={"ignore_eos": True})

    async def streamed(client, i: int, stop: str):
        text, tokens, finish = "", [], None
        async for chunk in await client.completions.create(stream=True, stop=[stop], **body(i)):
            choice = chunk.choices[0]
            text += choice.text
            tokens += choice.logprobs.tokens if choice.logprobs else []
            finish = choice.finish_reason or finish
        return text, tokens, finish

    async def alone(client, i: int, stop: str | None):
        kwargs = {"stop": [stop]} if stop else {}
        choice = (await client.completions.create(**kwargs, **body(i))).choices[0]
        return choice.text, choice.logprobs.tokens, choice.finish_reason

    async def run():
        async with openai.AsyncOpenAI(base_url=tiny_server.url + "/v1", api_key="EMPTY", max_retries=0,
                                      timeout=120) as client:
            # A stop string each request meets midway: two characters from the middle of its text.
            free = [await alone(client, i, None) for i in range(NUM_STREAMS)]
            stops = [text[len(text) // 2:len(text) // 2 + 2] or "\n" for text, _, _ in free]
            together = await asyncio.gather(*(streamed(client, i, stops[i]) for i in range(NUM_STREAMS)))
            expected = [await alone(client, i, stops[i]) for i in range(NUM_STREAMS)]
        return together, expected

    together, expected = asyncio.run(run())
    assert together == expected
    assert sum(finish == "stop" for _, _, finish in together) >= NUM_STREAMS // 2
