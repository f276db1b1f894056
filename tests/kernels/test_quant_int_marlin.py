"""The Marlin-style int4 kernels (the tensor-core GEMM, the dequantize-for-cuBLAS pass) against
the plain-torch reference of their layout: every group size GPTQ and AWQ use, act-order (the
caller permutes the activations' columns), N not a multiple of the tiles, K not a multiple of
the K tile, split K, and M at each tile's edges. Under the interpreter (fp32, fp16) the plain
Triton unpack runs; on the GPU (bf16, fp16) the PTX one."""
import functools

import pytest
import torch

from tests.kernels.marlin_cases import DTYPES, assert_marlin_close as _close, marlin_case
from ember.kernels.quant_int_marlin_dequant import dequantize_marlin_t
from ember.kernels.quant_int_marlin_gemm import MarlinTiles, marlin_gemm
from ember.kernels.quant_int_marlin_layout import dequantize_marlin, marlin_codes, to_marlin

N = 96  # not a multiple of BLOCK_N: masked columns

# name: (group size, act-order, K). Per-channel with K = 320: the last K tile is partial.
GROUPS = {"g32-act-order": (32, True, 512), "g64": (64, False, 512), "g128": (128, False, 512),
          "g128-act-order": (128, True, 512), "per-channel": (-1, False, 512), "per-channel-k320": (-1, False, 320)}


_case = functools.partial(marlin_case, n=N)


@pytest.fixture(params=list(DTYPES.values()), ids=list(DTYPES))
def dtype(request, device):
    return request.param


def test_layout_interleaves_each_words_codes():
    codes = torch.arange(8).repeat(2)[:, None]  # [16, 1]: features 0..7 of two words
    words = to_marlin(codes)
    # Nibble i holds feature 2i (i < 4) or 2(i - 4) + 1: 0x75316420 for codes 0..7.
    assert words.tolist() == [[0x75316420, 0x75316420]]
    assert torch.equal(marlin_codes(words), codes)


def test_layout_round_trips_random_codes():
    codes = torch.randint(0, 16, (256, 40))
    assert torch.equal(marlin_codes(to_marlin(codes)), codes)


@pytest.mark.parametrize("m", [1, 17, 100])  # the 16-, 32- and 128-row tiles, the last partial
@pytest.mark.parametrize("group", list(GROUPS))
def test_marlin_gemm(device, dtype, group, m):
    args, x, ref = _case(device, dtype, *GROUPS[group], m)
    _close(marlin_gemm(x, *args), ref, dtype)


@pytest.mark.parametrize("tiles", [MarlinTiles(16, 64, 64, 4, 2, 0), MarlinTiles(16, 32, 128, 4, 3, 8),
                                   MarlinTiles(32, 64, 32, 4, 2, 4), MarlinTiles(16, 64, 128, 4, 3, 4, True)],
                         ids=["no-split", "split-k", "bk32-split-k", "scale-in-unpack-split-k"])
def test_marlin_gemm_tiles_of_the_sweep(device, dtype, tiles):
    args, x, ref = _case(device, dtype, 128, False, 512, 5)
    _close(marlin_gemm(x, *args, tiles=tiles), ref, dtype)


@pytest.mark.parametrize("group", ["g32-act-order", "g128", "per-channel-k320"])
def test_dequantize_marlin_t(device, dtype, group):
    args, _, _ = _case(device, dtype, *GROUPS[group], 1)
    qweight, scales, zeros, group_size = args
    ref = dequantize_marlin(qweight.cpu(), scales.float().cpu(), zeros.float().cpu(), group_size)
    out = dequantize_marlin_t(qweight, scales, zeros, group_size)
    assert out.dtype == dtype and out.shape == (N, ref.shape[0])
    torch.testing.assert_close(out.float().cpu(), ref.T, atol=1e-2, rtol=1e-2)


def test_groups_of_no_multiple_of_16_are_refused(device):
    args, x, _ = _case(device, torch.float32, 40, False, 320, 1)
    with pytest.raises(ValueError, match="multiple of 16"):
        marlin_gemm(x, *args)


def test_empty_batch(device):
    args, x, _ = _case(device, torch.float32, 128, False, 512, 0)
    assert marlin_gemm(x, *args).shape == (0, N)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("m", [1, 4, 16, 64, 128, 256])
@pytest.mark.parametrize("k, n", [(3584, 4608), (18944, 3584)], ids=["7b-qkv", "7b-down"])
@pytest.mark.parametrize("group_size", [128, 32, -1])
def test_marlin_at_7b_shapes_on_gpu(k, n, group_size, m):
    """bf16 on the PTX unpack: within bf16's rounding of the fp32 reference (the output's
    last bit, relative to its norm)."""
    args, x, ref = _case("cuda", torch.bfloat16, group_size, False, k, m, n=n)
    out = marlin_gemm(x, *args).float().cpu()
    assert (out - ref).norm() / ref.norm() < 1e-2
    dense = dequantize_marlin_t(*args)
    assert ((x @ dense.T).float().cpu() - ref).norm() / ref.norm() < 1e-2
