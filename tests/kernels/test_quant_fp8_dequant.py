"""The one-pass FP8 dequantizer of the large-M block-wise path (dense bf16 weight, then cuBLAS)
against the W8A16 reference: per-tensor scales (one per fused part) and block-wise scales."""
import pytest
import torch

from ember.kernels.quant_fp8_dequant import dequantize_fp8_dense
from ember.kernels.quant_fp8_gemm import dequantize_fp8, fp8_gemm_ref

N = 100

_DTYPES = {"bf16": torch.bfloat16} if torch.cuda.is_available() else {"fp32": torch.float32, "fp16": torch.float16}


@pytest.fixture(params=list(_DTYPES.values()), ids=list(_DTYPES))
def dtype(request, device):
    return request.param


def _weights(device, k, block_k):
    weight = torch.randn(N, k).to(torch.float8_e4m3fn).to(device)
    scale = (torch.rand(3, -(-k // block_k)) * 0.1).to(device)
    scale_row = torch.randint(0, 3, (N,), dtype=torch.int32).to(device)
    return weight, scale, scale_row


@pytest.mark.parametrize("k, block_k", [(384, 384), (320, 32)], ids=["per-tensor", "block32"])
def test_dequantize_fp8_dense(device, dtype, k, block_k):
    weight, scale, scale_row = _weights(device, k, block_k)
    got = dequantize_fp8_dense(weight, scale, scale_row, block_k, dtype)
    assert got.dtype == dtype
    torch.testing.assert_close(got, dequantize_fp8(weight, scale, scale_row, block_k).to(dtype), rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("k, n", [(3584, 4608), (18944, 3584)], ids=["7b-qkv", "7b-down"])
@pytest.mark.parametrize("block_k", [None, 128], ids=["per-tensor", "block128"])
def test_dequant_at_7b_shapes_on_gpu(k, n, block_k):
    """At a 7B layer's shapes: the dequantized weight's product against the W8A16 reference in
    fp32."""
    block_k = block_k or k
    weight = (torch.randn(n, k, device="cuda") * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
    scale = torch.rand(-(-n // 128), -(-k // block_k), device="cuda") * 1e-3
    scale_row = (torch.arange(n, device="cuda") // 128).int()
    for m in (1, 300):
        x = torch.randn(m, k, device="cuda").bfloat16()
        ref = fp8_gemm_ref(x.float(), weight, scale, scale_row, block_k)
        outs = {"dequant": x @ dequantize_fp8_dense(weight, scale, scale_row, block_k, x.dtype).T}
        for name, out in outs.items():
            error = (out.float() - ref).norm() / ref.norm()
            assert error < 1e-2, f"{name}, M = {m}: relative error {error:.2e}"
