"""The client side of `ember bench serve`: streams each request to an OpenAI-compatible server
(httpx, Server-Sent Events), times it, and sends the whole set at a Poisson rate (or all at
once) under an optional concurrency cap."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
from tqdm.auto import tqdm

from ember.entrypoints.bench.serve_metrics import RequestResult

# As vLLM's benchmark: a long generation must not time out.
_TIMEOUT_S = 6 * 60 * 60


def _chunk_text(chunk: dict, chat: bool) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    if not chat:
        return choices[0].get("text") or ""
    delta = choices[0].get("delta") or {}
    # A reasoning model's thinking is generated text too.
    return delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""


async def send_request(client: httpx.AsyncClient, url: str, payload: dict, chat: bool) -> RequestResult:
    """Stream one request. The first chunk carrying text marks the first token; every later one
    adds its gap to the inter-token latencies. Token counts come from the final usage chunk."""
    result = RequestResult()
    start = last = time.perf_counter()
    usage = None
    try:
        async with client.stream("POST", url, json=payload) as response:
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")
                result.error = f"HTTP {response.status_code}: {body[:500]}"
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators and SSE comments
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    result.error = f"error in stream: {chunk['error']}"
                    return result
                now = time.perf_counter()
                if _chunk_text(chunk, chat):
                    if result.ttft == 0.0:
                        result.ttft = now - start
                    else:
                        result.itl.append(now - last)
                    last = now
                usage = chunk.get("usage") or usage
        result.latency = time.perf_counter() - start
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        result.error = f"{type(e).__name__}: {e}"
        return result
    if usage is None:
        result.error = "the stream carried no usage (stream_options.include_usage unsupported?)"
    elif result.ttft == 0.0:
        result.error = "the stream carried no text"
    else:
        result.prompt_tokens = usage.get("prompt_tokens") or 0
        result.output_tokens = usage.get("completion_tokens") or 0
        result.success = True
    return result


async def run_requests(url: str, payloads: list[dict], chat: bool, request_rate: float,
                       max_concurrency: int | None, seed: int, headers: dict | None = None,
                       progress: bool = True) -> tuple[list[RequestResult], float]:
    """Send every payload: arrivals at `request_rate` per second, exponential gaps (a Poisson
    process; `inf` sends all at once), at most `max_concurrency` in flight. Returns the results
    in payload order and the seconds from the first send to the last answer."""
    rng = np.random.default_rng(seed)
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    bar = tqdm(total=len(payloads), disable=not progress, desc="Requests")
    # No connection cap: requests waiting for a pooled connection would count as server latency.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=_TIMEOUT_S, limits=limits, headers=headers) as client:

        async def one(payload: dict) -> RequestResult:
            if limit is None:
                result = await send_request(client, url, payload, chat)
            else:
                async with limit:
                    result = await send_request(client, url, payload, chat)
            bar.update(1)
            return result

        start = time.perf_counter()
        tasks = []
        for i, payload in enumerate(payloads):
            if i and request_rate != float("inf"):
                await asyncio.sleep(rng.exponential(1.0 / request_rate))
            tasks.append(asyncio.create_task(one(payload)))
        results = await asyncio.gather(*tasks)
        duration = time.perf_counter() - start
    bar.close()
    return list(results), duration
