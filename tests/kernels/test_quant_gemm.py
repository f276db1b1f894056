"""The quantized GEMM kernels (int4/int8 with groups and act-order, FP8 with per-tensor and
block scales) against their plain-torch references."""
import pytest
import torch

from ember.kernels.quant_fp8_gemm import fp8_gemm, fp8_gemm_ref
from ember.kernels.quant_int_gemm import int_gemm, int_gemm_ref
from ember.kernels.quant_packing import pack_int32

K, N = 128, 96  # N is not a multiple of the 64-wide tiles: masked edges


@pytest.mark.parametrize("m", [1, 33])
@pytest.mark.parametrize("group_size, act_order", [(32, False), (64, True), (K, False)],
                         ids=["g32", "g64-act-order", "per-channel"])
@pytest.mark.parametrize("bits", [4, 8])
def test_int_gemm(device, dtype, bits, group_size, act_order, m):
    groups = K // group_size
    qweight = pack_int32(torch.randint(0, 2 ** bits, (K, N)), bits, dim=0).to(device)
    scales = (torch.rand(groups, N) * 0.02 / 2 ** (bits - 4)).to(device, dtype)
    zeros = torch.randint(0, 2 ** bits, (groups, N)).to(device, dtype)
    perm = torch.randperm(K).to(device) if act_order else None
    x = torch.randn(m, K, device=device).to(dtype)
    out = int_gemm(x, qweight, scales, zeros, bits, group_size, perm)
    ref = int_gemm_ref(x.float(), qweight, scales.float(), zeros.float(), bits, group_size, perm)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


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
    qweight = torch.zeros(K // 8, N, dtype=torch.int32, device=device)
    scales = torch.ones(1, N, device=device)
    assert int_gemm(x, qweight, scales, scales, 4, K).shape == (0, N)
