"""AsyncLLM: the engine loop in a background thread, an async stream of outputs per request.

The engine is not thread-safe, so one thread owns it. Callers on an asyncio event loop hand it
requests and aborts through a thread-safe queue; between two steps the thread drains that
queue, runs a step and delivers each request's newest output to its stream with
`loop.call_soon_threadsafe`. A slow step therefore never blocks the event loop.

Admission is bounded: beyond `max_queued_requests` requests waiting (submitted, not yet
running), `add_request` raises EngineOverloadedError at once. A fault tied to one request (its
detokenization, its grammar) fails that request alone with RequestFailedError; a fault of the
loop itself fails every request with EngineDeadError and calls `on_dead`, whose owner (the
server) exits. `stop_admission` + `abort_all` serve a graceful shutdown."""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from ember.engine.llm_engine import LLMEngine
from ember.outputs import RequestOutput
from ember.sampling_params import SamplingParams

logger = logging.getLogger(__name__)

LOG_INTERVAL_S = 5.0


class EngineDeadError(RuntimeError):
    """The engine loop failed; no request can be served any more."""


class EngineOverloadedError(RuntimeError):
    """The waiting queue is full: the request was refused at once; retrying later may work."""


class RequestFailedError(RuntimeError):
    """One request failed inside the engine (its detokenization, its grammar); the others go on."""


class EngineStoppingError(RuntimeError):
    """The engine is being stopped (a graceful shutdown): the request was not admitted, or was
    aborted before it finished."""


@dataclass(frozen=True)
class EngineSnapshot:
    """The engine's state after its latest step, published for readers on other threads."""
    num_running: int = 0
    num_waiting: int = 0
    kv_blocks_used: int = 0
    kv_blocks_total: int = 1
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    prefix_cache_queries_total: int = 0
    prefix_cache_hits_total: int = 0
    num_preemptions_total: int = 0

    @property
    def kv_cache_usage(self) -> float:
        return self.kv_blocks_used / self.kv_blocks_total


