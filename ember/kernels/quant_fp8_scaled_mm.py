"""W8A8 FP8 GEMMs through cuBLAS (`torch._scaled_mm`), and which of its scaling recipes this
torch and device run, found by trying each once on small matrices against the dequantized
product (torch versions differ in what they accept; a recipe that raises or disagrees is not
used):

- "rowwise": a_scale fp32 [M, 1] (per token) x w_scale fp32 [1, N] (per output row: the
  per-tensor checkpoints, a fused layer's parts each with their own scale);
- "blockwise": a_scale fp32 [M, K / 128] in 1x128 groups, M unit-stride, x w_scale fp32
  [N / 128, K / 128] in 128x128 blocks (Qwen3's / DeepSeek's FP8); torch >= 2.9 on Hopper."""
from __future__ import annotations

import functools
import logging

import torch

from ember.kernels.torch_refusal import TORCH_REFUSAL, first_line

__all__ = ["scaled_mm_rowwise", "scaled_mm_blockwise", "scaled_mm_recipes"]

# cuBLAS's row-wise scaled GEMM writes bf16 only.
_ROWWISE_OUT = torch.bfloat16

logger = logging.getLogger(__name__)


def scaled_mm_rowwise(a, a_scale, weight, w_scale, out_dtype: torch.dtype) -> torch.Tensor:
    """a fp8 [M, K], a_scale [M, 1], weight fp8 [N, K], w_scale [1, N] -> [M, N]."""
    out = torch._scaled_mm(a, weight.t(), scale_a=a_scale, scale_b=w_scale, out_dtype=_ROWWISE_OUT)
    return out if out_dtype == _ROWWISE_OUT else out.to(out_dtype)


def scaled_mm_blockwise(a, a_scale, weight, w_scale, out_dtype: torch.dtype) -> torch.Tensor:
    """a fp8 [M, K], a_scale [M, K / 128] (M unit-stride), weight fp8 [N, K], w_scale [N / 128, K / 128]."""
    out = torch._scaled_mm(a, weight.t(), scale_a=a_scale, scale_b=w_scale.t(), out_dtype=_ROWWISE_OUT)
    return out if out_dtype == _ROWWISE_OUT else out.to(out_dtype)


def _agrees(run, a, a_scale, weight, w_scale, reference) -> bool:
    try:
        out = run(a, a_scale, weight, w_scale, torch.bfloat16).float()
    except TORCH_REFUSAL as e:
        # This torch/cuBLAS has no such recipe for these operands: the caller keeps the Triton
        # kernel for it. Said once per recipe, so a missing fast path is never silent.
        logger.info("cuBLAS scaled GEMM %s unavailable here (%s); FP8 uses the Triton kernel", run.__name__,
                    first_line(e))
        return False
    return bool(torch.isfinite(out).all()) and (out - reference).norm() <= 2e-2 * reference.norm()


@functools.lru_cache(maxsize=None)
def scaled_mm_recipes(device: str) -> frozenset[str]:
    """The recipes above that run and agree with the dequantized product on `device`, for every
    M the engine uses (a decode row, an odd count, a full tile)."""
    if not hasattr(torch, "_scaled_mm"):
        return frozenset()
    gen = torch.Generator(device="cpu").manual_seed(0)
    k, n, found = 256, 384, set()
    weight = torch.randn(n, k, generator=gen).to(torch.float8_e4m3fn).to(device)
    for name, run in (("rowwise", scaled_mm_rowwise), ("blockwise", scaled_mm_blockwise)):
        ok = True
        for m in (1, 3, 64):
            a = torch.randn(m, k, generator=gen).to(torch.float8_e4m3fn).to(device)
            if name == "rowwise":
                a_scale = torch.rand(m, 1, generator=gen).to(device)
                w_scale = torch.rand(1, n, generator=gen).to(device)
                reference = (a.float() * a_scale) @ (weight.float() * w_scale.T).T
            else:
                a_scale = torch.rand(k // 128, m, generator=gen).to(device).t()
                w_scale = torch.rand(n // 128, k // 128, generator=gen).to(device)
                expanded = w_scale.repeat_interleave(128, 0).repeat_interleave(128, 1)
                reference = (a.float() * a_scale.repeat_interleave(128, 1)) @ (weight.float() * expanded).T
            ok = ok and _agrees(run, a, a_scale, weight, w_scale, reference)
        if ok:
            found.add(name)
    return frozenset(found)
