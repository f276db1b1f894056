"""Paged blocks: allocation, reference counts, the hash-chained prefix cache, LRU eviction."""
from ember.engine.block_manager import BlockManager
from ember.engine.sequence import Sequence
from ember.sampling_params import SamplingParams


def _seq(tokens):
    return Sequence("r", 0, tokens, SamplingParams())


def _run_prefill(bm: BlockManager, seq: Sequence) -> None:
    prefix = bm.find_cached_prefix(seq)
    assert bm.allocate_slots(seq, seq.num_tokens - len(prefix) * bm.block_size, prefix)
    seq.num_computed_tokens = seq.num_tokens
    bm.cache_computed_blocks(seq)


def test_allocation_grows_by_blocks_and_fails_cleanly():
    bm = BlockManager(num_blocks=4, block_size=4)
    seq = _seq(list(range(10)))
    assert bm.allocate_slots(seq, 10)
    assert len(seq.block_table) == 3 and bm.num_free_blocks == 1
    other = _seq(list(range(100, 110)))
    assert not bm.allocate_slots(other, 10)
    assert other.block_table == [] and bm.num_free_blocks == 1
    bm.free(seq)
    assert bm.num_free_blocks == 4


def test_shared_prefix_is_found_and_reference_counted():
    bm = BlockManager(num_blocks=8, block_size=4)
    a = _seq(list(range(10)))
    _run_prefill(bm, a)
    b = _seq(list(range(8)) + [99, 98, 97])
    prefix = bm.find_cached_prefix(b)
    assert prefix == a.block_table[:2]
    assert bm.allocate_slots(b, b.num_tokens - 8, prefix)
    assert b.num_computed_tokens == 8 and b.num_cached_tokens == 8
    assert bm.ref_counts[prefix[0]] == 2
    bm.free(a)
    assert bm.ref_counts[prefix[0]] == 1
    bm.free(b)
    assert bm.num_free_blocks == 8


def test_a_fully_cached_prompt_still_computes_its_last_token():
    bm = BlockManager(num_blocks=8, block_size=4)
    a = _seq(list(range(8)))
    _run_prefill(bm, a)
    bm.free(a)
    again = _seq(list(range(8)))
    assert len(bm.find_cached_prefix(again)) == 1


def test_hash_chain_depends_on_everything_before():
    bm = BlockManager(num_blocks=8, block_size=4)
    _run_prefill(bm, _seq([1, 2, 3, 4, 5, 6, 7, 8, 0]))
    # Same second block, different first block: no hit at all.
    assert bm.find_cached_prefix(_seq([9, 2, 3, 4, 5, 6, 7, 8, 0])) == []


def test_freed_cached_blocks_are_evicted_least_recently_used_first():
    bm = BlockManager(num_blocks=4, block_size=4)
    old, new = _seq([1] * 5), _seq([2] * 5)
    _run_prefill(bm, old)
    bm.free(old)
    _run_prefill(bm, new)
    bm.free(new)
    # Taking two blocks reuses the never-cached tail blocks... then the oldest cached one.
    taker = _seq([3] * 12)
    assert bm.allocate_slots(taker, 12)
    assert bm.find_cached_prefix(_seq([2] * 5)) != []
    assert bm.find_cached_prefix(_seq([1] * 5)) == []
