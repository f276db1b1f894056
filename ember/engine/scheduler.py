"""Continuous batching under a token budget. Each step every running sequence gets the tokens
it still lacks (one for a decode, a chunk of its prompt for a prefill) until the budget or the
sequence cap is spent; waiting sequences are admitted in arrival order with whatever is left.
When blocks run out, the newest running sequence is preempted and later recomputed."""
from __future__ import annotations

import time
from collections import deque

from ember.engine.block_manager import BlockManager
from ember.engine.sequence import Sequence, SequenceStatus
from ember.worker.step_input import PENDING_TOKEN, NewSequence, ScheduledChunk, StepInput


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int):
        self.blocks = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._announced: set[int] = set()
        self._finished_ids: list[int] = []
        self._preempted_ids: list[int] = []
        self._in_flight: list[tuple[Sequence, int]] = []
        # Every unfinished sequence, waiting or running, by id.
        self.by_id: dict[int, Sequence] = {}
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)
        self.by_id[seq.seq_id] = seq

    def schedule(self) -> StepInput:
        budget = self.max_num_batched_tokens
        scheduled: list[tuple[Sequence, int]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            num_new = min(seq.num_tokens - seq.num_computed_tokens, budget)
            while not self.blocks.allocate_slots(seq, num_new):
                victim = self.running.pop()
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            else:
                scheduled.append((seq, num_new))
                budget -= num_new
                i += 1
        # Admitting new work while preempting would only thrash.
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs and not preempted:
            seq = self.waiting[0]
            prefix = self.blocks.find_cached_prefix(seq) if not seq.block_table else []
            remaining = seq.num_tokens - seq.num_computed_tokens - len(prefix) * self.blocks.block_size
            num_new = min(remaining, budget)
            if not self.blocks.allocate_slots(seq, num_new, prefix):
                break
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            if seq.first_scheduled_time is None:
                seq.first_scheduled_time = time.monotonic()
            self.running.append(seq)
            scheduled.append((seq, num_new))
            budget -= num_new
        return self._step_input(scheduled)

    def _step_input(self, scheduled: list[tuple[Sequence, int]]) -> StepInput:
        step = StepInput(chunks=[], finished_seq_ids=self._finished_ids, preempted_seq_ids=self._preempted_ids)
        self._finished_ids, self._preempted_ids = [], []
        for seq, num_new in scheduled:
            start = seq.num_computed_tokens
            if seq.seq_id not in self._announced:
                self._announced.add(seq.seq_id)
                step.new_sequences.append(NewSequence(seq.seq_id, seq.prompt_token_ids, seq.params, seq.seed))
            token_ids = seq.token_ids[start:start + num_new]
            if len(token_ids) < num_new:
                token_ids.append(PENDING_TOKEN)
            step.chunks.append(ScheduledChunk(
                seq_id=seq.seq_id, token_ids=token_ids, start_position=start,
                new_block_ids=seq.block_table[seq.num_blocks_sent:], sample=start + num_new == seq.num_tokens))
            seq.num_blocks_sent = len(seq.block_table)
        self._in_flight = scheduled
        return step

    def _preempt(self, seq: Sequence) -> None:
        """Free the sequence's blocks; it goes back to the front of the queue and recomputes its
        prompt and outputs so far (the prefix cache often makes that cheap)."""
        self.blocks.free(seq)
        if seq.num_blocks_sent:
            seq.num_blocks_sent = 0
            self._preempted_ids.append(seq.seq_id)
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)

    def advance(self) -> list[Sequence]:
        """Once the step is launched: move each scheduled sequence forward by its chunk. Returns
        the sequences that reached their end; each now has one token pending, sampled on the
        device, which the engine appends when it arrives."""
        reached_end = []
        for seq, num_new in self._in_flight:
            seq.num_computed_tokens += num_new
            self.blocks.cache_computed_blocks(seq)
            if seq.num_computed_tokens == seq.num_tokens:
                seq.num_pending += 1
                reached_end.append(seq)
        self._in_flight = []
        return reached_end

    def finish(self, seq: Sequence) -> None:
        """Release a sequence that finished or was aborted, wherever it is."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq)
        self.by_id.pop(seq.seq_id, None)
        if seq.seq_id in self._announced:
            self._announced.discard(seq.seq_id)
            self._finished_ids.append(seq.seq_id)
