"""The quantized GEMM kernels against their plain-torch references: the int4/int8 kernel
(the decode tiles, strip-shuffled words, groups, act-order) and its dequantizer, and the
W8A16 FP8 kernel (per-tensor and block scales)."""
import pytest
import torch

from ember.kernels.quant_fp8_gemm import fp8_gemm, fp8_gemm_ref
from ember.kernels.quant_int_gemm import (DECODE_TILES, dequantize_int, dequantize_int_strips, int_gemm,
                                          int_gemm_ref, to_strips)
from ember.kernels.quant_packing import pack_int32

K, N = 256, 96  # N is not a multiple of the strips: padded words, masked edges


# On the GPU each case compiles its kernels (seconds each): there bf16, the dtype models serve
# in; the interpreter runs fp32 and fp16 (it computes bf16 wrongly). That fp32 and fp16 fit the
# GPU's shared memory is test_quant_gemm_shared_memory.py's.
_DTYPES = {"bf16": torch.bfloat16} if torch.cuda.is_available() else {"fp32": torch.float32, "fp16": torch.float16}


@pytest.fixture(params=list(_DTYPES.values()), ids=list(_DTYPES))
def dtype(request, device):
    return request.param


def _int_weights(device, dtype, bits, group_size):
    groups = K // group_size
    qweight = pack_int32(torch.randint(0, 2 ** bits, (K, N)), bits, dim=0).to(device)
    scales = (torch.rand(groups, N) * 0.02 / 2 ** (bits - 4)).to(device, dtype)
    zeros = torch.randint(0, 2 ** bits, (groups, N)).to(device, dtype)
    return qweight, scales, zeros


def test_strips_hold_each_column_contiguously():
    qweight = torch.arange(4 * 5, dtype=torch.int32).reshape(4, 5)
    strips = to_strips(qweight, 2)
    assert strips.shape == (3, 4, 2)
    assert strips[1].tolist() == qweight[:, 2:4].tolist()
    assert strips[2, :, 0].tolist() == qweight[:, 4].tolist() and not strips[2, :, 1].any()


@pytest.mark.parametrize("m", [1, 33])  # 33: three M tiles, the last one partial
# Groups smaller than the K tile take the per-feature scale path; 128 and the whole row one
# scale per tile.
@pytest.mark.parametrize("group_size, act_order", [(64, True), (128, False), (K, False)],
                         ids=["g64-act-order", "g128", "per-channel"])
@pytest.mark.parametrize("bits", [4, 8])
def test_int_gemm(device, dtype, bits, group_size, act_order, m):
    qweight, scales, zeros = _int_weights(device, dtype, bits, group_size)
    perm = torch.randperm(K).to(device) if act_order else None
    x = torch.randn(m, K, device=device).to(dtype)
    # The caller hands the kernel the activations' columns in the weight's (sorted) row order.
    rows = x[:, perm] if act_order else x
    out = int_gemm(rows, to_strips(qweight, 128), scales, zeros, bits, group_size, DECODE_TILES)
    ref = int_gemm_ref(x.float(), qweight, scales.float(), zeros.float(), bits, group_size, perm)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("bits, group_size", [(4, 32), (4, K), (8, 64)])
def test_dequantize_int_strips(device, dtype, bits, group_size):
    qweight, scales, zeros = _int_weights(device, dtype, bits, group_size)
    got = dequantize_int_strips(to_strips(qweight, 64), scales, zeros, bits, group_size)
    assert got.dtype == dtype
    torch.testing.assert_close(got, dequantize_int(qweight, scales, zeros, bits, group_size), rtol=0, atol=0)


@pytest.mark.parametrize("m", [1, 20])
@pytest.mark.parametrize("block_k", [32, K], ids=["block", "per-tensor"])
def test_fp8_gemm(device, dtype, block_k, m):
    weight = torch.randn(N, K).to(torch.float8_e4m3fn).to(device)
    scale = (torch.rand(3, K // block_k) * 0.1).to(device)
    scale_row = torch.randint(0, 3, (N,), dtype=torch.int32).to(device)
    x = torch.randn(m, K, device=device).to(dtype)
    out = fp8_gemm(x, weight, scale, scale_row, block_k)
    ref = fp8_gemm_ref(x.float(), weight, scale, scale_row, block_k)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


def test_empty_batch(device):
    x = torch.empty(0, K, device=device)
    qweight = torch.zeros(1, K // 8, 128, dtype=torch.int32, device=device)
    scales = torch.ones(1, N, device=device)
    assert int_gemm(x, qweight, scales, scales, 4, K, DECODE_TILES).shape == (0, N)
