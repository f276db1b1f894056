"""Faults. In the engine core (tests/faults.py's FailAtStep, installed by tests/hooked_server.py,
makes a step raise, as a failing model forward would): every request in flight ends with a 500 naming the cause, /health turns 503, and
the process exits non-zero within seconds, its child processes with it. Tied to one request
(its detokenization): that request fails alone and the rest of the batch is unharmed."""
import asyncio
import json
import threading
import time

import httpx
import pytest

from tests.processes import wait_gone
from tests.reliability.conftest import FAULT_STEP, NAME, workers_of


def test_engine_fault_fails_requests_then_exits(fault_server, report):
    url = fault_server.url
    workers = workers_of(fault_server)
    # The engine core, the template sandbox, tensor-parallel rank 1.
    assert workers["core"] and workers["sandbox"] and workers["rank"], workers
    children = fault_server.children()
    health: list[int] = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            try:
                health.append(httpx.get(url + "/health", timeout=1).status_code)
            except httpx.HTTPError:
                health.append(0)  # gone
            stop.wait(0.02)

    async def one(http: httpx.AsyncClient, i: int):
        body = {"model": NAME, "prompt": f"Fault {i}", "max_tokens": 300, "temperature": 0, "ignore_eos": True}
        if i % 2:
            r = await http.post("/v1/completions", json=body)
            return r.status_code, r.json()["error"] if r.status_code != 200 else None
        async with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
            events = [json.loads(line[6:]) async for line in response.aiter_lines()
                      if line.startswith("data: {")]
        return response.status_code, events[-1].get("error")

    async def load():
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            return await asyncio.gather(*(one(http, i) for i in range(6)))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    results = asyncio.run(load())
    failed_at = time.monotonic()
    for status, error in results:
        assert status in (200, 500) and error is not None, (status, error)
        assert error["code"] == 500 and f"Injected engine fault at step {FAULT_STEP}" in error["message"]
    code = fault_server.wait_exit(30)
    exit_seconds = time.monotonic() - failed_at
    stop.set()
    prober.join()
    assert code != 0
    assert exit_seconds < 10
    assert 503 in health      # dead and saying so, while it still answers
    assert health[-1] == 0    # and then gone
    assert wait_gone(children, 10) == []
    report("engine_fault", requests_in_flight=len(results), status_500=len(results),
           health_503_seen=health.count(503), exit_code=code, exit_seconds=round(exit_seconds, 1),
           child_processes=len(children), children_left=0)


@pytest.fixture
def async_llm(checkpoint):
    from ember.engine_args import EngineArgs
    from ember.engine.async_engine import AsyncLLM

    llm = AsyncLLM(EngineArgs(model=checkpoint).resolve(), log_stats=False)
    yield llm
    llm.shutdown()


def test_a_request_fault_fails_that_request_alone(async_llm):
    """The detokenizer (in the server's process) raises for one request; the others finish as
    they would alone, and the failed one's blocks are freed in the core."""
    from ember.engine.async_engine import RequestFailedError
    from ember.sampling_params import SamplingParams

    detokenizer = async_llm.output_processor.detokenizer
    real_append = detokenizer.append
    poisoned_prompt = async_llm.tokenizer.encode("Prompt poisoned")

    def append(sample, token):
        if sample.prompt_token_ids == poisoned_prompt and len(sample.output_token_ids) == 3:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "injected")
        return real_append(sample, token)

    params = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)

    async def run(ids):
        async def one(rid):
            try:
                return [o async for o in async_llm.generate(f"Prompt {rid}", params, rid)][-1].outputs[0].token_ids
            except RequestFailedError as e:
                return e
        return await asyncio.gather(*(one(rid) for rid in ids))

    async def blocks_freed():
        deadline = time.monotonic() + 30
        while async_llm.snapshot.kv_blocks_used or async_llm.snapshot.num_running:
            assert time.monotonic() < deadline, async_llm.snapshot
            await asyncio.sleep(0.02)

    alone = asyncio.run(run(["a", "b", "c"]))
    detokenizer.append = append
    together = asyncio.run(run(["a", "poisoned", "b", "c"]))
    assert isinstance(together[1], RequestFailedError) and "injected" in str(together[1])
    assert together[0] == alone[0] and together[2] == alone[1] and together[3] == alone[2]
    asyncio.run(blocks_freed())
    assert not async_llm.is_dead
