"""W8A8 FP8: the dynamic activation quantizer, the Triton W8A8 kernel and cuBLAS's scaled GEMMs
(each recipe this torch and device run) against their plain-torch references."""
import os

import pytest
import torch

from ember.kernels.quant_fp8_act import quantize_fp8, quantize_fp8_ref
from ember.kernels.quant_fp8_scaled_mm import scaled_mm_blockwise, scaled_mm_recipes, scaled_mm_rowwise
from ember.kernels.quant_fp8_w8a8_gemm import fp8_w8a8_gemm, fp8_w8a8_gemm_ref
from ember.kernels.torch_refusal import TORCH_REFUSAL

K, N = 256, 384
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


@pytest.mark.parametrize("group", [None, 128, 32], ids=["per-token", "1x128", "1x32"])
def test_quantize_fp8(device, dtype, group):
    x = torch.randn(7, K, device=device).to(dtype) * 5
    x[2] = 0  # an all-zero row keeps a finite scale
    column_major = group == 128
    q, scales = quantize_fp8(x, group, column_major_scales=column_major)
    q_ref, scales_ref = quantize_fp8_ref(x, group, column_major_scales=column_major)
    assert scales.stride() == scales_ref.stride() and (scales.stride(0) == 1 or not column_major)
    torch.testing.assert_close(scales, scales_ref, rtol=1e-6, atol=0)
    assert q.float().abs().max() == 448  # each group's largest value maps to e4m3's largest
    got, want = q.float(), q_ref.float()
    if INTERPRETED:
        # Triton's interpreter does not round to nearest even: it rounds ties away from zero
        # and drops the carry when rounding reaches the next power of two (127.9 -> 64, not
        # 128). Elsewhere it stays within one step of e4m3; the GPU matches torch exactly.
        carried = want.abs() == 2 ** want.abs().clamp(min=2 ** -9).log2().round()
        step = 2 ** (want.abs().clamp(min=2 ** -6).log2().floor() - 3)
        assert ((got - want).abs() <= step)[~carried].all()
    else:
        assert torch.equal(got, want)


@pytest.mark.parametrize("m", [1, 20, 130])
@pytest.mark.parametrize("block_k", [128, K], ids=["block", "per-token"])
def test_fp8_w8a8_gemm(device, block_k, m):
    groups = K // block_k
    a = torch.randn(m, K).to(torch.float8_e4m3fn).to(device)
    a_scale = torch.rand(groups, m).t().to(device)  # any strides
    weight = torch.randn(N, K).to(torch.float8_e4m3fn).to(device)
    scale = (torch.rand(5, groups) * 0.1).to(device)
    scale_row = torch.randint(0, 5, (N,), dtype=torch.int32).to(device)
    out = fp8_w8a8_gemm(a, a_scale, weight, scale, scale_row, block_k, torch.float32)
    ref = fp8_w8a8_gemm_ref(a, a_scale, weight, scale, scale_row, block_k, torch.float32)
    # e4m3 products are exact in fp32; Hopper's fp8 MMA accumulates them with fewer bits than
    # fp32 (Triton's default there), the interpreter in fp32.
    tol = 1e-4 if INTERPRETED else 2e-3
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _agrees_with_probe(name: str, run, ref: torch.Tensor) -> None:
    """cuBLAS's scaled GEMM recipe `name` is right where scaled_mm_recipes says it runs, and
    fails or disagrees where it says not (Ember's FP8 layers then take the Triton kernel)."""
    try:
        out = run()
    except TORCH_REFUSAL:
        out = None
    works = out is not None and torch.allclose(out.float(), ref, rtol=2e-2, atol=2e-2)
    assert works == (name in scaled_mm_recipes("cuda")), (name, works)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("m", [1, 33])
def test_scaled_mm_rowwise(m):
    target = "cuda"
    x = torch.randn(m, K, device=target, dtype=torch.bfloat16)
    weight = torch.randn(N, K).to(torch.float8_e4m3fn).to(target)
    w_scale = torch.rand(1, N, device=target)
    a, a_scale = quantize_fp8_ref(x)
    ref = fp8_w8a8_gemm_ref(a, a_scale, weight, w_scale.T.contiguous(), torch.arange(N, dtype=torch.int32,
                                                                                    device=target), K, torch.float32)
    _agrees_with_probe("rowwise", lambda: scaled_mm_rowwise(a, a_scale, weight, w_scale, torch.float16), ref)
    assert "rowwise" in scaled_mm_recipes(target) or torch.cuda.get_device_capability() < (8, 9)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("m", [1, 33])
def test_scaled_mm_blockwise(m):
    target = "cuda"
    x = torch.randn(m, K, device=target, dtype=torch.bfloat16)
    weight = torch.randn(N, K).to(torch.float8_e4m3fn).to(target)
    w_scale = torch.rand(N // 128, K // 128, device=target)
    a, a_scale = quantize_fp8_ref(x, 128, column_major_scales=True)
    scale_row = (torch.arange(N, device=target) // 128).int()
    ref = fp8_w8a8_gemm_ref(a, a_scale, weight, w_scale, scale_row, 128, torch.float32)
    _agrees_with_probe("blockwise", lambda: scaled_mm_blockwise(a, a_scale, weight, w_scale, torch.bfloat16), ref)
