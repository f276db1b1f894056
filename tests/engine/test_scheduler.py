"""The scheduler on its own, as vLLM's tests/v1/core/test_scheduler.py tests it: what each step
schedules under the token budget and the sequence cap, the order of chunked prefills, who is
preempted and how it resumes, what a prefix cache hit costs, and aborts. No model runs: a step's
sampled token is appended by hand, as the engine core would."""
from __future__ import annotations

import itertools

from ember.engine.block_manager import BlockManager
from ember.engine.scheduler import Scheduler
from ember.engine.sequence import Sequence, SequenceStatus
from ember.sampling_params import SamplingParams

_request_ids = itertools.count()
SAMPLED = 7  # the token every step "samples"


def scheduler(num_blocks: int = 64, block_size: int = 4, max_num_seqs: int = 16,
              max_num_batched_tokens: int = 32, prefix_caching: bool = True) -> Scheduler:
    return Scheduler(BlockManager(num_blocks, block_size, prefix_caching), max_num_seqs, max_num_batched_tokens)


def request(prompt_len: int, max_tokens: int = 4) -> Sequence:
    """A request whose prompt shares no token with any other's (no prefix cache hits)."""
    n = next(_request_ids)
    prompt = list(range(1000 * (n + 1), 1000 * (n + 1) + prompt_len))
    return Sequence(f"r{n}", 0, prompt, SamplingParams(max_tokens=max_tokens))


def run_step(sched: Scheduler) -> dict[str, int]:
    """One step as the engine core runs it, the sampled tokens arriving at once. Returns the
    number of tokens scheduled per request id."""
    step = sched.schedule()
    scheduled = {sched.by_id[c.seq_id].request_id: len(c.token_ids) for c in step.chunks}
    assert sum(scheduled.values()) == step.num_tokens
    for seq in sched.advance():
        seq.num_pending -= 1
        seq.token_ids.append(SAMPLED)
        if seq.num_output_tokens >= seq.params.max_tokens:
            seq.finish("length")
            sched.finish(seq)
    return scheduled


def add(sched: Scheduler, *seqs: Sequence) -> None:
    for seq in seqs:
        sched.add(seq)


def test_each_step_stays_within_the_token_budget():
    sched = scheduler(max_num_batched_tokens=32)
    a, b, c = request(20), request(20), request(20)
    add(sched, a, b, c)
    # The budget runs out inside b's prompt: b gets a chunk, c nothing.
    assert run_step(sched) == {a.request_id: 20, b.request_id: 12}
    # Running sequences first (a decodes, b finishes its prompt), then c with what is left.
    assert run_step(sched) == {a.request_id: 1, b.request_id: 8, c.request_id: 20}
    assert run_step(sched) == {a.request_id: 1, b.request_id: 1, c.request_id: 1}


def test_running_sequences_are_capped_at_max_num_seqs():
    sched = scheduler(max_num_seqs=2)
    seqs = [request(4, max_tokens=2) for _ in range(5)]
    add(sched, *seqs)
    assert run_step(sched) == {seqs[0].request_id: 4, seqs[1].request_id: 4}
    assert len(sched.running) == 2 and len(sched.waiting) == 3
    # The first two finish with their second token; only then do the next two start.
    assert run_step(sched) == {seqs[0].request_id: 1, seqs[1].request_id: 1}
    assert run_step(sched) == {seqs[2].request_id: 4, seqs[3].request_id: 4}


def test_chunked_prefill_finishes_the_oldest_prompt_before_later_ones_start():
    sched = scheduler(max_num_batched_tokens=16)
    long, short = request(40), request(4)
    add(sched, long, short)
    chunks = []
    for _ in range(3):
        step = sched.schedule()
        chunks.append([(sched.by_id[c.seq_id].request_id, c.start_position, len(c.token_ids), c.sample)
                       for c in step.chunks])
        sched.advance()
    # Only the chunk that reaches the prompt's end samples a token.
    assert chunks == [[(long.request_id, 0, 16, False)],
                      [(long.request_id, 16, 16, False)],
                      [(long.request_id, 32, 8, True), (short.request_id, 0, 4, True)]]


def test_when_blocks_run_out_the_newest_running_sequence_is_preempted_and_later_recomputed():
    # Four blocks of 4 tokens: the two 8-token prompts fill them exactly.
    sched = scheduler(num_blocks=4, block_size=4, prefix_caching=False)
    old, new = request(8, max_tokens=3), request(8, max_tokens=3)
    add(sched, old, new)
    run_step(sched)
    assert sched.blocks.num_free_blocks == 0
    # `old` needs a third block for its next token: `new` gives up its blocks.
    assert run_step(sched) == {old.request_id: 1}
    assert new.status is SequenceStatus.WAITING and new.num_preemptions == 1 and sched.num_preemptions == 1
    assert new.block_table == [] and new.num_computed_tokens == 0
    assert list(sched.waiting) == [new]
    run_step(sched)
    assert old.is_finished
    # `new` comes back and recomputes its prompt and the token it had sampled, then goes on.
    step = sched.schedule()
    (chunk,) = step.chunks
    assert (chunk.seq_id, chunk.start_position, chunk.token_ids, chunk.sample) == \
        (new.seq_id, 0, new.prompt_token_ids + [SAMPLED], True)
    sched.advance()
    new.num_pending -= 1
    new.token_ids.append(SAMPLED)
    while not new.is_finished:
        run_step(sched)
    assert new.output_token_ids == [SAMPLED] * 3


