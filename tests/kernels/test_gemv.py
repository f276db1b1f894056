import pytest
import torch

from ember.kernels.gemv import GemvKnobs, gemv, gemv_ref
from ember.kernels.gemv_prologue import (add_rms_norm_gemv, add_rms_norm_gemv_ref, silu_and_mul_gemv,
                                         silu_and_mul_gemv_ref)


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


# The GEMV with the kernel before it folded into its prologue (ember/kernels/gemv_prologue.py).
# K = 300 with tiles of 64 keys (elements=256, block_n=4): four whole tiles, then a ragged tail.
PROLOGUE_SHAPES = pytest.mark.parametrize("n,k,elements", [(24, 64, 8192), (10, 300, 256)], ids=["even", "ragged"])


@PROLOGUE_SHAPES
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_silu_and_mul_gemv_matches_the_separate_kernels(device, dtype, tol, n, k, elements, bias):
    gate_up = torch.randn(1, 2 * k, device=device).to(dtype)
    w = (torch.randn(n, k, device=device) / k ** 0.5).to(dtype)
    b = torch.randn(n, device=device).to(dtype) if bias else None
    y = silu_and_mul_gemv(gate_up, w, b, knobs=GemvKnobs(4, elements, 4))
    assert y.shape == (1, n) and y.dtype == dtype
    torch.testing.assert_close(y.float(), silu_and_mul_gemv_ref(gate_up.float(), w.float(),
                                                                None if b is None else b.float()), **tol(dtype))


@PROLOGUE_SHAPES
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("with_residual", [True, False], ids=["residual", "first-layer"])
def test_add_rms_norm_gemv_matches_the_separate_kernels(device, dtype, tol, n, k, elements, bias, with_residual):
    hidden = torch.randn(1, k, device=device).to(dtype)
    residual = (3 * torch.randn(1, k, device=device)).to(dtype) if with_residual else None
    norm_w = torch.empty(k, device=device).uniform_(0.5, 1.5).to(dtype)
    w = (torch.randn(n, k, device=device) / k ** 0.5).to(dtype)
    b = torch.randn(n, device=device).to(dtype) if bias else None
    y, new_residual = add_rms_norm_gemv(hidden, residual, norm_w, 1e-6, w, b, knobs=GemvKnobs(4, elements, 4))
    ref_y, ref_residual = add_rms_norm_gemv_ref(hidden, residual, norm_w, 1e-6, w, b)
    assert y.shape == (1, n) and y.dtype == dtype
    torch.testing.assert_close(y.float(), ref_y.float(), **tol(dtype))
    if with_residual:
        # A new tensor holding the rounded sum, the inputs left as they were for the other programs.
        assert new_residual is not residual and new_residual is not hidden
        torch.testing.assert_close(new_residual, ref_residual, atol=0, rtol=0)
        torch.testing.assert_close(residual, ref_residual - hidden, **tol(dtype))
    else:
        assert new_residual is hidden


@pytest.mark.parametrize("block_n,elements,num_warps", [(4, 256, 4), (8, 1024, 8), (2, 64, 2)])
def test_prologue_gemvs_walk_whole_tiles_then_the_tail_in_every_launch_config(device, block_n, elements, num_warps):
    """N = 21 leaves the last program's rows partly outside W; K = 300 is ragged for every tile."""
    knobs = dict(knobs=GemvKnobs(block_n, elements, num_warps))
    w = torch.randn(21, 300, device=device) / 300 ** 0.5
    gate_up = torch.randn(1, 600, device=device)
    torch.testing.assert_close(silu_and_mul_gemv(gate_up, w, **knobs), silu_and_mul_gemv_ref(gate_up, w),
                               atol=1e-4, rtol=1e-4)
    hidden, residual, norm_w = torch.randn(1, 300, device=device), torch.randn(1, 300, device=device), \
        torch.rand(300, device=device) + 0.5
    y, new_residual = add_rms_norm_gemv(hidden, residual, norm_w, 1e-5, w, **knobs)
    ref_y, ref_residual = add_rms_norm_gemv_ref(hidden, residual, norm_w, 1e-5, w)
    torch.testing.assert_close(y, ref_y, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(new_residual, ref_residual, atol=0, rtol=0)
