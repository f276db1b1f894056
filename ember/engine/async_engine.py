"""AsyncLLM: the server's engine. The engine core runs in a process of its own
(core_process.py); this process keeps the front end: tokenizing and validating requests,
detokenizing results, stop strings, and one async stream of outputs per request.

A receiver thread waits on the core's results and hands each step's to the event loop, where
the output processor turns them into RequestOutputs for the streams; nothing here ever makes
the core wait. Admission is bounded: beyond `max_queued_requests` requests waiting (sent, not
yet running), `add_request` raises EngineOverloadedError at once. A fault tied to one request
(its detokenization, its grammar) fails that request alone with RequestFailedError; a core
that fails or vanishes fails every request with EngineDeadError and calls `on_dead`, whose
owner (the server) exits. `stop_admission` + `abort_all` serve a graceful shutdown."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import AsyncIterator, Callable

from ember.config import EngineConfig
from ember.engine.core import StepHook
from ember.engine.core_client import CoreGoneError, CoreProcess
from ember.engine.input_processor import InputProcessor
from ember.engine.messages import (Abort, AbortSample, CoreDead, CoreStats, RequestRejected, SampleUpdate,
                                   StepResult, to_wire)
from ember.engine.output_processor import OutputProcessor
from ember.outputs import RequestOutput
from ember.sampling_params import RequestOutputKind, SamplingParams
from ember.structured.manager import StructuredOutputs
from ember.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)

LOG_INTERVAL_S = 5.0
_RECEIVE_POLL_MS = 200


class EngineDeadError(RuntimeError):
    """The engine core failed; no request can be served any more."""


class EngineOverloadedError(RuntimeError):
    """The waiting queue is full: the request was refused at once; retrying later may work."""


class RequestFailedError(RuntimeError):
    """One request failed in the engine (its detokenization, its grammar); the others go on."""


class EngineStoppingError(RuntimeError):
    """The engine is being stopped (a graceful shutdown): the request was not admitted, or was
    aborted before it finished."""


# What /metrics and the log line read: the core's counters after its latest step.
EngineSnapshot = CoreStats


class RequestStream:
    """The outputs of one request, in order. When the consumer lags behind, what arrived
    meanwhile is merged into one output (deltas are joined, cumulative outputs replaced)."""

    def __init__(self, request_id: str, owner: "AsyncLLM", kind: RequestOutputKind):
        self.request_id = request_id
        self._owner = owner
        self._kind = kind
        self._ready = asyncio.Event()
        self._latest: RequestOutput | None = None
        self._error: BaseException | None = None
        self._done = False

    def _put(self, output: RequestOutput) -> None:
        if self._latest is not None and self._kind == RequestOutputKind.DELTA:
            self._latest.add(output)
        else:
            self._latest = output
        self._ready.set()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.set()

    def __aiter__(self) -> "RequestStream":
        return self

    async def __anext__(self) -> RequestOutput:
        if self._done:
            raise StopAsyncIteration
        await self._ready.wait()
        self._ready.clear()
        if self._error is not None:
            self._done = True
            raise self._error
        output, self._latest = self._latest, None
        if output is None:  # closed while waiting
            raise StopAsyncIteration
        self._done = output.finished
        return output

    def close(self) -> None:
        """Abort the request unless it already finished: its KV blocks are freed within one
        engine step. Safe to call more than once; a consumer waiting meanwhile stops."""
        if not self._done:
            self._done = True
            self._ready.set()
            self._owner.abort(self.request_id)


class AsyncLLM:
    def __init__(self, config: EngineConfig, log_stats: bool = True,
                 on_request_finished: Callable[[RequestOutput, float], None] | None = None,
                 max_queued_requests: int | None = None,
                 on_dead: Callable[[BaseException], None] | None = None,
                 before_step: StepHook | None = None):
        """Starts the engine core process and waits until it is ready. `on_request_finished(output,
        now)` runs on the event loop for each finished request (the server's metrics use it);
        `on_dead(error)` runs once, on the receiver thread, if the core fails.
        `max_queued_requests`: None for no bound. `before_step`: see EngineCore (tests)."""
        self.config = config
        self.log_stats = log_stats
        self.on_request_finished = on_request_finished
        self.on_dead = on_dead
        self.max_queued_requests = max_queued_requests
        start = time.perf_counter()
        self.core = CoreProcess(config, before_step)
        try:  # while the core loads the model
            self.tokenizer = None if config.skip_tokenizer_init else load_tokenizer(
                config.tokenizer_path, config.trust_remote_code, config.revision)
        except BaseException:
            self.core.stop(timeout=0)
            self.core.release()
            raise
        self.core.wait_until_ready()
        self.num_kv_blocks = self.core.num_kv_blocks
        self.input_processor = InputProcessor(config, self.tokenizer, self.num_kv_blocks)
        self.output_processor = OutputProcessor(self.tokenizer)
        # Grammars compile here too, so that an invalid one is refused (a 400) before the core sees it.
        self.structured = StructuredOutputs(lambda: self.tokenizer, config.hf_config.vocab_size,
                                            self.input_processor.eos_token_ids)
        self.snapshot = EngineSnapshot(kv_blocks_total=self.num_kv_blocks)
        self.dead_error: BaseException | None = None
        self._admitting = True  # until stop_admission
        self._stopping = False
        self._num_sent = 0  # adds sent to the core; it reports how many it took in
        self._num_added_by_core = 0
        self._step_token_counts: dict[int, int] = {}  # touched by the receiver thread only
        self._streams: dict[str, RequestStream] = {}  # touched on the event loop only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._logged = (time.monotonic(), self.snapshot)
        self._receiver = threading.Thread(target=self._receive, name="ember-core-receiver", daemon=True)
        self._receiver.start()
        logger.info("Engine ready in %.1f s (engine core: process %d)", time.perf_counter() - start, self.core.pid)

    @property
    def is_dead(self) -> bool:
        return self.dead_error is not None

    def default_sampling_params(self) -> SamplingParams:
        return self.input_processor.default_sampling_params()

    # ----- event-loop side -----

    async def add_request(self, request_id: str, prompt: str | list[int] | dict,
                          params: SamplingParams | None = None) -> RequestStream:
        """Hand a request to the engine. Raises ValueError for an invalid request,
        EngineOverloadedError at once when the waiting queue is full, EngineDeadError when the
        core has failed, and EngineStoppingError once a shutdown has begun (stop_admission)."""
        if self.dead_error is not None:
            raise EngineDeadError(f"The engine is dead: {self.dead_error!r}")
        if not self._admitting:
            raise EngineStoppingError("The server is shutting down.")
        queued = self._num_sent - self._num_added_by_core + self.snapshot.num_waiting
        if self.max_queued_requests is not None and queued >= self.max_queued_requests:
            raise EngineOverloadedError(f"The server is overloaded: {queued} requests are already waiting "
                                        f"(the limit is {self.max_queued_requests}). Try again later.")
        if request_id in self.output_processor.requests:
            raise ValueError(f"Request id {request_id!r} is already in use.")
        text, request = self.input_processor.process(request_id, prompt, params)
        self._loop = asyncio.get_running_loop()
        stream = RequestStream(request_id, self, request.params.output_kind)
        self.output_processor.add_request(request_id, text, request.prompt_token_ids, request.params,
                                          request.arrival_time)
        self._streams[request_id] = stream
        self._num_sent += 1
        try:
            self.core.send(to_wire(request))
        except CoreGoneError as e:
            self.abort(request_id)
            raise EngineDeadError(f"The engine is dead: {e}") from None
        return stream

    async def generate(self, prompt: str | list[int] | dict, params: SamplingParams | None,
                       request_id: str) -> AsyncIterator[RequestOutput]:
        """Outputs of one request until it finishes. Leaving the loop early (break,
        cancellation, a disconnected client) aborts the request."""
        stream = await self.add_request(request_id, prompt, params)
        try:
            async for output in stream:
                yield output
        finally:
            stream.close()

    def abort(self, request_id: str) -> None:
        self._streams.pop(request_id, None)
        if self.output_processor.abort_request(request_id):
            self._tell_core(Abort([request_id]))

    def _tell_core(self, message) -> None:
        """An abort: when the core is gone, there is nothing left to abort."""
        try:
            self.core.send(message)
        except CoreGoneError:
            pass

    def stop_admission(self) -> None:
        """From now on add_request raises EngineStoppingError (a graceful shutdown has begun)."""
        self._admitting = False

    def abort_all(self) -> None:
        """Abort every request in flight; each stream fails with EngineStoppingError."""
        request_ids = list(self.output_processor.requests)
        for request_id in request_ids:
            self.output_processor.abort_request(request_id)
            stream = self._streams.pop(request_id, None)
            if stream is not None:
                stream._fail(EngineStoppingError(
                    "The server is shutting down: this request was aborted before it finished."))
        if request_ids:
            self._tell_core(Abort(request_ids))

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the core (what is left aborted, its blocks freed, its executor's workers
        stopped) and the receiver."""
        self._stopping = True
        self.core.stop(timeout)
        self._receiver.join(timeout)
        while (message := self.core.receive(0)) is not None:  # the core's last word: its state after the aborts
            if isinstance(message, StepResult):
                self._take_stats(message)
        self.core.release()

    def _on_step(self, updates: list[SampleUpdate]) -> None:
        processed = self.output_processor.process(updates, time.monotonic())
        for request_id, index in processed.samples_to_abort:
            self._tell_core(AbortSample(request_id, index))
        for request_id, error in processed.failed.items():
            self._tell_core(Abort([request_id]))
            stream = self._streams.pop(request_id, None)
            if stream is not None:
                stream._fail(RequestFailedError(f"The request failed in the engine: {error}"))
        now = time.monotonic()
        for output in processed.outputs:
            stream = self._streams.get(output.request_id)
            if output.finished:
                self._streams.pop(output.request_id, None)
                if self.on_request_finished is not None:
                    self.on_request_finished(output, now)
            if stream is not None:
                stream._put(output)

    def _on_rejected(self, request_id: str, error: str) -> None:
        self.output_processor.abort_request(request_id)
        stream = self._streams.pop(request_id, None)
        if stream is not None:
            stream._fail(ValueError(error))

    def _on_dead(self, error: BaseException) -> None:
        failure = EngineDeadError(f"The engine core failed: {error}")
        for request_id in list(self.output_processor.requests):
            self.output_processor.abort_request(request_id)
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream._fail(failure)

    # ----- receiver thread -----

    def _receive(self) -> None:
        while not self._stopping:
            message = self.core.receive(_RECEIVE_POLL_MS)
            if isinstance(message, StepResult):
                self._take_stats(message)
                if message.updates:
                    self._call_on_loop(self._on_step, message.updates)
            elif isinstance(message, RequestRejected):
                self._call_on_loop(self._on_rejected, message.request_id, message.error)
            elif isinstance(message, CoreDead):
                self._die(RuntimeError(message.error))
                return
            elif message is None and not self.core.is_alive() and not self._stopping:
                self._die(RuntimeError(f"the engine core process exited with status {self.core.proc.returncode}"))
                return
            if self.log_stats:
                self._maybe_log()

    def _take_stats(self, result: StepResult) -> None:
        for size in result.step_sizes:
            self._step_token_counts[size] = self._step_token_counts.get(size, 0) + 1
        result.stats.step_token_counts = self._step_token_counts
        self.snapshot = result.stats
        self._num_added_by_core = result.num_added

    def _die(self, error: BaseException) -> None:
        logger.error("The engine core failed (%s); failing all requests", error)
        self.dead_error = error
        self._call_on_loop(self._on_dead, error)
        if self.on_dead is not None:
            self.on_dead(error)

    def _call_on_loop(self, fn, *args) -> None:
        loop = self._loop
        if loop is None:  # no request has come yet: nothing to hand over
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # that event loop is closed: nobody is listening any more
            pass

    def _maybe_log(self) -> None:
        now = time.monotonic()
        then, before = self._logged
        elapsed = now - then
        if elapsed < LOG_INTERVAL_S:
            return
        s = self.snapshot
        self._logged = (now, s)
        prompt_tokens = s.prompt_tokens_total - before.prompt_tokens_total
        generation_tokens = s.generation_tokens_total - before.generation_tokens_total
        hits = s.prefix_cache_hits_total - before.prefix_cache_hits_total
        queries = s.prefix_cache_queries_total - before.prefix_cache_queries_total
        if prompt_tokens or generation_tokens or s.num_running or s.num_waiting:
            logger.info("Avg prompt throughput: %.1f tokens/s, Avg generation throughput: %.1f tokens/s, "
                        "Running: %d reqs, Waiting: %d reqs, GPU KV cache usage: %.1f%%, "
                        "Prefix cache hit rate: %.1f%%", prompt_tokens / elapsed, generation_tokens / elapsed,
                        s.num_running, s.num_waiting, 100 * s.kv_cache_usage,
                        100 * hits / queries if queries else 0.0)
