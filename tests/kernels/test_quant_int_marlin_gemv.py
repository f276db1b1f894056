"""The one-row int4 GEMV on the Marlin layout (quant_int_marlin_gemv.py) against the plain-torch
reference of that layout: group sizes 32 / 64 / 128 / per-channel (and one that is no power of
two), act-order (the caller permutes the activations' columns), N not a multiple of the column
block, K not a multiple of the K step, split K, 1 to 4 rows, with and without the next step's
words prefetched; a GPTQ layer whose table names the path; and on the GPU the 7B shapes in bf16
through both unpacks. Under the interpreter (fp32, fp16) the fp32 extraction runs (the PTX one
needs a GPU)."""
from dataclasses import replace

import functools

import pytest
import torch

from tests.kernels.marlin_cases import DTYPES, assert_marlin_close as _close, marlin_case
from ember.kernels.quant_int_marlin_gemv import MARLIN_GEMV_TILES, MarlinGemvTiles, marlin_gemv
from ember.quantization.gemm_paths import MARLIN_LAYOUT_PATHS, path_for
from ember.quantization.gptq import GPTQConfig, GPTQLinearMethod
from tests.quantization import packers

N = 40  # not a multiple of the column blocks (16, 32): masked columns

# name: (group size, act-order, K). K = 320 and 704 are no multiple of the 512-feature step.
GROUPS = {"g32-act-order": (32, True, 1024), "g64": (64, False, 1024), "g128": (128, False, 1024),
          "g128-act-order-k704": (128, True, 704), "per-channel": (-1, False, 1024),
          "per-channel-k320": (-1, False, 320), "g48": (48, False, 480)}
# Small tiles for the interpreter: a 16-word step splits into sub-blocks of 4 words at groups of
# 32, and K into several programs (the CPU counts 4 multiprocessors).
SMALL = MarlinGemvTiles(block_n=16, words=16, num_warps=4, programs_per_sm=4)


_case = functools.partial(marlin_case, n=N)


@pytest.fixture(params=list(DTYPES.values()), ids=list(DTYPES))
def dtype(request, device):
    return request.param


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("group", list(GROUPS))
def test_marlin_gemv(device, dtype, group, m):
    args, x, ref = _case(device, dtype, *GROUPS[group], m)
    _close(marlin_gemv(x, *args, tiles=SMALL), ref, dtype)


@pytest.mark.parametrize("group", ["g128-act-order-k704", "g48"])
def test_marlin_gemv_without_prefetch(device, dtype, group):
    """The loop that loads each step's words when it multiplies them, K split and ragged."""
    args, x, ref = _case(device, dtype, *GROUPS[group], 2)
    _close(marlin_gemv(x, *args, tiles=replace(SMALL, prefetch=False)), ref, dtype)


@pytest.mark.parametrize("tiles", [MARLIN_GEMV_TILES, MarlinGemvTiles(32, 64, 4, 0), MarlinGemvTiles(16, 8, 2, 8),
                                   MarlinGemvTiles(16, 64, 4, 8, ptx_unpack=False)],
                         ids=["default", "no-split", "short-steps-split-k", "fp32-unpack"])
def test_marlin_gemv_tiles_of_the_sweep(device, dtype, tiles):
    args, x, ref = _case(device, dtype, 64, False, 1024, 4)
    _close(marlin_gemv(x, *args, tiles=tiles), ref, dtype)


def test_split_k_counters_stay_zeroed_between_calls(device):
    """A second call (a graph's replay) reduces correctly: the last program reset its counter."""
    args, x, ref = _case(device, torch.float32, 128, False, 1024, 1)
    for _ in range(2):
        _close(marlin_gemv(x, *args, tiles=SMALL), ref, torch.float32)


def test_more_than_four_rows_are_refused(device):
    args, x, _ = _case(device, torch.float32, 128, False, 512, 5)
    with pytest.raises(AssertionError, match="at most 4 rows"):
        marlin_gemv(x, *args)


def test_empty_batch(device):
    args, x, _ = _case(device, torch.float32, 128, False, 512, 0)
    assert marlin_gemv(x, *args).shape == (0, N)


def test_gptq_layer_under_a_table_with_the_gemv(device):
    """The int linear method runs the GEMV where the table names it (act-order: the layer
    permutes the activations' columns), and the table reads the Marlin layout."""
    table = ((1, "marlin-gemv"), (None, "marlin"))
    assert "marlin-gemv" in MARLIN_LAYOUT_PATHS and path_for(table, 1) == "marlin-gemv"
    k, n = 256, 48
    tensors, dense = packers.gptq(torch.randn(n, k) * 0.05, bits=4, group_size=32, desc_act=True)
    method = GPTQLinearMethod(GPTQConfig(4, 32, 1), triton=True, paths=table)
    layer = packers.load_linear(method, tensors, k, n, device)
    assert layer.qweight.shape == (n, k // 8)
    x = torch.randn(1, 1, k, device=device)
    torch.testing.assert_close(layer(x), x @ dense.T.to(device), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("m", [1, 4])
@pytest.mark.parametrize("k, n", [(3584, 4608), (3584, 3584), (3584, 37888), (18944, 3584)],
                         ids=["7b-qkv", "7b-o", "7b-gate-up", "7b-down"])
@pytest.mark.parametrize("group_size", [128, 32, -1])
def test_marlin_gemv_at_7b_shapes_on_gpu(k, n, group_size, m):
    """bf16 on the PTX unpack, fp32 products: within bf16's rounding of the fp32 reference."""
    args, x, ref = marlin_case("cuda", torch.bfloat16, group_size, False, k, m, n)
    for tiles in (MARLIN_GEMV_TILES, MarlinGemvTiles(16, 64, 4, 8, ptx_unpack=False)):
        out = marlin_gemv(x, *args, tiles=tiles).float().cpu()
        assert (out - ref).norm() / ref.norm() < 1e-2, tiles
