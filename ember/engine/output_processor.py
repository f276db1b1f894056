"""The front end's half of generation: from the core's per-step token updates to what users
get. Detokenizes incrementally, finds stop strings (and tells the core to stop those samples),
decodes logprobs, and builds each request's RequestOutput as its `output_kind` asks: the whole
output so far, only what is new, or one output at the end."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ember.engine.detokenizer import Detokenizer, DetokenizerState, find_stop_string, visible_length, visible_text
from ember.engine.messages import LogprobEntry, SampleUpdate
from ember.outputs import CompletionOutput, Logprob, RequestOutput
from ember.sampling_params import RequestOutputKind, SamplingParams

logger = logging.getLogger(__name__)


@dataclass
class SampleState:
    index: int
    params: SamplingParams
    prompt_token_ids: list[int]
    output_token_ids: list[int] = field(default_factory=list)
    detok: DetokenizerState = field(default_factory=DetokenizerState)
    # Like vLLM: tracked only when logprobs are asked for, else None.
    logprobs: list[dict[int, Logprob]] | None = None
    cumulative_logprob: float | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    # What the previous DELTA output carried.
    sent_chars: int = 0
    sent_tokens: int = 0
    sent_final: bool = False

    @property
    def is_finished(self) -> bool:
        return self.finish_reason is not None

    def finish(self, reason: str, stop_reason: int | str | None = None) -> None:
        self.finish_reason, self.stop_reason = reason, stop_reason


@dataclass
class RequestState:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    arrival_time: float
    samples: list[SampleState]
    # Index 0 has no logprob (nothing precedes it), as in vLLM.
    prompt_logprobs: list[dict[int, Logprob] | None] | None = None
    sent_prompt_logprobs: bool = False
    num_cached_tokens: int = 0
    first_token_time: float | None = None
    first_scheduled_time: float | None = None
    num_finished: int = 0

    @property
    def finished(self) -> bool:
        return self.num_finished == len(self.samples)


@dataclass
class ProcessedOutputs:
    outputs: list[RequestOutput] = field(default_factory=list)
    # Samples the front end ended (a stop string): the core must stop computing them.
    samples_to_abort: list[tuple[str, int]] = field(default_factory=list)
    # Requests that failed (in the core, or here while detokenizing): request id -> error.
    failed: dict[str, Exception] = field(default_factory=dict)


class OutputProcessor:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.detokenizer = Detokenizer(tokenizer) if tokenizer is not None else None
        self.requests: dict[str, RequestState] = {}

    def add_request(self, request_id: str, prompt: str | None, prompt_token_ids: list[int],
                    params: SamplingParams, arrival_time: float) -> None:
        want_logprobs = params.logprobs is not None
        samples = [SampleState(i, params, prompt_token_ids, logprobs=[] if want_logprobs else None,
                               cumulative_logprob=0.0 if want_logprobs else None) for i in range(params.n)]
        self.requests[request_id] = RequestState(
            request_id, prompt, prompt_token_ids, params, arrival_time, samples,
            prompt_logprobs=[None] if params.prompt_logprobs is not None else None)

    def abort_request(self, request_id: str) -> bool:
        return self.requests.pop(request_id, None) is not None

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def process(self, updates: list[SampleUpdate], now: float) -> ProcessedOutputs:
        result = ProcessedOutputs()
        touched: dict[str, RequestState] = {}
        for update in updates:
            state = self.requests.get(update.request_id)
            if state is None:  # finished or aborted while the core still ran it
                continue
            if update.error is not None:
                self._fail(state, RuntimeError(update.error), result, touched)
                continue
            if update.prompt_logprobs:
                state.prompt_logprobs.extend(map(self._logprob_dict, update.prompt_logprobs))
            sample = state.samples[update.index]
            if not update.token_ids or sample.is_finished:
                continue
            try:
                stopped_here = self._append(state, sample, update, now)
            except Exception as e:  # noqa: BLE001 - one request's fault ends it alone
                logger.exception("Request %s failed; aborting it alone", state.request_id)
                self._fail(state, e, result, touched)
                continue
            if stopped_here:
                result.samples_to_abort.append((state.request_id, sample.index))
            if sample.is_finished:
                state.num_finished += 1
            touched[state.request_id] = state
        for state in touched.values():
            if state.finished:
                del self.requests[state.request_id]
            elif state.params.output_kind == RequestOutputKind.FINAL_ONLY:
                continue  # LLM.generate's requests: nothing to build until they finish
            output = self._output(state)
            if output is not None:
                result.outputs.append(output)
        return result

    def _fail(self, state: RequestState, error: Exception, result: ProcessedOutputs,
              touched: dict[str, RequestState]) -> None:
        self.requests.pop(state.request_id, None)
        touched.pop(state.request_id, None)
        result.failed[state.request_id] = error

    def _append(self, state: RequestState, sample: SampleState, update: SampleUpdate, now: float) -> bool:
        """Take the sample's new tokens; True when a stop string ended it here (the core does
        not know yet)."""
        if update.num_cached_tokens > state.num_cached_tokens:
            state.num_cached_tokens = update.num_cached_tokens
        if state.first_token_time is None:
            state.first_token_time = now
        if update.first_scheduled_time is not None and state.first_scheduled_time is None:
            state.first_scheduled_time = update.first_scheduled_time
        p = sample.params
        detokenizer = self.detokenizer if p.detokenize else None
        if detokenizer is not None and not p.stop and p.output_kind == RequestOutputKind.FINAL_ONLY:
            # Nobody reads this text before the sample ends and no stop string is looked for
            # in it: it is decoded once at the end (the same token-by-token decoding, without
            # a round through here per step).
            self._append_undecoded(sample, update)
            if sample.is_finished:
                shown = sample.output_token_ids
                if sample.finish_reason == "stop" and not p.include_stop_str_in_output:
                    shown = shown[:-1]
                detokenizer.extend(sample, shown)
            return False
        with_logprobs = update.logprobs is not None and sample.logprobs is not None
        last = len(update.token_ids) - 1
        for i, token in enumerate(update.token_ids):
            sample.output_token_ids.append(token)
            if with_logprobs:
                logprob, entries = update.logprobs[i]
                sample.cumulative_logprob += logprob
                sample.logprobs.append(self._logprob_dict(entries))
            core_finish = update.finish_reason if i == last else None
            if core_finish == "stop":  # an end-of-sequence or stop token: shown only when asked
                if p.include_stop_str_in_output and detokenizer is not None:
                    detokenizer.append(sample, token)
                sample.finish("stop", update.stop_reason)
                return False
            new_chars = len(detokenizer.append(sample, token)) if detokenizer is not None else 0
            if p.stop and new_chars and len(sample.output_token_ids) >= p.min_tokens:
                stop = find_stop_string(sample, new_chars)
                if stop is not None:
                    sample.finish("stop", stop)
                    return core_finish is None
            if core_finish is not None:
                sample.finish(core_finish)
        return False

    def _append_undecoded(self, sample: SampleState, update: SampleUpdate) -> None:
        """The tokens and their logprobs, and the core's finish, without the text."""
        sample.output_token_ids.extend(update.token_ids)
        if update.logprobs is not None and sample.logprobs is not None:
            for logprob, entries in update.logprobs:
                sample.cumulative_logprob += logprob
                sample.logprobs.append(self._logprob_dict(entries))
        if update.finish_reason is not None:
            sample.finish(update.finish_reason, update.stop_reason if update.finish_reason == "stop" else None)

    def _logprob_dict(self, entries: list[LogprobEntry]) -> dict[int, Logprob]:
        decode = self.tokenizer.decode if self.tokenizer is not None else (lambda ids: None)
        return {t: Logprob(lp, rank, decode([t])) for t, lp, rank in entries}

    def _output(self, state: RequestState) -> RequestOutput | None:
        kind = state.params.output_kind
        if kind == RequestOutputKind.FINAL_ONLY and not state.finished:
            return None
        delta = kind == RequestOutputKind.DELTA
        outputs = [out for s in state.samples if (out := _completion(s, delta)) is not None]
        prompt_logprobs = state.prompt_logprobs
        if delta:
            prompt_logprobs = None if state.sent_prompt_logprobs else prompt_logprobs
            state.sent_prompt_logprobs = True
        return RequestOutput(
            request_id=state.request_id, prompt=state.prompt, prompt_token_ids=state.prompt_token_ids,
            prompt_logprobs=prompt_logprobs, outputs=outputs, finished=state.finished,
            num_cached_tokens=state.num_cached_tokens,
            metrics={"arrival_time": state.arrival_time, "first_scheduled_time": state.first_scheduled_time,
                     "first_token_time": state.first_token_time,
                     "num_generation_tokens": max(len(s.output_token_ids) for s in state.samples)})


def _completion(s: SampleState, delta: bool) -> CompletionOutput | None:
    """The sample's output; as a delta, only what the previous one did not carry (None when
    nothing is new)."""
    if not delta:
        return CompletionOutput(s.index, visible_text(s), list(s.output_token_ids), s.cumulative_logprob,
                                list(s.logprobs) if s.logprobs is not None else None, s.finish_reason,
                                s.stop_reason)
    if s.sent_final:
        return None
    # Only the new part is sliced out: a stream's step costs what it added, not its length.
    visible = visible_length(s)
    new_text, new_tokens = s.detok.text[s.sent_chars:visible], s.output_token_ids[s.sent_tokens:]
    if not new_text and not new_tokens and not s.is_finished:
        return None
    logprobs = s.logprobs[s.sent_tokens:] if s.logprobs is not None else None
    s.sent_chars, s.sent_tokens, s.sent_final = visible, len(s.output_token_ids), s.is_finished
    return CompletionOutput(s.index, new_text, new_tokens, s.cumulative_logprob, logprobs, s.finish_reason,
                            s.stop_reason)
