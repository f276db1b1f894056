import torch

from ember.worker.cuda_graphs import capture_sizes


def test_ladder_is_short_and_pads_little():
    """Few graphs to capture at a cold start, yet a batch above 16 sequences is padded by less
    than half, and every batch up to max_num_seqs has a graph."""
    sizes = capture_sizes(256)
    assert len(sizes) <= 15 and sizes[0] == 1 and sizes[-1] == 256
    for batch in range(1, 257):
        padded = next(s for s in sizes if s >= batch)
        assert batch <= 16 or padded < 1.5 * batch


def test_ladder_ends_at_max_num_seqs():
    assert capture_sizes(100)[-1] == 100 and capture_sizes(1)[-1] == 1
    assert all(a < b for a, b in zip(capture_sizes(1000), capture_sizes(1000)[1:]))


def test_large_batches_share_one_graph_for_both_context_bounds():
    """A context bound only changes the Triton attention's split count; batches large enough
    never to split get one graph for both bounds, small ones two (one sequence splits into
    64-key pieces: more of them under the longer bound)."""
    from ember.models.layers.kernels import TRITON
    from ember.models.llama import LlamaForCausalLM
    from ember.worker.cuda_graphs import DecodeGraphs
    from tests.tiny_models import tiny_config

    model = LlamaForCausalLM(tiny_config("qwen2", vocab_size=64), 4096, TRITON)
    graphs = DecodeGraphs(model, 256, 4096, 16, torch.device("cpu"))  # 132 SMs assumed off the GPU
    short, long = graphs.context_bounds
    assert graphs._launch_key(256, short) == graphs._launch_key(256, long) == 1
    assert 1 < graphs._launch_key(1, short) < graphs._launch_key(1, long)
