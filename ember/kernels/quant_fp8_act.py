"""Dynamic FP8 (e4m3) quantization of activations for W8A8 GEMMs, beside its plain-torch
reference: each row's groups of `group` features (the whole row: per token; 128: the 1x128
groups that go with Qwen3's / DeepSeek's 128x128 weight blocks) get the scale that maps their
largest magnitude to e4m3's largest value, 448.

  scale[m, g] = max |x[m, g * group : (g + 1) * group]| / 448;  q = x / scale (saturating)

`column_major_scales`: the scales are laid out [M, G] with M unit-stride, as cuBLAS's
block-wise scaled GEMM wants them."""
from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton

__all__ = ["FP8_MAX", "quantize_fp8", "quantize_fp8_ref"]

FP8_MAX = 448.0
_MIN_SCALE = 1e-12 / FP8_MAX  # an all-zero group keeps a finite scale


@triton.jit
def _quantize_kernel(x_ptr, q_ptr, s_ptr, K, stride_xm, stride_qm, stride_sm, stride_sg,
                     GROUP: tl.constexpr, BLOCK: tl.constexpr, MIN_SCALE: tl.constexpr):
    row, g = tl.program_id(0), tl.program_id(1)
    x_row = x_ptr + row.to(tl.int64) * stride_xm + g * GROUP
    q_row = q_ptr + row.to(tl.int64) * stride_qm + g * GROUP
    offs = tl.arange(0, BLOCK)
    # Two passes over the group (the second from cache): a row of a wide layer does not fit
    # in registers at once.
    amax = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, GROUP, BLOCK):
        mask = (start + offs < GROUP) & (g * GROUP + start + offs < K)
        amax = tl.maximum(amax, tl.abs(tl.load(x_row + start + offs, mask=mask, other=0.0).to(tl.float32)))
    scale = tl.maximum(tl.max(amax, axis=0) / 448.0, MIN_SCALE)
    for start in range(0, GROUP, BLOCK):
        mask = (start + offs < GROUP) & (g * GROUP + start + offs < K)
        x = tl.load(x_row + start + offs, mask=mask, other=0.0).to(tl.float32)
        q = tl.clamp(x / scale, -448.0, 448.0)
        tl.store(q_row + start + offs, q.to(tl.float8e4nv), mask=mask)
    tl.store(s_ptr + row * stride_sm + g * stride_sg, scale)


def _scales(m: int, groups: int, column_major: bool, device) -> torch.Tensor:
    if column_major:
        return torch.empty((groups, m), dtype=torch.float32, device=device).t()
    return torch.empty((m, groups), dtype=torch.float32, device=device)


def quantize_fp8(x: torch.Tensor, group: int | None = None, column_major_scales: bool = False):
    """x [M, K] (unit stride on K) -> (q float8_e4m3fn [M, K], scales fp32 [M, ceil(K / group)]);
    group None: one scale per row."""
    require_triton()
    m, k = x.shape
    group = k if group is None else group
    groups = -(-k // group)
    q = torch.empty((m, k), dtype=torch.float8_e4m3fn, device=x.device)
    scales = _scales(m, groups, column_major_scales, x.device)
    if m:
        _quantize_kernel[(m, groups)](x, q, scales, k, x.stride(0), q.stride(0), scales.stride(0), scales.stride(1),
                                      GROUP=group, BLOCK=min(1024, triton.next_power_of_2(group)),
                                      MIN_SCALE=_MIN_SCALE, num_warps=4)
    return q, scales


def quantize_fp8_ref(x: torch.Tensor, group: int | None = None, column_major_scales: bool = False):
    m, k = x.shape
    group = k if group is None else group
    groups = -(-k // group)
    padded = torch.nn.functional.pad(x.float(), (0, groups * group - k)).reshape(m, groups, group)
    scale = (padded.abs().amax(-1) / FP8_MAX).clamp(min=_MIN_SCALE)
    q = (padded / scale[..., None]).clamp(-FP8_MAX, FP8_MAX).reshape(m, -1)[:, :k].to(torch.float8_e4m3fn)
    out = _scales(m, groups, column_major_scales, x.device)
    out.copy_(scale)
    return q, out
