"""The strip layout of int4/int8 weights and its dequantizer against the plain-torch reference,
and the W8A16 FP8 kernel (per-tensor and block scales). The int kernels that read the strips
are test_quant_int_gemv_tiled.py's."""
import pytest
import torch

from ember.kernels.quant_fp8_gemm import fp8_gemm, fp8_gemm_ref
from ember.kernels.quant_int_strips import dequantize_int, dequantize_int_strips, to_strips
from ember.kernels.quant_packing import pack_int32

K, N = 256, 96  # N is not a multiple of the strips: padded words, masked edges


# On the GPU each case compiles its kernels (seconds each): there bf16, the dtype models serve
# in; the interpreter runs fp32 and fp16 (it computes bf16 wrongly).
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

