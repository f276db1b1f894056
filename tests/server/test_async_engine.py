"""AsyncLLM in-process: streams, aborts that free blocks, errors reaching the caller, and a
failing engine loop failing every request."""
import asyncio

import pytest

from ember.config import EngineConfig
from ember.engine.async_engine import AsyncLLM, EngineDeadError
from ember.engine.llm_engine import LLMEngine
from ember.sampling_params import SamplingParams

GREEDY = dict(temperature=0, ignore_eos=True)


@pytest.fixture
def llm(tiny_checkpoint):
    llm = AsyncLLM(LLMEngine(EngineConfig(model=tiny_checkpoint)), log_stats=False)
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
    engine = llm.engine

    async def run():
        stream = llm.generate("Once upon a time", SamplingParams(max_tokens=400, **GREEDY), "long")
        async for out in stream:
            if len(out.outputs[0].token_ids) >= 3:
                break
        await stream.aclose()
        await _wait_until(lambda: llm.snapshot.kv_blocks_used == 0 and not engine.has_unfinished_requests())

    asyncio.run(run())
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


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


def test_a_failing_step_fails_every_request_and_marks_the_engine_dead(llm):
    def broken_step():
        raise RuntimeError("device on fire")

    async def run():
        stream = await llm.add_request("x", "Hello", SamplingParams(max_tokens=400, **GREEDY))
        llm.engine.step = broken_step
        with pytest.raises(EngineDeadError, match="device on fire"):
            async for _ in stream:
                pass
        with pytest.raises(EngineDeadError):
            await llm.add_request("y", "Hello", SamplingParams(max_tokens=2))

    asyncio.run(run())
    assert llm.is_dead
