import pytest
import torch

from ember.kernels.rmsnorm import fused_add_rms_norm, fused_add_rms_norm_ref, rms_norm, rms_norm_ref


@pytest.mark.parametrize("shape", [(7, 96), (5, 1000), (3, 4, 64)])
def test_rms_norm(device, dtype, tol, shape):
    x = (torch.randn(shape, device=device) * 3).to(dtype)
    w = (1 + 0.1 * torch.randn(shape[-1], device=device)).to(dtype)
    out = rms_norm(x, w, 1e-6)
    assert out.dtype == dtype and out.shape == x.shape
    torch.testing.assert_close(out, rms_norm_ref(x, w, 1e-6), **tol(dtype))


def test_rms_norm_strided_rows(device, dtype, tol):
    # q-norm style: per-head norm on a non-contiguous slice of a fused projection.
    qkv = torch.randn(6, 5, 64, device=device).to(dtype)
    q = qkv[:, :3]
    w = torch.randn(64, device=device).to(dtype)
    torch.testing.assert_close(rms_norm(q, w, 1e-5), rms_norm_ref(q, w, 1e-5), **tol(dtype))


@pytest.mark.parametrize("hidden", [128, 300])
def test_fused_add_rms_norm(device, dtype, tol, hidden):
    x = torch.randn(9, hidden, device=device).to(dtype)
    res = torch.randn(9, hidden, device=device).to(dtype)
    w = torch.randn(hidden, device=device).to(dtype)
    x_copy, res_copy = x.clone(), res.clone()
    normed, new_res = fused_add_rms_norm(x, res, w, 1e-6)
    ref_normed, ref_res = fused_add_rms_norm_ref(x, res, w, 1e-6)
    assert torch.equal(new_res, ref_res)  # one rounding of the same sum: bit exact
    torch.testing.assert_close(normed, ref_normed, **tol(dtype))
    assert torch.equal(x, x_copy) and torch.equal(res, res_copy)  # inputs untouched


def test_rms_norm_ref_matches_hf_formula():
    x = torch.randn(4, 32, dtype=torch.bfloat16)
    w = torch.randn(32, dtype=torch.bfloat16)
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.equal(rms_norm_ref(x, w, 1e-6), w * h.to(torch.bfloat16))
