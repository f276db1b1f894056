"""RMSNorm and fused residual-add + RMSNorm, rounding exactly like HF LlamaRMSNorm:
variance and normalisation in fp32, cast to the input dtype, then * weight."""

from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton
from ember.kernels.pdl import pdl_launch, wait_for_previous_kernel

__all__ = ["rms_norm", "fused_add_rms_norm", "rms_norm_ref", "fused_add_rms_norm_ref"]


@triton.jit
def _rms_norm_kernel(
    x_ptr, res_ptr, w_ptr, out_ptr, res_out_ptr, n_cols, eps,
    stride_x, stride_r, stride_o, stride_ro,
    BLOCK: tl.constexpr, HAS_RESIDUAL: tl.constexpr, USE_PDL: tl.constexpr = False,
):
    wait_for_previous_kernel(USE_PDL)
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        # HF adds in the activation dtype, then normalises that rounded sum.
        x = (x.to(tl.float32) + tl.load(res_ptr + row * stride_r + cols, mask=mask, other=0.0)
             .to(tl.float32)).to(x.dtype)
        tl.store(res_out_ptr + row * stride_ro + cols, x, mask=mask)
    xf = x.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(xf * xf, 0) / n_cols + eps)
    normed = (xf * rstd).to(x.dtype).to(tl.float32)  # the cast HF does before * weight
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_o + cols, (normed * w).to(out_ptr.dtype.element_ty), mask=mask)


def _rows(t: torch.Tensor) -> torch.Tensor:
    # 2-D [rows, hidden] view; copies only if the rows are not uniformly strided.
    t2 = t.reshape(-1, t.shape[-1])
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def _launch(x, residual, weight, eps):
    require_triton()
    x2 = _rows(x)
    n_rows, n_cols = x2.shape
    out = torch.empty((n_rows, n_cols), dtype=torch.promote_types(weight.dtype, x.dtype), device=x.device)
    if residual is not None:
        r2 = _rows(residual)
        res_out = torch.empty_like(x2, memory_format=torch.contiguous_format)
    else:
        r2 = res_out = x2  # unused
    block = triton.next_power_of_2(n_cols)
    warps = min(max(block // 256, 1), 16)  # ~8 elements per thread per pass
    if n_rows > 0:
        _rms_norm_kernel[(n_rows,)](
            x2, r2, weight, out, res_out, n_cols, eps,
            x2.stride(0), r2.stride(0), out.stride(0), res_out.stride(0),
            BLOCK=block, HAS_RESIDUAL=residual is not None, num_warps=warps, **pdl_launch(x.device),
        )
    return out.view(x.shape), res_out.view(x.shape)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim of x (any leading dims). Returns a new tensor."""
    return _launch(x, None, weight, eps)[0]


def fused_add_rms_norm(x, residual, weight, eps: float):
    """Returns (rms_norm(x + residual), x + residual) as new tensors; the sum is
    rounded to x.dtype before normalising, as the unfused HF model does."""
    assert x.shape == residual.shape and x.dtype == residual.dtype
    return _launch(x, residual, weight, eps)


def rms_norm_ref(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    xf = x.to(torch.float32)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(dtype)


def fused_add_rms_norm_ref(x, residual, weight, eps: float):
    new_residual = x + residual
    return rms_norm_ref(new_residual, weight, eps), new_residual
