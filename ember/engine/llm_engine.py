"""LLMEngine: add_request / step / abort. It tokenizes, admits and validates requests, lets the
scheduler decide each step, has the executor run it, then appends tokens, detokenizes and
checks every stop condition."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from ember.config import EngineConfig
from ember.engine.block_manager import BlockManager
from ember.engine.detokenizer import Detokenizer, find_stop_string
from ember.engine.request import Request
from ember.engine.scheduler import Scheduler
from ember.engine.sequence import Sequence
from ember.engine.stats import EngineStats
from ember.executor import create_executor
from ember.outputs import Logprob, RequestOutput
from ember.sampling_params import SamplingParams
from ember.structured.manager import StructuredOutputs
from ember.tokenizer import load_tokenizer
from ember.worker.pending_step import PendingStep
from ember.worker.step_input import SampledToken

logger = logging.getLogger(__name__)

# generation_config.json keys that become SamplingParams defaults, as vLLM applies them.
_GENERATION_DEFAULTS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                        "min_p": "min_p", "repetition_penalty": "repetition_penalty",
                        "max_new_tokens": "max_tokens"}


class LLMEngine:
    def __init__(self, config: EngineConfig):
        self.config = config
        start = time.perf_counter()
        self.tokenizer = None if config.skip_tokenizer_init else load_tokenizer(
            config.tokenizer_path, config.trust_remote_code, config.revision)
        self.detokenizer = Detokenizer(self.tokenizer) if self.tokenizer is not None else None
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
        self.eos_token_ids = self._eos_token_ids()
        # Structured output (xgrammar, loaded on the first constrained request).
        self.structured = StructuredOutputs(self.tokenizer, config.hf_config.vocab_size, self.eos_token_ids)
        self.requests: dict[str, Request] = {}
        self._in_flight: _LaunchedStep | None = None
        self.stats = EngineStats()
        # Off (the default): a fault in one request's post-processing raises from step(). On
        # (AsyncLLM): that request alone is aborted and its error kept in failed_requests.
        self.isolate_request_faults = False
        self.failed_requests: dict[str, Exception] = {}
        self._num_launched, self._fail_at_step = 0, 0
        if config.device.startswith("cuda"):
            self._warm_up()
        # Test only (the reliability suite): make the N-th step after start-up raise, as a
        # failing model forward would.
        self._fail_at_step = int(os.environ.get("EMBER_TEST_FAIL_AT_STEP") or 0)
        self.startup_seconds = time.perf_counter() - start
        logger.info("Engine ready in %.1f s", self.startup_seconds)

    def _warm_up(self) -> None:
        """One mixed prefill + decode batch through the real path, so Triton compiles its
        kernel variants now rather than while the first requests wait."""
        params = SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True)
        long_prompt = min(300, self.config.max_model_len - 2)
        for i, length in enumerate((long_prompt, 3)):
            self.add_request(f"ember-warmup-{i}", [i] * length, params)
        while self.has_unfinished_requests():
            self.step()
        self.stats = EngineStats()
        self.block_manager.reset_prefix_hit_counters()

    def shutdown(self) -> None:
        """Stop the executor's worker processes or actors (tensor parallelism); the engine is
        unusable afterwards. Also done at interpreter exit."""
        self.executor.shutdown()

    @property
    def num_kv_blocks(self) -> int:
        return self.block_manager.num_blocks

    def _eos_token_ids(self) -> list[int]:
        ids = self.config.generation_config.get("eos_token_id")
        if ids is None:
            ids = getattr(self.config.hf_config, "eos_token_id", None)
        if ids is None and self.tokenizer is not None:
            ids = self.tokenizer.eos_token_id
        if ids is None:
            return []
        return [ids] if isinstance(ids, int) else list(ids)

    def default_sampling_params(self) -> SamplingParams:
        """SamplingParams() with the checkpoint's generation_config.json defaults applied."""
        gen = self.config.generation_config
        overrides = {ours: gen[theirs] for theirs, ours in _GENERATION_DEFAULTS.items() if theirs in gen}
        if gen.get("do_sample") is False:
            overrides["temperature"] = 0.0
        return SamplingParams(**overrides)

    def tokenize(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        if self.tokenizer is None:
            raise ValueError("This engine was started without a tokenizer: give prompt token ids.")
        return self.tokenizer.encode(prompt, add_special_tokens=add_special_tokens)

    def validate_prompt(self, prompt_token_ids: list[int], params: SamplingParams) -> None:
        n = len(prompt_token_ids)
        if n == 0:
            raise ValueError("The prompt is empty.")
        vocab = self.config.hf_config.vocab_size
        if any(not 0 <= t < vocab for t in prompt_token_ids):
            raise ValueError(f"Prompt token ids must be in [0, {vocab}).")
        limit = self.config.max_model_len
        if n >= limit:
            raise ValueError(f"The prompt is {n} tokens long, but this model's maximum context length "
                             f"(max_model_len) is {limit} tokens, which leaves no room to generate.")
        # A max_tokens beyond the context is not an error (vLLM's offline semantics, seed 004
        # asks 32768): generation stops at max_model_len with finish_reason "length". The
        # server refuses such a request with a 400 before it gets here (admission.py).
        total = min(n + (params.max_tokens or limit), limit)
        if self.block_manager.blocks_needed(total) > self.block_manager.num_blocks:
            raise ValueError(f"This request needs up to {total} tokens of KV cache, but the whole "
                             f"cache holds {self.block_manager.num_blocks * self.config.block_size}.")

    def add_request(self, request_id: str, prompt: str | list[int] | dict, params: SamplingParams | None = None,
                    stream: bool = False, arrival_time: float | None = None) -> None:
        if request_id in self.requests:
            raise ValueError(f"Request id {request_id!r} is already in use.")
        params = params if params is not None else self.default_sampling_params()
        text, ids = _split_prompt(prompt)
        if ids is None:
            ids = self.tokenize(text)
        if params.best_of > params.n:
            raise ValueError("best_of > n is not supported: ask for n samples instead.")
        self.validate_prompt(ids, params)
        params = params.clone(_eos_token_ids=self.eos_token_ids)
        if params.max_tokens is None:
            params.max_tokens = self.config.max_model_len - len(ids)
        seqs = [Sequence(request_id, i, ids, params, arrival_time) for i in range(params.n)]
        request = Request(request_id, text, list(ids), params, seqs, stream)
        if params.prompt_logprobs is not None:
            request.prompt_logprobs = [None]
        if params.guided_decoding is not None:
            for seq in seqs:  # compiles the grammar once (cached); ValueError when invalid
                self.structured.add(seq.seq_id, params)
        self.requests[request_id] = request
        for seq in seqs:
            self.scheduler.add(seq)

    def abort_request(self, request_id: str) -> bool:
        request = self.requests.pop(request_id, None)
        if request is None:
            return False
        for seq in request.seqs:
            if not seq.is_finished:
                seq.finish("abort")
                request.num_finished += 1
            self.scheduler.finish(seq)
        return True

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def step(self) -> list[RequestOutput]:
        """Run one step. Returns outputs of requests that finished, plus those of streaming
        requests that progressed.

        On the GPU the steps overlap: this call launches step N, then waits for step N-1's
        tokens and does the host-side work for them while the device computes step N."""
        overlap = self._overlap_allowed()
        previous, self._in_flight = self._in_flight, None
        outputs: list[RequestOutput] = []
        if previous is not None and not overlap:
            outputs += self._complete(previous)
            previous = None
        current = self._launch() if self.scheduler.waiting or self.scheduler.running else None
        if previous is not None:
            outputs += self._complete(previous)
        if current is not None:
            if overlap:
                self._in_flight = current
            else:
                outputs += self._complete(current)
        return outputs

    def _overlap_allowed(self) -> bool:
        """Overlapping is off when some sequence's sampling depends on its exact outputs so far
        (penalties, min_tokens, prompt logprobs, a grammar)."""
        if not self.config.async_scheduling:
            return False
        return not any(_needs_exact_history(s.params) for s in self.scheduler.running) and \
            not any(_needs_exact_history(s.params) for s in self.scheduler.waiting)

    def _launch(self) -> _LaunchedStep:
        self._num_launched += 1
        if self._num_launched == self._fail_at_step:
            raise RuntimeError(f"Injected engine fault at step {self._fail_at_step} (EMBER_TEST_FAIL_AT_STEP)")
        step = self.scheduler.schedule()
        step.grammar = self.structured.bitmask(step, self.scheduler.by_id)
        pending = self.executor.launch(step)
        return _LaunchedStep(step.num_tokens, pending, self.scheduler.advance())

    def _complete(self, launched: _LaunchedStep) -> list[RequestOutput]:
        result = self.executor.collect(launched.pending)
        now = time.monotonic()
        touched: dict[str, Request] = {}
        for seq_id, entries in result.prompt_logprobs.items():
            seq = self.scheduler.by_id.get(seq_id)
            if seq is not None and seq.index == 0:
                self.requests[seq.request_id].prompt_logprobs.extend(map(self._logprob_entry, entries))
        for seq in launched.reached_end:
            seq.num_pending -= 1
            request = self.requests.get(seq.request_id)
            # A sequence that finished (or was aborted) while this step ran: its token is surplus.
            if seq.is_finished or request is None:
                continue
            try:
                self._append(seq, result.sampled[seq.seq_id], now)
            except Exception as e:
                if not self.isolate_request_faults:
                    raise
                logger.exception("Request %s failed; aborting it alone", request.request_id)
                self.abort_request(request.request_id)
                self.failed_requests[request.request_id] = e
                touched.pop(request.request_id, None)
                continue
            touched[request.request_id] = request
            if seq.is_finished:
                request.num_finished += 1
                self.scheduler.finish(seq)
        self.stats.record_step(launched.num_tokens, len(launched.reached_end), now)
        outputs = []
        for request in touched.values():
            if request.finished:
                del self.requests[request.request_id]
                self.stats.record_finished(request, now)
            if request.finished or request.stream:
                outputs.append(request.output())
        return outputs

    def _logprob_entry(self, entries: list[tuple[int, float, int]]) -> dict[int, Logprob]:
        decode = self.tokenizer.decode if self.tokenizer is not None else (lambda ids: None)
        return {t: Logprob(lp, rank, decode([t])) for t, lp, rank in entries}

    def _append(self, seq: Sequence, sampled: SampledToken, now: float) -> None:
        """Append the sampled token, detokenize, and finish the sequence if a stop condition holds."""
        token = sampled.token_id
        seq.token_ids.append(token)
        if seq.params.guided_decoding is not None:
            self.structured.accept(seq.seq_id, token)
        if seq.first_token_time is None:
            seq.first_token_time = now
        if seq.logprobs is not None:
            seq.cumulative_logprob += sampled.logprob
            seq.logprobs.append(self._logprob_entry(sampled.top_logprobs))
        p = seq.params
        past_min = seq.num_output_tokens >= p.min_tokens
        if past_min and token in p.all_stop_token_ids:
            if p.include_stop_str_in_output:
                self._detokenize(seq, token)
            reason = token if token in p.stop_token_ids else None
            seq.finish("stop", reason)
            return
        new_chars = self._detokenize(seq, token)
        if past_min and p.stop and new_chars:
            stop = find_stop_string(seq, new_chars)
            if stop is not None:
                seq.finish("stop", stop)
                return
        if seq.num_output_tokens >= p.max_tokens or seq.num_tokens >= self.config.max_model_len:
            seq.finish("length")

    def _detokenize(self, seq: Sequence, token: int) -> int:
        if self.detokenizer is None or not seq.params.detokenize:
            return 0
        return len(self.detokenizer.append(seq, token))


@dataclass
class _LaunchedStep:
    num_tokens: int
    pending: PendingStep
    reached_end: list[Sequence]


def _needs_exact_history(p: SamplingParams) -> bool:
    return (p.repetition_penalty != 1.0 or p.presence_penalty != 0.0 or p.frequency_penalty != 0.0
            or p.min_tokens > 0 or p.prompt_logprobs is not None or p.guided_decoding is not None)


def _split_prompt(prompt: str | list[int] | dict) -> tuple[str | None, list[int] | None]:
    """(text, token ids): a string, a list of token ids, or vLLM's {"prompt": ...} /
    {"prompt_token_ids": [...]} dicts."""
    if isinstance(prompt, str):
        return prompt, None
    if isinstance(prompt, dict):
        if "prompt_token_ids" in prompt:
            return prompt.get("prompt"), list(prompt["prompt_token_ids"])
        if "prompt" in prompt:
            return prompt["prompt"], None
        raise ValueError("A prompt dict needs 'prompt' or 'prompt_token_ids'.")
    if isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
        return None, list(prompt)
    raise ValueError(f"A prompt must be a string or a list of token ids, got {type(prompt).__name__}.")
