"""One sample stream's state: its tokens, where it stands, its blocks, why it finished."""
from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field

from ember.outputs import Logprob
from ember.sampling_params import SamplingParams

_seq_ids = itertools.count()


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass
class DetokenizerState:
    """Offsets of vLLM's incremental detokenization (see engine/detokenizer.py)."""
    started: bool = False
    tokens: list[str] = field(default_factory=list)
    prefix_offset: int = 0
    read_offset: int = 0
    text: str = ""


class Sequence:
    def __init__(self, request_id: str, index: int, prompt_token_ids: list[int],
                 params: SamplingParams, arrival_time: float | None = None):
        self.seq_id = next(_seq_ids)
        self.request_id = request_id
        self.index = index
        self.params = params
        self.token_ids: list[int] = list(prompt_token_ids)
        # Tokens sampled by launched steps but not yet known here: the engine schedules the
        # next step before the last one's tokens arrive (up to two steps in flight).
        self.num_pending = 0
        self.num_prompt_tokens = len(prompt_token_ids)
        self.status = SequenceStatus.WAITING
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0
        self.block_table: list[int] = []
        # Leading blocks of block_table already entered in the prefix cache.
        self.num_registered_blocks = 0
        # Chained hashes of this sequence's full blocks, filled as blocks fill up.
        self.block_hashes: list[bytes] = []
        self.arrival_time = time.monotonic() if arrival_time is None else arrival_time
        self.first_token_time: float | None = None
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None
        # Like vLLM: tracked only when logprobs are asked for, else None.
        self.cumulative_logprob = 0.0 if params.logprobs is not None else None
        self.logprobs: list[dict[int, Logprob]] | None = [] if params.logprobs is not None else None
        self.detok = DetokenizerState()
        self.num_preemptions = 0

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids) + self.num_pending

    @property
    def prompt_token_ids(self) -> list[int]:
        return self.token_ids[:self.num_prompt_tokens]

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def is_finished(self) -> bool:
        return self.status == SequenceStatus.FINISHED

    @property
    def seed(self) -> int | None:
        # Samples of one request differ but each stays reproducible, as vLLM's n > 1 does.
        return None if self.params.seed is None else self.params.seed + self.index

    def finish(self, reason: str, stop_reason: int | str | None = None) -> None:
        self.status = SequenceStatus.FINISHED
        self.finish_reason = reason
        self.stop_reason = stop_reason
