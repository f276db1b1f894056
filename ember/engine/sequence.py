"""One sample stream as the engine core sees it: its tokens, where it stands, its blocks, why
it finished. Its text, logprobs and stop strings live in the front end (output_processor.py)."""
from __future__ import annotations

import enum
import itertools
import time

from ember.sampling_params import SamplingParams

_seq_ids = itertools.count()


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class Sequence:
    def __init__(self, request_id: str, index: int, prompt_token_ids: list[int],
                 params: SamplingParams, arrival_time: float | None = None):
        self.seq_id = next(_seq_ids)
        self.request_id = request_id
        self.index = index
        self.params = params
        # Checked against every sampled token: made once, not a new set per step.
        self.all_stop_token_ids = frozenset(params.all_stop_token_ids)
        self.token_ids: list[int] = list(prompt_token_ids)
        # Tokens sampled by launched steps but not yet known here: the engine schedules the
        # next step before the last one's tokens arrive (up to two steps in flight).
        self.num_pending = 0
        self.num_prompt_tokens = len(prompt_token_ids)
        self.status = SequenceStatus.WAITING
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0
        self.block_table: list[int] = []
        # Leading blocks of block_table the worker has been sent (it keeps the tables).
        self.num_blocks_sent = 0
        # Leading blocks of block_table already entered in the prefix cache.
        self.num_registered_blocks = 0
        # Chained hashes of this sequence's full blocks, filled as blocks fill up.
        self.block_hashes: list[bytes] = []
        self.arrival_time = time.monotonic() if arrival_time is None else arrival_time
        self.first_scheduled_time: float | None = None
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None
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
