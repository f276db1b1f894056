"""EngineCore: the scheduler, the KV blocks and the executor, fed token ids and returning,
per step, each sample's new token (with its logprobs) and whether a token ended it.

It never sees text: tokenization, detokenization and stop strings are the front end's
(output_processor.py), which asks the core to abort a sample that hit a stop string. The same
core runs inside `LLMEngine` (offline, one process) and in a process of its own behind the
server (core_process.py)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from ember.config import EngineConfig
from ember.engine.block_manager import BlockManager
from ember.engine.messages import CoreStats, EngineCoreRequest, SampleUpdate
from ember.engine.request import CoreRequest
from ember.engine.scheduler import Scheduler
from ember.engine.sequence import Sequence
from ember.sampling_params import SamplingParams
from ember.structured.manager import StructuredOutputs
from ember.worker.pending_step import PendingStep
from ember.worker.step_input import SampledToken

logger = logging.getLogger(__name__)

# Called with each step's number (from 1) before it is launched; raising there fails the step
# as a failing model forward would. Tests pass one in to inject faults.
StepHook = Callable[[int], None]


class EngineCore:
    def __init__(self, config: EngineConfig, get_tokenizer: Callable[[], object | None] = lambda: None,
                 eos_token_ids: list[int] | None = None, before_step: StepHook | None = None):
        """`get_tokenizer()` is called only for structured output (the grammar's token table),
        on the first constrained request."""
        self.config = config
        # Imported here: the server's API process imports this module for its types and never
        # runs a model, so it need not load the executor's worker and model code (~1 s).
        from ember.executor import create_executor

        self.executor = create_executor(config)
        try:
            num_blocks = self.executor.determine_num_blocks()
            self.executor.initialize_cache(num_blocks)
        except BaseException:
            self.executor.shutdown()
            raise
        self.block_manager = BlockManager(num_blocks, config.block_size, config.enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_num_batched_tokens)
        tokens = num_blocks * config.block_size
        logger.info("KV cache: %d blocks of %d tokens = %d tokens; maximum concurrency at "
                    "max_model_len %d: %.2fx", num_blocks, config.block_size, tokens,
                    config.max_model_len, tokens / config.max_model_len)
        self.structured = StructuredOutputs(get_tokenizer, config.hf_config.vocab_size, eos_token_ids or [])
        self.requests: dict[str, CoreRequest] = {}
        # Unfinished requests whose sampling needs their exact outputs so far: while any is,
        # steps do not overlap. Kept as requests come and go, not found by a scan each step.
        self._exact_history_requests: set[str] = set()
        self._in_flight: _LaunchedStep | None = None
        self._before_step = before_step
        self._num_launched = 0
        self.stats = CoreStats(kv_blocks_total=num_blocks)
        self.completed_step_sizes: list[int] = []  # tokens of each step completed, until taken
        if config.device.startswith("cuda"):
            self._warm_up()

    def _warm_up(self) -> None:
        """One mixed prefill + decode batch through the real path, so Triton compiles its
        kernel variants now rather than while the first requests wait."""
        params = SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True)
        long_prompt = min(300, self.config.max_model_len - 2)
        for i, length in enumerate((long_prompt, 3)):
            self.add_request(EngineCoreRequest(f"ember-warmup-{i}", [i] * length, params, time.monotonic()))
        while self.has_unfinished_requests():
            self.step()
        self.stats = CoreStats(kv_blocks_total=self.num_kv_blocks)
        self.completed_step_sizes.clear()
        self.block_manager.reset_prefix_hit_counters()

    @property
    def num_kv_blocks(self) -> int:
        return self.block_manager.num_blocks

    def shutdown(self) -> None:
        """Stop the executor's worker processes or actors (tensor parallelism)."""
        self.executor.shutdown()

    def add_request(self, request: EngineCoreRequest) -> None:
        """ValueError for a request id in use or an invalid grammar."""
        request_id, params = request.request_id, request.params
        if request_id in self.requests:
            raise ValueError(f"Request id {request_id!r} is already in use.")
        seqs = [Sequence(request_id, i, request.prompt_token_ids, params, request.arrival_time)
                for i in range(params.n)]
        if params.guided_decoding is not None:
            for seq in seqs:  # compiles the grammar once (cached); ValueError when invalid
                self.structured.add(seq.seq_id, params)
        self.requests[request_id] = CoreRequest(request_id, seqs)
        if _needs_exact_history(params):
            self._exact_history_requests.add(request_id)
        for seq in seqs:
            self.scheduler.add(seq)

    def abort_request(self, request_id: str) -> bool:
        request = self._forget(request_id)
        if request is None:
            return False
        for seq in request.seqs:
            if not seq.is_finished:
                seq.finish("abort")
            self.scheduler.finish(seq)
        return True

    def abort_sample(self, request_id: str, index: int) -> None:
        """End one sample early (the front end found a stop string in it)."""
        request = self.requests.get(request_id)
        if request is None or request.seqs[index].is_finished:
            return
        seq = request.seqs[index]
        seq.finish("abort")
        self.scheduler.finish(seq)
        request.num_finished += 1
        if request.finished:
            self._forget(request_id)

    def _forget(self, request_id: str) -> CoreRequest | None:
        self._exact_history_requests.discard(request_id)
        return self.requests.pop(request_id, None)

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def step(self) -> list[SampleUpdate]:
        """Run one step; returns the updates of the step that completed.

        On the GPU the steps overlap: this call launches step N, then waits for step N-1's
        tokens and does the host-side work for them while the device computes step N."""
        overlap = self._overlap_allowed()
        previous, self._in_flight = self._in_flight, None
        updates: list[SampleUpdate] = []
        if previous is not None and not overlap:
            updates += self._complete(previous)
            previous = None
        current = self._launch() if self.scheduler.waiting or self.scheduler.running else None
        if previous is not None:
            updates += self._complete(previous)
        if current is not None:
            if overlap:
                self._in_flight = current
            else:
                updates += self._complete(current)
        return updates

    def _overlap_allowed(self) -> bool:
        """Overlapping is off when some sequence's sampling depends on its exact outputs so far
        (penalties, min_tokens, prompt logprobs, a grammar)."""
        return self.config.async_scheduling and not self._exact_history_requests

    def _launch(self) -> _LaunchedStep:
        self._num_launched += 1
        if self._before_step is not None:
            self._before_step(self._num_launched)
        step = self.scheduler.schedule()
        step.grammar = self.structured.bitmask(step, self.scheduler.by_id)
        pending = self.executor.launch(step)
        return _LaunchedStep(step.num_tokens, pending, self.scheduler.advance())

    def _complete(self, launched: _LaunchedStep) -> list[SampleUpdate]:
        result = self.executor.collect(launched.pending)
        updates: list[SampleUpdate] = []
        for seq_id, entries in result.prompt_logprobs.items():
            seq = self.scheduler.by_id.get(seq_id)
            if seq is not None and seq.index == 0:
                updates.append(SampleUpdate(seq.request_id, 0, prompt_logprobs=entries))
        for seq in launched.reached_end:
            seq.num_pending -= 1
            request = self.requests.get(seq.request_id)
            # A sequence that finished (or was aborted) while this step ran: its token is surplus.
            if seq.is_finished or request is None:
                continue
            try:
                update = self._append(seq, result.sampled[seq.seq_id])
            except Exception as e:  # noqa: BLE001 - one request's fault (its grammar) ends it alone
                logger.exception("Request %s failed; aborting it alone", request.request_id)
                self.abort_request(request.request_id)
                updates.append(SampleUpdate(request.request_id, seq.index, error=repr(e)))
                continue
            updates.append(update)
            if update.finish_reason is not None:  # the sequence finished here
                request.num_finished += 1
                self.scheduler.finish(seq)
                if request.finished:
                    self._forget(request.request_id)
        self.completed_step_sizes.append(launched.num_tokens)
        num_sampled = len(launched.reached_end)
        self.stats.prompt_tokens_total += launched.num_tokens - num_sampled
        self.stats.generation_tokens_total += num_sampled
        return updates

    def _append(self, seq: Sequence, sampled: SampledToken) -> SampleUpdate:
        """Append the sampled token and finish the sequence on a stop token or the length limit."""
        token = sampled.token_id
        seq.token_ids.append(token)
        p = seq.params
        if p.guided_decoding is not None:
            self.structured.accept(seq.seq_id, token)
        num_output_tokens = seq.num_output_tokens
        if num_output_tokens >= p.min_tokens and token in seq.all_stop_token_ids:
            seq.finish("stop", token if token in p.stop_token_ids else None)
        elif num_output_tokens >= p.max_tokens or seq.num_tokens >= self.config.max_model_len:
            seq.finish("length")
        return SampleUpdate(
            seq.request_id, seq.index, [token],
            logprobs=[(sampled.logprob, sampled.top_logprobs)] if sampled.top_logprobs is not None else None,
            finish_reason=seq.finish_reason, stop_reason=seq.stop_reason, num_cached_tokens=seq.num_cached_tokens,
            first_scheduled_time=seq.first_scheduled_time if num_output_tokens == 1 else None)

    def current_stats(self) -> CoreStats:
        """The counters as of now (prefix-cache hits counted since the last call added in)."""
        bm, sched, s = self.block_manager, self.scheduler, self.stats
        hits, queries = bm.reset_prefix_hit_counters()
        s.prefix_cache_hits_total += hits
        s.prefix_cache_queries_total += queries
        s.num_running = len({seq.request_id for seq in sched.running})
        s.num_waiting = len({seq.request_id for seq in sched.waiting})
        s.kv_blocks_used = bm.num_blocks - bm.num_free_blocks
        s.num_preemptions_total = sched.num_preemptions
        return s


@dataclass
class _LaunchedStep:
    num_tokens: int
    pending: PendingStep
    reached_end: list[Sequence]


def _needs_exact_history(p: SamplingParams) -> bool:
    return (p.repetition_penalty != 1.0 or p.presence_penalty != 0.0 or p.frequency_penalty != 0.0
            or p.min_tokens > 0 or p.prompt_logprobs is not None or p.guided_decoding is not None)
