import pytest
import torch

from ember.kernels.gemv import GemvKnobs, gemv, gemv_ref


@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("n,k", [(24, 64), (10, 300)], ids=["even", "ragged"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_gemv_matches_linear(device, dtype, tol, m, n, k, bias):
    x = torch.randn(m, k, device=device).to(dtype)
    w = (torch.randn(n, k, device=device) / k ** 0.5).to(dtype)
    b = torch.randn(n, device=device).to(dtype) if bias else None
    y = gemv(x, w, b)
    assert y.shape == (m, n) and y.dtype == dtype
    torch.testing.assert_close(y.float(), gemv_ref(x.float(), w.float(), None if b is None else b.float()),
                               **tol(dtype))


def test_gemv_reads_a_strided_row_view(device):
    x = torch.randn(2, 3, 64, device=device)[:, 1]  # rows 192 elements apart
    w = torch.randn(8, 64, device=device)
    torch.testing.assert_close(gemv(x, w), gemv_ref(x, w), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("block_n,elements,num_warps", [(4, 256, 4), (8, 1024, 8), (2, 64, 2)])
def test_every_launch_config_walks_whole_tiles_then_the_tail(device, m, block_n, elements, num_warps):
    """K = 300 over tiles of 64 or 16 keys (the sweep's small configs): whole tiles, then a
    ragged last one; N = 21 leaves the last program's rows partly outside W."""
    x = torch.randn(m, 300, device=device)
    w = torch.randn(21, 300, device=device) / 300 ** 0.5
    y = gemv(x, w, knobs=GemvKnobs(block_n, elements, num_warps))
    torch.testing.assert_close(y, gemv_ref(x, w), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_an_fp8_weight_with_row_scales_multiplies_as_its_dequantized_copy(device, dtype, tol, m, bias):
    """e4m3 weights (every finite code among them) and one fp32 scale per output row: the
    product of the dequantized weight, with the scale applied to the sum (K = 300: a ragged tail)."""
    codes = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn)
    finite = codes[~codes.float().isnan()]
    weight = finite[torch.randint(len(finite), (21, 300))].to(device)
    row_scale = (torch.rand(21) * 1e-2 + 1e-3).to(device)
    x = torch.randn(m, 300, device=device).to(dtype)
    b = torch.randn(21, device=device).to(dtype) if bias else None
    y = gemv(x, weight, b, row_scale=row_scale)
    assert y.shape == (m, 21) and y.dtype == dtype
    ref = gemv_ref(x.float(), weight, None if b is None else b.float(), row_scale)
    torch.testing.assert_close(y.float(), ref, **tol(dtype))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("n, k", [(4608, 3584), (3584, 18944)], ids=["7b-qkv", "7b-down"])
def test_an_fp8_weight_under_bf16_activations_at_7b_shapes(n, k):
    """bf16 activations, e4m3 weights with row scales: the dequantized weight's product within
    bf16's rounding."""
    weight = (torch.randn(n, k, device="cuda") * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
    row_scale = torch.rand(n, device="cuda") * 1e-3
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
    y = gemv(x, weight, row_scale=row_scale)
    ref = gemv_ref(x.float(), weight, None, row_scale)
    assert (y.float() - ref).norm() / ref.norm() < 1e-2