class RequestStream:
    """The outputs of one request, in order. Outputs are cumulative (full text so far), so
    when the consumer lags behind only the newest one is kept."""

    def __init__(self, request_id: str, owner: "AsyncLLM", loop: asyncio.AbstractEventLoop):
        self.request_id = request_id
        self._owner = owner
        self._loop = loop
        self._accepted: asyncio.Future = loop.create_future()
        self._ready = asyncio.Event()
        self._latest: RequestOutput | None = None
        self._error: BaseException | None = None
        self._done = False

    # Called on the event loop, scheduled by the engine thread.
    def _accept(self) -> None:
        if not self._accepted.done():
            self._accepted.set_result(None)

    def _put(self, output: RequestOutput) -> None:
        self._latest = output
        self._ready.set()

    def _fail(self, error: BaseException) -> None:
        if not self._accepted.done():
            self._accepted.set_exception(error)
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
    def __init__(self, engine: LLMEngine, log_stats: bool = True,
                 on_request_finished: Callable[[RequestOutput, float], None] | None = None,
                 max_queued_requests: int | None = None,
                 on_dead: Callable[[BaseException], None] | None = None):
        """`on_request_finished(output, now)` runs on the engine thread for each finished
        request (the server's metrics use it); `on_dead(error)` runs on the engine thread once,
        if the loop fails. `max_queued_requests`: None for no bound."""
        self.engine = engine
        self.log_stats = log_stats
        self.on_request_finished = on_request_finished
        self.on_dead = on_dead
        self.max_queued_requests = max_queued_requests
        # The engine runs many requests; one's fault must not end the others (see RequestFailedError).
        engine.isolate_request_faults = True
        self.snapshot = EngineSnapshot(kv_blocks_total=engine.block_manager.num_blocks)
        self.dead_error: BaseException | None = None
        self._admitting = True  # until stop_admission
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # Submitting, counting the queue and dying share a lock, so no request slips past the
        # bound or in after the loop is gone.
        self._lock = threading.Lock()
        self._num_unapplied = 0  # adds still in the inbox
        self._num_waiting = 0    # requests the engine holds that are not running yet
        self._streams: dict[str, RequestStream] = {}  # owned by the engine thread
        self._prefix_totals = [0, 0]  # hits, queries
        self._logged_prefix = (0, 0)
        self._last_log = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="ember-engine", daemon=True)
        self._thread.start()

    @property
    def is_dead(self) -> bool:
        return self.dead_error is not None

    # ----- event-loop side -----

    async def add_request(self, request_id: str, prompt: str | list[int] | dict,
                          params: SamplingParams | None = None) -> RequestStream:
        """Hand a request to the engine and wait until it is admitted. Raises the engine's
        ValueError for an invalid request, EngineOverloadedError at once when the waiting
        queue is full, EngineDeadError when the engine loop has failed, and EngineStoppingError
        once a shutdown has begun (stop_admission)."""
        stream = RequestStream(request_id, self, asyncio.get_running_loop())
        with self._lock:
            if self.dead_error is not None:
                raise EngineDeadError(f"The engine is dead: {self.dead_error!r}")
            if not self._admitting:
                raise EngineStoppingError("The server is shutting down.")
            queued = self._num_unapplied + self._num_waiting
            if self.max_queued_requests is not None and queued >= self.max_queued_requests:
                raise EngineOverloadedError(f"The server is overloaded: {queued} requests are already waiting "
                                            f"(the limit is {self.max_queued_requests}). Try again later.")
            self._num_unapplied += 1
            self._inbox.put(("add", stream, prompt, params))
        try:
            await stream._accepted
        except asyncio.CancelledError:
            stream.close()
            raise
        return stream

    async def generate(self, prompt: str | list[int] | dict, params: SamplingParams | None,
                       request_id: str) -> AsyncIterator[RequestOutput]:
        """Cumulative outputs of one request until it finishes. Leaving the loop early (break,
        cancellation, a disconnected client) aborts the request."""
        stream = await self.add_request(request_id, prompt, params)
        try:
            async for output in stream:
                yield output
        finally:
            stream.close()

    def abort(self, request_id: str) -> None:
        self._inbox.put(("abort", request_id))

    def stop_admission(self) -> None:
        """From now on add_request raises EngineStoppingError (a graceful shutdown has begun)."""
        with self._lock:
            self._admitting = False

    def abort_all(self) -> None:
        """Abort every request the engine holds; each stream fails with EngineStoppingError."""
        self._inbox.put(("abort_all",))

    def shutdown(self, timeout: float = 10.0) -> None:
        """Abort whatever is left, free its blocks, stop the loop and the executor's workers."""
        self._inbox.put(("stop",))
        self._thread.join(timeout)

    # ----- engine thread -----

    def _run(self) -> None:
        try:
            while self._drain_inbox(block=not self.engine.has_unfinished_requests()):
                if self.engine.has_unfinished_requests():
                    self._deliver(self.engine.step())
                    self._fail_faulty_requests()
                self._publish_snapshot()
                if self.log_stats:
                    self._maybe_log()
            self._publish_snapshot()  # after the final aborts: what the blocks look like at exit
        except BaseException as e:  # noqa: BLE001 - any failure of the loop ends every request
            logger.exception("Engine loop failed; failing all requests")
            self._die(e)
            if self.on_dead is not None:
                self.on_dead(e)
        finally:
            self._shutdown_executor()

    def _shutdown_executor(self) -> None:
        try:
            self.engine.shutdown()
        except Exception:  # noqa: BLE001 - a broken engine may fail here too; the workers die with us
            logger.exception("Stopping the executor failed")

    def _drain_inbox(self, block: bool) -> bool:
        """Apply queued adds and aborts; False when asked to stop. When idle, wait for work
        (waking up once in a while to log the last interval)."""
        try:
            item = self._inbox.get(timeout=LOG_INTERVAL_S) if block else self._inbox.get_nowait()
        except queue.Empty:
            return True
        while True:
            if item[0] == "stop":
                self._abort_all()
                self._die(EngineDeadError("The engine was shut down."))
                return False
            self._apply(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return True

    def _apply(self, item: tuple) -> None:
        if item[0] == "abort":
            self._streams.pop(item[1], None)
            self.engine.abort_request(item[1])
            return
        if item[0] == "abort_all":
            self._abort_all()
            return
        _, stream, prompt, params = item
        try:
            self.engine.add_request(stream.request_id, prompt, params, stream=True)
            admitted = True
        except Exception as e:  # noqa: BLE001 - a bad request fails alone
            _call_soon(stream._loop, stream._fail, e)
            admitted = False
        with self._lock:
            self._num_unapplied -= 1
            self._num_waiting += admitted
        if admitted:
            self._streams[stream.request_id] = stream
            _call_soon(stream._loop, stream._accept)

    def _abort_all(self) -> None:
        for request_id in list(self.engine.requests):
            self.engine.abort_request(request_id)
            stream = self._streams.pop(request_id, None)
            if stream is not None:
                _call_soon(stream._loop, stream._fail, EngineStoppingError(
                    "The server is shutting down: this request was aborted before it finished."))

    def _fail_faulty_requests(self) -> None:
        """Requests the engine ended for a fault of their own: their streams get the error."""
        failed = self.engine.failed_requests
        while failed:
            request_id, error = failed.popitem()
            stream = self._streams.pop(request_id, None)
            if stream is not None:
                _call_soon(stream._loop, stream._fail,
                           RequestFailedError(f"The request failed in the engine: {error!r}"))

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        now = time.monotonic()
        for output in outputs:
            stream = self._streams.get(output.request_id)
            if output.finished:
                self._streams.pop(output.request_id, None)
                if self.on_request_finished is not None:
                    self.on_request_finished(output, now)
            if stream is not None:
                by_loop.setdefault(stream._loop, []).append((stream, output))
        for loop, items in by_loop.items():
            _call_soon(loop, _put_all, items)

    def _publish_snapshot(self) -> None:
        engine = self.engine
        bm, sched = engine.block_manager, engine.scheduler
        hits, queries = bm.reset_prefix_hit_counters()
        self._prefix_totals[0] += hits
        self._prefix_totals[1] += queries
        num_waiting = len({s.request_id for s in sched.waiting})
        with self._lock:
            self._num_waiting = num_waiting
        self.snapshot = EngineSnapshot(
            num_running=len({s.request_id for s in sched.running}),
            num_waiting=num_waiting,
            kv_blocks_used=bm.num_blocks - bm.num_free_blocks, kv_blocks_total=bm.num_blocks,
            prompt_tokens_total=engine.stats.prompt_tokens_total,
            generation_tokens_total=engine.stats.generation_tokens_total,
            prefix_cache_hits_total=self._prefix_totals[0],
            prefix_cache_queries_total=self._prefix_totals[1],
            num_preemptions_total=sched.num_preemptions)

    def _maybe_log(self) -> None:
        now = time.monotonic()
        elapsed = now - self._last_log
        if elapsed < LOG_INTERVAL_S:
            return
        prompt_tokens, generation_tokens = self.engine.stats.take_interval()
        s = self.snapshot
        busy = prompt_tokens or generation_tokens or s.num_running or s.num_waiting
        hits = self._prefix_totals[0] - self._logged_prefix[0]
        queries = self._prefix_totals[1] - self._logged_prefix[1]
        self._last_log, self._logged_prefix = now, tuple(self._prefix_totals)
        if busy:
            logger.info("Avg prompt throughput: %.1f tokens/s, Avg generation throughput: %.1f tokens/s, "
                        "Running: %d reqs, Waiting: %d reqs, GPU KV cache usage: %.1f%%, "
                        "Prefix cache hit rate: %.1f%%", prompt_tokens / elapsed, generation_tokens / elapsed,
                        s.num_running, s.num_waiting, 100 * s.kv_cache_usage,
                        100 * hits / queries if queries else 0.0)

    def _die(self, error: BaseException) -> None:
        with self._lock:
            self.dead_error = error
            pending = list(self._streams.values())
            self._streams.clear()
            while True:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item[0] == "add":
                    pending.append(item[1])
        failure = error if isinstance(error, EngineDeadError) else EngineDeadError(
            f"The engine loop failed: {error!r}")
        for stream in pending:
            _call_soon(stream._loop, stream._fail, failure)


def _put_all(items: list[tuple[RequestStream, RequestOutput]]) -> None:
    for stream, output in items:
        stream._put(output)


def _call_soon(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # that event loop is closed: nobody is listening any more
        pass