def test_nothing_new_is_admitted_in_a_step_that_preempts():
    sched = scheduler(num_blocks=4, block_size=4, prefix_caching=False)
    old, new, waiting = request(8), request(8), request(1)
    add(sched, old, new)
    run_step(sched)
    sched.add(waiting)
    assert run_step(sched) == {old.request_id: 1}
    assert list(sched.waiting) == [new, waiting]


def test_a_prefix_cache_hit_is_charged_only_for_the_uncached_tokens():
    sched = scheduler(block_size=4, max_num_batched_tokens=8)
    first = request(16, max_tokens=1)
    add(sched, first)
    run_step(sched)
    run_step(sched)
    assert first.is_finished  # its four blocks stay cached
    # The same first 12 tokens (three blocks), then 8 others: 20 tokens, yet the budget of 8
    # takes the whole prompt in one step.
    new_tokens = list(range(8))
    second = Sequence("same-start", 0, first.prompt_token_ids[:12] + new_tokens, SamplingParams(max_tokens=1))
    sched.add(second)
    (chunk,) = sched.schedule().chunks
    assert (chunk.start_position, chunk.token_ids, chunk.sample) == (12, new_tokens, True)
    assert second.num_cached_tokens == 12
    assert second.block_table[:3] == [sched.blocks.cached[h] for h in first.block_hashes[:3]]


def test_an_identical_prompt_still_computes_its_last_block():
    sched = scheduler(block_size=4)
    first = request(16, max_tokens=1)
    add(sched, first)
    run_step(sched)
    run_step(sched)
    again = Sequence("again", 0, first.prompt_token_ids, SamplingParams(max_tokens=1))
    sched.add(again)
    (chunk,) = sched.schedule().chunks
    # The last token's logits are needed: its block is computed again, not taken from the cache.
    assert (chunk.start_position, len(chunk.token_ids), chunk.sample) == (12, 4, True)


def test_a_cached_block_nobody_holds_is_not_counted_twice_as_free_space():
    # Five blocks; `first` leaves its four cached but free. `second` shares its first two and needs
    # three more: 2 reused + 3 new = 5 blocks, exactly what there is.
    sched = scheduler(num_blocks=5, block_size=4, max_num_batched_tokens=32)
    first = request(16, max_tokens=1)
    add(sched, first)
    run_step(sched)
    run_step(sched)
    second = Sequence("longer", 0, first.prompt_token_ids[:8] + list(range(12)), SamplingParams(max_tokens=2))
    sched.add(second)
    assert run_step(sched) == {"longer": 12}
    assert len(second.block_table) == 5 and sched.blocks.num_free_blocks == 0
    # One token more would need a sixth block: it waits instead of overcommitting.
    third = Sequence("too-long", 0, list(range(500, 524)), SamplingParams(max_tokens=1))
    sched.add(third)
    assert "too-long" not in run_step(sched)


def test_a_long_prompt_is_not_starved_by_a_stream_of_short_ones():
    sched = scheduler(num_blocks=64, block_size=4, max_num_seqs=4, max_num_batched_tokens=8)
    add(sched, request(4, max_tokens=8), request(4, max_tokens=8))
    long = request(64, max_tokens=1)
    sched.add(long)
    later = set()
    for step in range(40):
        short = request(4, max_tokens=8)  # a new short prompt every step
        later.add(short.request_id)
        sched.add(short)
        scheduled = run_step(sched)
        if long.is_finished:
            break
        assert not scheduled.keys() & later, f"step {step}: a later short prompt went before the long one"
    # 64 prompt tokens at up to 8 a step, shared with two decoding requests: a bounded wait.
    assert long.is_finished and step < 16


def test_aborting_a_waiting_request_frees_nothing_and_announces_nothing():
    sched = scheduler(max_num_seqs=1)
    running, waiting = request(4), request(4)
    add(sched, running, waiting)
    run_step(sched)
    free = sched.blocks.num_free_blocks
    sched.finish(waiting)
    assert list(sched.waiting) == [] and waiting.seq_id not in sched.by_id
    assert sched.blocks.num_free_blocks == free
    assert sched.schedule().finished_seq_ids == []


def test_aborting_a_running_request_frees_its_blocks_and_tells_the_runner():
    sched = scheduler(max_num_batched_tokens=8)
    seq = request(20)
    add(sched, seq)
    run_step(sched)  # a chunk of its prompt is computed: it holds blocks
    assert seq.block_table
    sched.finish(seq)
    assert sched.running == [] and sched.blocks.num_free_blocks == sched.blocks.num_blocks
    step = sched.schedule()
    assert step.finished_seq_ids == [seq.seq_id] and step.chunks == []
    assert sched.schedule().finished_seq_ids == []
