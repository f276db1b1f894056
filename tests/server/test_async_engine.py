"""AsyncLLM with its engine core in another process: streams (cumulative and delta), aborts
that free blocks, errors reaching the caller, and a failing core failing every request."""
import asyncio

import pytest

from ember.engine_args import EngineArgs
from ember.engine.async_engine import AsyncLLM, EngineDeadError
from ember.sampling_params import RequestOutputKind, SamplingParams
from tests.faults import FailAtStep

GREEDY = dict(temperature=0, ignore_eos=True)


@pytest.fixture
def llm(tiny_checkpoint):
    llm = AsyncLLM(EngineArgs(model=tiny_checkpoint).resolve(), log_stats=False)
    yield llm
    llm.shutdown()


async def _wait_until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_generate_streams_cumulative_outputs_matching_the_offline_engine(llm, tiny_checkpoint):
    params = SamplingParams(max_tokens=6, **GREEDY)

    async def run():
        return [out async for out in llm.generate("Hello there", params, "r1")]

    outputs = asyncio.run(run())
    assert outputs[-1].finished and outputs[-1].outputs[0].finish_reason == "length"
    assert all(not o.finished for o in outputs[:-1])
    texts = [o.outputs[0].text for o in outputs]
    assert all(texts[i + 1].startswith(texts[i]) for i in range(len(texts) - 1))
    from ember import LLM
    expected = LLM(tiny_checkpoint).generate("Hello there", params, use_tqdm=False)[0].outputs[0]
    assert outputs[-1].outputs[0].token_ids == expected.token_ids


def test_invalid_request_raises_value_error_and_the_loop_goes_on(llm):
    async def run():
        with pytest.raises(ValueError, match="maximum context length"):
            await llm.add_request("bad", "Hello " * 2000, SamplingParams(max_tokens=2))
        return [o async for o in llm.generate("Hello", SamplingParams(max_tokens=2, **GREEDY), "good")]

    assert asyncio.run(run())[-1].finished


def test_leaving_the_stream_early_aborts_and_frees_blocks(llm):
    async def run():
        stream = llm.generate("Once upon a time", SamplingParams(max_tokens=400, **GREEDY), "long")
        async for out in stream:
            if len(out.outputs[0].token_ids) >= 3:
                break
        await stream.aclose()
        await _wait_until(lambda: llm.snapshot.kv_blocks_used == 0 and llm.snapshot.num_running == 0)

    asyncio.run(run())


def test_cancelling_the_consumer_task_aborts(llm):
    async def consume():
        async for _ in llm.generate("Once upon a time", SamplingParams(max_tokens=400, **GREEDY), "c"):
            pass

    async def run():
        task = asyncio.create_task(consume())
        await _wait_until(lambda: llm.snapshot.kv_blocks_used > 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _wait_until(lambda: llm.snapshot.kv_blocks_used == 0)

    asyncio.run(run())


def test_closing_a_stream_ends_its_waiting_consumer(llm):
    async def run():
        stream = await llm.add_request("w", "Hello", SamplingParams(max_tokens=400, **GREEDY))

        async def consume():
            return [out async for out in stream]

        task = asyncio.create_task(consume())
        await _wait_until(lambda: llm.snapshot.kv_blocks_used > 0)
        stream.close()
        outputs = await asyncio.wait_for(task, 5)
        assert not outputs or not outputs[-1].finished
        await _wait_until(lambda: llm.snapshot.kv_blocks_used == 0)

    asyncio.run(run())


def test_a_failing_core_fails_every_request_and_marks_the_engine_dead(tiny_checkpoint):
    llm = AsyncLLM(EngineArgs(model=tiny_checkpoint).resolve(), log_stats=False,
                   before_step=FailAtStep(3, "device on fire"))

    async def run():
        stream = await llm.add_request("x", "Hello", SamplingParams(max_tokens=400, **GREEDY))
        with pytest.raises(EngineDeadError, match="device on fire"):
            async for _ in stream:
                pass
        with pytest.raises(EngineDeadError):
            await llm.add_request("y", "Hello", SamplingParams(max_tokens=2))

    try:
        asyncio.run(run())
        assert llm.is_dead
    finally:
        llm.shutdown()


def test_a_killed_core_fails_every_request(llm):
    async def run():
        stream = await llm.add_request("x", "Hello", SamplingParams(max_tokens=400, **GREEDY))
        await _wait_until(lambda: llm.snapshot.kv_blocks_used > 0)
        llm.core.proc.kill()
        with pytest.raises(EngineDeadError, match="exited"):
            async for _ in stream:
                pass

    asyncio.run(run())
    assert llm.is_dead


def test_delta_outputs_carry_each_token_once_even_when_the_consumer_lags(llm):
    params = SamplingParams(max_tokens=40, logprobs=2, output_kind=RequestOutputKind.DELTA, **GREEDY)

    async def run():
        stream = await llm.add_request("d", "Once upon a time", params)
        deltas = [await stream.__anext__()]
        # The consumer stops reading until the engine is done: what arrived meanwhile is merged.
        await _wait_until(lambda: llm.snapshot.num_running == 0, timeout=60)
        deltas += [out async for out in stream]
        return deltas

    deltas = asyncio.run(run())
    tokens = [t for d in deltas for t in d.outputs[0].token_ids]
    logprobs = [lp for d in deltas for lp in d.outputs[0].logprobs]
    from ember import LLM
    expected = LLM(llm.config.model, seed=0).generate("Once upon a time", SamplingParams(max_tokens=40, **GREEDY),
                                                      use_tqdm=False)[0].outputs[0]
    assert tokens == expected.token_ids and len(logprobs) == 40
    assert "".join(d.outputs[0].text for d in deltas) == expected.text
    assert len(deltas) <= 3
    assert deltas[-1].finished and deltas[-1].outputs[0].finish_reason == "length"
