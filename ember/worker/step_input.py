"""The typed boundary between deciding (the scheduler) and doing (the model runner).

The scheduler says, per sequence, which tokens to compute this step and where their KV goes;
the runner turns that into tensors, runs the model and samples. Nothing else crosses."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ember.sampling_params import SamplingParams


PENDING_TOKEN = -1


@dataclass
class NewSequence:
    """Sent once, the first time a sequence is scheduled: what the sampler needs to know."""
    seq_id: int
    prompt_token_ids: list[int]
    params: SamplingParams
    seed: int | None


@dataclass
class ScheduledChunk:
    seq_id: int
    # The tokens to run through the model this step. PENDING_TOKEN stands for the token the
    # previous step is still sampling: the runner takes it from that step's device output.
    token_ids: list[int]
    start_position: int       # tokens of this sequence already in the KV cache
    # Blocks appended to the sequence's block table since the worker last heard of it (all of
    # them the first time, and after a preemption): the worker keeps the tables.
    new_block_ids: list[int]
    sample: bool              # True when this chunk reaches the sequence's end: sample a token


@dataclass
class GrammarBitmask:
    """Structured output: the tokens each constrained sequence may sample this step, as
    xgrammar's packed bitmask (int32 [len(seq_ids), ceil(V / 32)], bit set = allowed), on the
    host. Rows of other sequences are not constrained."""
    seq_ids: list[int]
    bitmask: torch.Tensor


@dataclass
class StepInput:
    chunks: list[ScheduledChunk]
    new_sequences: list[NewSequence] = field(default_factory=list)
    finished_seq_ids: list[int] = field(default_factory=list)
    # Sequences preempted since the last step: their blocks are gone, their tables start anew.
    preempted_seq_ids: list[int] = field(default_factory=list)
    grammar: GrammarBitmask | None = None

    @property
    def num_tokens(self) -> int:
        return sum([len(c.token_ids) for c in self.chunks])


@dataclass
class SampledToken:
    token_id: int
    logprob: float | None      # None unless the sequence asked for logprobs
    # (token id, logprob, rank) of the chosen token and the top-k, when logprobs were asked.
    top_logprobs: list[tuple[int, float, int]] | None = None


@dataclass
class StepOutput:
    sampled: dict[int, SampledToken]  # seq_id -> the token it got this step
    # seq_id -> one entry per prompt position after the first (vLLM's prompt_logprobs).
    prompt_logprobs: dict[int, list[list[tuple[int, float, int]]]] = field(default_factory=dict)
