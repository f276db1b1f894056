"""What the sampler remembers per sequence between steps (its settings, seeded generator and
tokens so far), and how a step's rows become one SamplingBatch."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from ember.sampling_params import SamplingParams
from ember.worker.host_copy import to_device
from ember.worker.sampler import SamplingBatch
from ember.worker.step_input import GrammarBitmask, NewSequence


@dataclass
class SequenceSamplingState:
    params: SamplingParams
    prompt_token_ids: list[int]
    generator: torch.Generator | None
    # Recorded only where sampling reads them (SamplingStates.reads_outputs), else left empty.
    output_token_ids: list[int] = field(default_factory=list)
    # allowed_token_ids and logit_bias as device tensors, made once per sequence.
    allowed_ids: torch.Tensor | None = None
    bias_ids: torch.Tensor | None = None
    bias_values: torch.Tensor | None = None


def _pad(rows: list[list[int]], fill: int) -> torch.Tensor:
    width = max(1, max(len(r) for r in rows))
    return torch.tensor([r + [fill] * (width - len(r)) for r in rows], dtype=torch.int64)


class SamplingStates:
    def __init__(self, device: torch.device, vocab_size: int):
        self.device = device
        self.vocab_size = vocab_size
        self.states: dict[int, SequenceSamplingState] = {}
        # Sequences that asked for prompt logprobs: the runner looks only at these.
        self.want_prompt_logprobs: set[int] = set()
        # Sequences whose sampling reads their outputs so far (penalties, min_tokens): the
        # runner records the sampled tokens of these alone.
        self.reads_outputs: set[int] = set()
        self._settings_key: tuple[int, ...] | None = None
        self._settings: tuple[SamplingBatch, bool] | None = None

    def add(self, new: NewSequence) -> None:
        generator = None
        if new.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(new.seed)
        state = SequenceSamplingState(new.params, list(new.prompt_token_ids), generator)
        # Ids beyond the logits are dropped here: the front ends refuse them with a clear error first.
        if new.params.allowed_token_ids is not None:
            state.allowed_ids = to_device([t for t in new.params.allowed_token_ids if t < self.vocab_size],
                                          self.device, torch.int64)
        if new.params.logit_bias:
            bias = {t: v for t, v in new.params.logit_bias.items() if t < self.vocab_size}
            state.bias_ids = to_device(list(bias), self.device, torch.int64)
            state.bias_values = to_device(list(bias.values()), self.device, torch.float32)
        self.states[new.seq_id] = state
        if new.params.prompt_logprobs is not None:
            self.want_prompt_logprobs.add(new.seq_id)
        p = new.params
        if p.repetition_penalty != 1.0 or p.presence_penalty or p.frequency_penalty or p.min_tokens > 0:
            self.reads_outputs.add(new.seq_id)

    def remove(self, seq_id: int) -> None:
        self.states.pop(seq_id, None)
        self.want_prompt_logprobs.discard(seq_id)
        self.reads_outputs.discard(seq_id)

    def batch(self, seq_ids: list[int], grammar: GrammarBitmask | None = None) -> SamplingBatch:
        states = [self.states[s] for s in seq_ids]
        key = tuple(seq_ids)
        if key != self._settings_key:
            # The rows' settings change only when the batch does: decode steps reuse them
            # (and their device copies) until a sequence joins or leaves.
            self._settings_key, self._settings = key, self._settings_of(states)
        settings, some_min_tokens = self._settings
        b = copy.copy(settings)
        dev, V = self.device, self.vocab_size

        def column(values, dtype=torch.float32) -> torch.Tensor:
            return to_device(values, dev, dtype)

        if b.repetition_penalty is not None or b.presence_penalty is not None or b.frequency_penalty is not None:
            outputs = _pad([s.output_token_ids for s in states], V).to(dev)
            counts = torch.zeros(len(states), V + 1, device=dev)
            counts.scatter_add_(1, outputs, torch.ones_like(outputs, dtype=counts.dtype))
            b.output_counts = counts[:, :V]
            prompts = _pad([s.prompt_token_ids for s in states], V).to(dev)
            mask = torch.zeros(len(states), V + 1, dtype=torch.bool, device=dev)
            b.prompt_mask = mask.scatter_(1, prompts, True)[:, :V]
        if some_min_tokens:
            banned = [(row, sorted(s.params.all_stop_token_ids)) for row, s in enumerate(states)
                      if len(s.output_token_ids) < s.params.min_tokens and s.params.all_stop_token_ids]
            b.banned = [(row, [t for t in ids if t < V]) for row, ids in banned] or None
        if grammar is not None:
            row_of = {seq_id: row for row, seq_id in enumerate(seq_ids)}
            rows = [row_of[s] for s in grammar.seq_ids]
            b.bitmask_rows = column(rows, torch.int64)
            b.token_bitmask = grammar.bitmask.to(dev, non_blocking=True)
        return b

    def _settings_of(self, states: list[SequenceSamplingState]) -> tuple[SamplingBatch, bool]:
        """What of a batch follows from its rows' settings alone, and whether some row has
        min_tokens (which rows it bans is found each step)."""
        params = [s.params for s in states]
        dev, V = self.device, self.vocab_size

        def column(values, dtype=torch.float32) -> torch.Tensor:
            return to_device(values, dev, dtype)

        b = SamplingBatch(
            temperature=column([p.temperature if not p.greedy else 0.0 for p in params]),
            top_k=column([p.normalized_top_k or V for p in params], torch.int64)
            if any(0 < p.normalized_top_k < V for p in params) else None,
            top_p=column([p.top_p for p in params]) if any(p.top_p < 1.0 for p in params) else None,
            min_p=column([p.min_p for p in params]) if any(p.min_p > 0.0 for p in params) else None,
            all_greedy=all(p.greedy for p in params),
            all_temperature_one=all(p.temperature == 1.0 for p in params),
            want_logprobs=any(p.logprobs is not None for p in params),
            max_num_logprobs=max((p.logprobs or 0 for p in params), default=0),
        )
        if any(p.repetition_penalty != 1.0 or p.presence_penalty or p.frequency_penalty for p in params):
            b.repetition_penalty = column([p.repetition_penalty for p in params])
            b.presence_penalty = column([p.presence_penalty for p in params])
            b.frequency_penalty = column([p.frequency_penalty for p in params])
        _token_lists(b, states)
        generators = {row: s.generator for row, s in enumerate(states) if s.generator is not None}
        b.generators = generators or None
        return b, any(p.min_tokens > 0 for p in params)


def _token_lists(b: SamplingBatch, states: list[SequenceSamplingState]) -> None:
    """allowed_token_ids and logit_bias of the rows that have them, as flat (row, id) tensors."""
    restricted = [(row, s.allowed_ids) for row, s in enumerate(states) if s.allowed_ids is not None]
    if restricted:
        rows = [row for row, _ in restricted]
        ids = [ids for _, ids in restricted]
        device = ids[0].device
        b.restricted_rows = to_device(rows, device, torch.int64)
        counts = to_device([len(i) for i in ids], device, torch.int64)
        b.allowed = (b.restricted_rows.repeat_interleave(counts), torch.cat(ids))
    biased = [(row, s) for row, s in enumerate(states) if s.bias_ids is not None]
    if biased:
        device = biased[0][1].bias_ids.device
        counts = to_device([len(s.bias_ids) for _, s in biased], device, torch.int64)
        rows = to_device([row for row, _ in biased], device, torch.int64)
        b.logit_bias = (rows.repeat_interleave(counts), torch.cat([s.bias_ids for _, s in biased]),
                        torch.cat([s.bias_values for _, s in biased]))
