"""Which steps the prefill CUDA graphs take, and what their static buffers hold once a step is
copied in (run on CPU tensors; the graphs themselves are tested on the GPU, tests/gpu)."""
import numpy as np
import pytest
import torch

from ember.kernels.paged_attention import LONG_Q_LEN
from ember.models.layers.kernels import TORCH
from ember.models.llama import LlamaForCausalLM
from ember.worker.input_batch import build_model_input
from ember.worker.prefill_graphs import PrefillGraphs, capture_sizes
from ember.worker.step_input import ScheduledChunk, StepInput
from tests.tiny_models import tiny_config

BLOCK_SIZE = 16


@pytest.fixture(scope="module")
def graphs():
    model = LlamaForCausalLM(tiny_config("qwen2", vocab_size=64), 4096, TORCH)
    return PrefillGraphs(model, 8192, 4096, BLOCK_SIZE, torch.device("cpu"))


def _step(*chunks: tuple[int, int, bool]):
    """A step of (tokens, tokens already cached, samples) chunks, each sequence's blocks laid
    out one after another."""
    scheduled, rows, first_block = [], [], 0
    for seq_id, (q_len, start, sample) in enumerate(chunks):
        num_blocks = -(-(start + q_len) // BLOCK_SIZE)
        rows.append(np.arange(first_block, first_block + num_blocks, dtype=np.int32))
        first_block += num_blocks
        scheduled.append(ScheduledChunk(seq_id, [100 + seq_id * 1000 + i for i in range(q_len)], start, [], sample))
    width = max(len(r) for r in rows)
    tables = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        tables[i, :len(r)] = r
    return build_model_input(StepInput(scheduled), tables, BLOCK_SIZE, torch.device("cpu"))


def test_ladder_is_short_and_stays_below_the_long_prompt_kernel():
    """Few graphs to capture at a cold start; no size reaches LONG_Q_LEN, where a lone sequence
    is attended by cuDNN with exact lengths."""
    assert capture_sizes(8192, 4096) == [16, 32, 64, 128, 256, 512]
    assert all(s < LONG_Q_LEN for s in capture_sizes(8192, 32768))


def test_ladder_ends_at_the_token_budget_or_the_context():
    assert capture_sizes(100, 4096) == [16, 32, 64, 100]
    assert capture_sizes(8192, 200) == [16, 32, 64, 128, 200]
    assert capture_sizes(16, 4096) == [16]


@pytest.mark.parametrize("chunks,fits", [
    ([(64, 0, True)], True),          # the latency benchmark's prefill
    ([(2, 0, True)], True),
    ([(512, 0, True)], True),         # the largest size, a context at the bound
    ([(50, 100, True)], True),        # after a prefix-cache hit
    ([(1, 0, True)], False),          # one token: a decode graph's
    ([(513, 0, True)], False),        # longer than the largest size
    ([(20, 500, True)], False),       # a context past the bound
    ([(64, 0, False)], False),        # a chunk short of the prompt's end samples nothing
    ([(64, 0, True), (1, 30, True)], False),  # two sequences
])
def test_fits_one_sequence_short_prompt_chunk_that_samples(graphs, chunks, fits):
    assert graphs.fits(_step(*chunks)) is fits


def test_fill_pads_to_the_next_size_with_tokens_that_write_no_cache_slot(graphs):
    graphs.fill(_step((40, 0, True)))  # a longer step first: its slots must not survive as padding
    inp = _step((10, 20, True))
    assert graphs.fill(inp) == 16
    assert torch.equal(graphs.input_ids[:10], inp.input_ids)
    assert torch.equal(graphs.positions[:10], torch.arange(20, 30))
    assert torch.equal(graphs.slot_mapping[:10], inp.attention.slot_mapping)
    assert (graphs.slot_mapping[10:16] == -1).all()
    # Padding belongs to no sequence: attention stops at the real query's end.
    assert graphs.query_start_loc.tolist() == [0, 10]
    assert graphs.seq_lens.tolist() == [30]
    assert graphs.block_tables[0, :2].tolist() == [0, 1]
    assert graphs.last_row.tolist() == [9]


def test_fill_takes_sizes_at_their_edges(graphs):
    assert [graphs.fill(_step((n, 0, True))) for n in (2, 16, 17, 64, 100, 512)] == [16, 16, 32, 64, 128, 512]
    assert graphs.last_row.tolist() == [511] and (graphs.slot_mapping != -1).all()


def test_fill_copies_no_more_of_the_block_table_than_the_bound_reads(graphs):
    """Blocks appended past the context (a table wider than the bound's) are not needed."""
    inp = _step((100, 0, True))
    wide = torch.arange(64, dtype=torch.int32).unsqueeze(0)
    inp.attention.block_tables = wide
    graphs.fill(inp)
    assert torch.equal(graphs.block_tables, wide[:, :512 // BLOCK_SIZE])
